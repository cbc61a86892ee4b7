//! Minimal HTTP/1.1 server and client pieces shared by the shop demo binaries.
//!
//! The demo deliberately uses only the standard library, so this module
//! implements just enough of HTTP/1.1 for `GET` requests with
//! `Connection: close` semantics and a `Content-Length` on every response.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// The largest request head we accept, so a misbehaving client cannot make
/// a connection thread buffer without bound.
const MAX_REQUEST_HEAD_BYTES: usize = 16 * 1024;

/// The largest response we read as a client, for the same reason.
const MAX_RESPONSE_BYTES: u64 = 1024 * 1024;

/// How long a connection may stay silent before we give up on it, so stuck
/// peers never pin a thread forever.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the client waits for a TCP connection to be established.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The parts of an incoming request the demo services care about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
}

/// A complete response, always sent with `Connection: close`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    /// A plain-text response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }

    /// A JSON response; the caller is responsible for the body being valid JSON.
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: body.into(),
        }
    }

    /// The standard 404 used by every service for unknown paths.
    pub fn not_found() -> Self {
        Self::text(404, "not found")
    }
}

/// Returns the reason phrase for the handful of status codes the demo uses.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        _ => "Unknown",
    }
}

/// Reads the request line and headers of one request from `stream`.
///
/// Any request body is ignored because the demo services only handle `GET`.
pub fn read_request(stream: &TcpStream) -> io::Result<Request> {
    let mut reader = BufReader::new(stream.take(MAX_REQUEST_HEAD_BYTES as u64));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before a request line arrived",
        ));
    }
    // The headers are read and discarded so that the client has finished
    // sending before we answer, which keeps well-behaved clients from seeing
    // a reset connection.
    loop {
        let mut header_line = String::new();
        if reader.read_line(&mut header_line)? == 0 {
            break;
        }
        if header_line == "\r\n" || header_line == "\n" {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "malformed request line",
        ));
    };
    // Query strings are not used by any route, so they are dropped here.
    let path = target.split('?').next().unwrap_or(target);
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
    })
}

/// Writes `response` to `stream` with a `Content-Length` and `Connection: close`.
pub fn write_response(mut stream: &TcpStream, response: &Response) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        reason_phrase(response.status),
        response.content_type,
        response.body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(response.body.as_bytes())?;
    stream.flush()
}

/// Binds a listener on 127.0.0.1 only, because the demo must never be
/// reachable from other machines.
pub fn bind_loopback(port: u16) -> io::Result<TcpListener> {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

/// Accepts connections forever, answering each on its own thread.
///
/// `handler` maps a request to a response. When `log_prefix` is given, one
/// line per request is printed to stdout and flushed, so supervisors that
/// capture output see it immediately.
pub fn serve<F>(
    listener: TcpListener,
    log_prefix: Option<&'static str>,
    handler: F,
) -> io::Result<()>
where
    F: Fn(&Request) -> Response + Send + Sync + 'static,
{
    let handler = Arc::new(handler);
    for connection in listener.incoming() {
        let stream = match connection {
            Ok(stream) => stream,
            // A failed accept (for example a peer that reset before we got to
            // it) affects only that one connection, so keep serving.
            Err(_) => continue,
        };
        let handler = Arc::clone(&handler);
        thread::spawn(move || handle_connection(&stream, log_prefix, handler.as_ref()));
    }
    Ok(())
}

/// Serves exactly one request on `stream`.
fn handle_connection<F>(stream: &TcpStream, log_prefix: Option<&'static str>, handler: &F)
where
    F: Fn(&Request) -> Response,
{
    // Timeouts keep a silent client from holding the thread forever; if
    // setting them fails the connection still works, just without the guard.
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let (request, response) = match read_request(stream) {
        Ok(request) if request.method == "GET" => {
            let response = handler(&request);
            (Some(request), response)
        }
        Ok(request) => (Some(request), Response::text(405, "method not allowed")),
        Err(_) => (None, Response::text(400, "bad request")),
    };
    if let Some(prefix) = log_prefix {
        let described = request
            .as_ref()
            .map(|request| format!("{} {}", request.method, request.path))
            .unwrap_or_else(|| "<unreadable request>".to_string());
        let mut stdout = io::stdout().lock();
        // Logging must never take the server down, so write errors (for
        // example a closed stdout pipe) are ignored.
        let _ = writeln!(stdout, "{prefix}: {described} -> {}", response.status);
        let _ = stdout.flush();
    }
    // The client may already have gone away; there is nobody to tell.
    let _ = write_response(stream, &response);
}

/// Where an `http://host:port` base URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// The host exactly as written, used for the `Host` header.
    pub host: String,
    pub port: u16,
    /// The loopback address to connect to.
    pub address: SocketAddr,
}

/// Parses a base URL such as `http://127.0.0.1:4100` by hand.
///
/// Only loopback hosts are accepted, because the demo must never contact
/// any other machine; `localhost` is mapped to 127.0.0.1 without a DNS lookup.
pub fn parse_base_url(url: &str) -> Result<BaseUrl, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("URL {url:?} must start with http://"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    if authority.is_empty() {
        return Err(format!("URL {url:?} has no host"));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port_text)) => {
            let port = port_text
                .parse::<u16>()
                .map_err(|_| format!("URL {url:?} has an invalid port {port_text:?}"))?;
            (host, port)
        }
        None => (authority, 80),
    };
    let ip = if host.eq_ignore_ascii_case("localhost") {
        Ipv4Addr::LOCALHOST
    } else {
        let ip = host
            .parse::<Ipv4Addr>()
            .map_err(|_| format!("URL {url:?} must use 127.0.0.1 or localhost"))?;
        if !ip.is_loopback() {
            return Err(format!("URL {url:?} is not a loopback address"));
        }
        ip
    };
    Ok(BaseUrl {
        host: host.to_string(),
        port,
        address: SocketAddr::V4(SocketAddrV4::new(ip, port)),
    })
}

/// A response received by [`http_get`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientResponse {
    pub status: u16,
    pub body: String,
}

/// Performs `GET path` against `base` and returns the status and body.
pub fn http_get(base: &BaseUrl, path: &str) -> Result<ClientResponse, String> {
    let describe =
        |error: io::Error| format!("GET http://{}:{}{path}: {error}", base.host, base.port);
    let mut stream =
        TcpStream::connect_timeout(&base.address, CONNECT_TIMEOUT).map_err(describe)?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .map_err(describe)?;
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .map_err(describe)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\nAccept: */*\r\n\r\n",
        base.host, base.port
    );
    stream.write_all(request.as_bytes()).map_err(describe)?;
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE_BYTES)
        .read_to_end(&mut raw)
        .map_err(describe)?;
    parse_response(&raw)
        .map_err(|message| format!("GET http://{}:{}{path}: {message}", base.host, base.port))
}

/// Splits a raw HTTP response into status and body, honouring `Content-Length`.
fn parse_response(raw: &[u8]) -> Result<ClientResponse, String> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| "response ended before the headers were complete".to_string())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("malformed status line {status_line:?}"))?;
    let content_length = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if name.trim().eq_ignore_ascii_case("content-length") {
            value.trim().parse::<usize>().ok()
        } else {
            None
        }
    });
    let body = match content_length {
        Some(length) if length <= body.len() && body.is_char_boundary(length) => &body[..length],
        _ => body,
    };
    Ok(ClientResponse {
        status,
        body: body.to_string(),
    })
}

/// Escapes `value` for use inside a JSON string literal.
pub fn json_escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for character in value.chars() {
        match character {
            '"' => escaped.push_str("\\\""),
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            control if u32::from(control) < 0x20 => {
                escaped.push_str(&format!("\\u{:04x}", u32::from(control)));
            }
            other => escaped.push(other),
        }
    }
    escaped
}

/// Finds the port from `--port P` or `--port=P` in `arguments`, falling back
/// to the `PORT` environment variable when the flag is absent.
///
/// `arguments` excludes the program name. Any argument other than `--port`
/// is rejected so typos are noticed instead of silently ignored.
pub fn parse_port(arguments: &[String]) -> Result<u16, String> {
    let mut port_text = None;
    let mut index = 0;
    while index < arguments.len() {
        let argument = &arguments[index];
        if argument == "--port" {
            let value = arguments
                .get(index + 1)
                .ok_or_else(|| "--port needs a value".to_string())?;
            port_text = Some(value.clone());
            index += 2;
        } else if let Some(value) = argument.strip_prefix("--port=") {
            port_text = Some(value.to_string());
            index += 1;
        } else {
            return Err(format!("unexpected argument {argument:?}"));
        }
    }
    let port_text = match port_text {
        Some(text) => text,
        None => {
            std::env::var("PORT").map_err(|_| "no --port given and PORT is not set".to_string())?
        }
    };
    port_text
        .trim()
        .parse::<u16>()
        .map_err(|_| format!("invalid port {port_text:?}"))
}

/// Prints one line to stdout and flushes it, ignoring a closed stdout so a
/// service never dies just because nobody is reading its output.
pub fn say(line: &str) {
    let mut stdout = io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_loopback_urls() {
        let base = parse_base_url("http://127.0.0.1:4100");
        assert_eq!(base.map(|base| base.port), Ok(4100));
        let local = parse_base_url("http://localhost:4000/");
        assert_eq!(
            local.map(|base| base.address.to_string()),
            Ok("127.0.0.1:4000".to_string())
        );
    }

    #[test]
    fn rejects_other_hosts() {
        assert!(parse_base_url("http://10.0.0.1:80").is_err());
        assert!(parse_base_url("http://example.com:80").is_err());
        assert!(parse_base_url("https://127.0.0.1:80").is_err());
    }

    #[test]
    fn parses_response_with_content_length() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA";
        assert_eq!(
            parse_response(raw),
            Ok(ClientResponse {
                status: 200,
                body: "ok".to_string()
            })
        );
    }

    #[test]
    fn escapes_json() {
        assert_eq!(json_escape("a\"b\\c\n"), "a\\\"b\\\\c\\n");
    }

    #[test]
    fn parses_port_flag() {
        let arguments = vec!["--port".to_string(), "4100".to_string()];
        assert_eq!(parse_port(&arguments), Ok(4100));
        let equals = vec!["--port=4200".to_string()];
        assert_eq!(parse_port(&equals), Ok(4200));
        let bad = vec!["--bogus".to_string()];
        assert!(parse_port(&bad).is_err());
    }
}
