//! A tiny HTTP/1.1 server for the helper's listening modes.
//!
//! It answers `GET /health` with `ok`, `GET /env/<NAME>` with the value of
//! that environment variable, and `GET /` with `hello`. Every response carries
//! a `Content-Length` and `Connection: close`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

/// The largest request head we accept, so a misbehaving client cannot make
/// a connection thread buffer without bound.
const MAX_REQUEST_HEAD_BYTES: u64 = 16 * 1024;

/// How long a connection may stay silent before we give up on it.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds a listener on 127.0.0.1 only, because test services must never be
/// reachable from other machines.
pub fn bind_loopback(port: u16) -> io::Result<TcpListener> {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

/// Accepts connections forever and answers each on its own thread.
pub fn serve(listener: &TcpListener) {
    // A failed accept affects only that one connection, so such errors are
    // skipped and serving goes on.
    for stream in listener.incoming().flatten() {
        thread::spawn(move || handle_connection(&stream));
    }
}

/// Accepts connections forever and closes each immediately, for modes that
/// only need the port to be open.
pub fn accept_and_drop(listener: &TcpListener) {
    for connection in listener.incoming() {
        drop(connection);
    }
}

/// Reads the request line, skips the headers, and returns method and path.
fn read_request(stream: &TcpStream) -> io::Result<(String, String)> {
    let mut reader = BufReader::new(stream.take(MAX_REQUEST_HEAD_BYTES));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before a request line arrived",
        ));
    }
    // Reading the headers to their end means the client has finished
    // sending before we answer, so it never sees a reset connection.
    loop {
        let mut header_line = String::new();
        if reader.read_line(&mut header_line)? == 0 || header_line.trim_end().is_empty() {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(method), Some(target)) => {
            let path = target.split('?').next().unwrap_or(target);
            Ok((method.to_string(), path.to_string()))
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "malformed request line",
        )),
    }
}

/// Maps a request to a status code and a plain-text body.
fn route(method: &str, path: &str) -> (u16, String) {
    if method != "GET" {
        return (405, "method not allowed".to_string());
    }
    if path == "/health" {
        return (200, "ok".to_string());
    }
    if path == "/" {
        return (200, "hello".to_string());
    }
    if let Some(name) = path.strip_prefix("/env/")
        && !name.is_empty()
    {
        return match std::env::var_os(name) {
            Some(value) => (200, value.to_string_lossy().into_owned()),
            None => (404, format!("{name} is not set")),
        };
    }
    (404, "not found".to_string())
}

/// Returns the reason phrase for the status codes this server uses.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Unknown",
    }
}

/// Serves exactly one request on `stream`.
fn handle_connection(stream: &TcpStream) {
    // Timeouts keep a silent client from holding the thread forever; if
    // setting them fails the connection still works, just without the guard.
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let (status, body) = match read_request(stream) {
        Ok((method, path)) => route(&method, &path),
        Err(_) => (400, "bad request".to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        reason_phrase(status),
        body.len()
    );
    let mut writer = stream;
    // The client may already have gone away; there is nobody to tell.
    let _ = writer.write_all(response.as_bytes());
    let _ = writer.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_fixed_paths() {
        assert_eq!(route("GET", "/health"), (200, "ok".to_string()));
        assert_eq!(route("GET", "/"), (200, "hello".to_string()));
        assert_eq!(route("GET", "/missing").0, 404);
        assert_eq!(route("POST", "/health").0, 405);
    }

    #[test]
    fn routes_env_lookups() {
        assert_eq!(route("GET", "/env/PATH").0, 200);
        assert_eq!(route("GET", "/env/BERTH_TEST_HELPER_SURELY_UNSET").0, 404);
    }
}
