//! The proxy: a request's host picks a service ([`super::follow`]); the request goes on to
//! the service's port over HTTP/1.1 with pooled keep-alive connections, an upgrade (a
//! WebSocket) is spliced through once the service switches protocols, and a WebSocket
//! opened over HTTP/2 (RFC 8441 extended CONNECT) is asked of the service as the
//! HTTP/1.1 upgrade it understands.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use super::follow::{Follower, Target};
use super::log::Log;
use super::pages::{self, Unavailable};
use super::routes::{Route, RouterAddress};

/// Every body the proxy sends: a service's, passed through, or a page of its own.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// How long connecting to a service may take (it is on this machine: a connect that
/// takes this long is a service that does not accept).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

pub struct Proxy {
    follower: Follower,
    client: Client<HttpConnector, Body>,
    address: RouterAddress,
    log: Arc<Log>,
}

/// One accepted connection's side of a request: who asked, and over what.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub address: SocketAddr,
    pub tls: bool,
}

impl Proxy {
    pub fn new(follower: Follower, address: RouterAddress, log: Arc<Log>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .timer(TokioTimer::new())
            .build(connector);
        Proxy {
            follower,
            client,
            address,
            log,
        }
    }

    /// Answers one request: the service's answer, or a page of the router's own.
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        peer: Peer,
    ) -> Result<Response<Body>, Infallible> {
        let Some(authority) = authority(&request) else {
            return Ok(self.unknown(""));
        };
        let target = match self.follower.target(&authority, false) {
            // A refusal is never drawn from an older look.
            Target::Proxy(route) => Target::Proxy(route),
            _ => self.follower.target(&authority, true),
        };
        Ok(match target {
            Target::Unknown { host } => self.unknown(&host),
            Target::Unavailable(unavailable) => unavailable_page(&unavailable),
            Target::Proxy(route) => self.forward(request, route, &authority, peer).await,
        })
    }

    fn unknown(&self, host: &str) -> Response<Body> {
        let routes = self.follower.routes().unwrap_or_default();
        page(
            StatusCode::NOT_FOUND,
            pages::unknown(host, &routes, self.address),
        )
    }

    async fn forward(
        &self,
        mut request: Request<Incoming>,
        route: Route,
        authority: &str,
        peer: Peer,
    ) -> Response<Body> {
        let extended_connect = request.method() == Method::CONNECT
            && request
                .extensions()
                .get::<hyper::ext::Protocol>()
                .is_some_and(|protocol| protocol.as_str().eq_ignore_ascii_case("websocket"));
        if request.method() == Method::CONNECT && !extended_connect {
            // A plain CONNECT asks for a tunnel anywhere: the router is no forward proxy.
            return page(
                StatusCode::METHOD_NOT_ALLOWED,
                "CONNECT is for WebSockets over HTTP/2 only\n".to_string(),
            );
        }
        let upgrade = request.version() < Version::HTTP_2 && wants_upgrade(request.headers());
        let inbound = (upgrade || extended_connect).then(|| hyper::upgrade::on(&mut request));
        let version = request.version();
        let (parts, body) = request.into_parts();

        let mut headers = parts.headers;
        strip_hop_by_hop(&mut headers, upgrade);
        let method = if extended_connect {
            ask_websocket_upgrade(&mut headers);
            Method::GET
        } else {
            parts.method
        };
        forwarded_headers(&mut headers, authority, peer);
        let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
        let Ok(uri) = format!("http://127.0.0.1:{}{path}", route.port).parse::<Uri>() else {
            return page(StatusCode::BAD_REQUEST, "bad request target\n".to_string());
        };
        let mut outbound = Request::new(if extended_connect {
            empty()
        } else {
            body.boxed()
        });
        *outbound.method_mut() = method;
        *outbound.uri_mut() = uri;
        *outbound.version_mut() = Version::HTTP_11;
        *outbound.headers_mut() = headers;

        let mut response = match self.client.request(outbound).await {
            Ok(response) => response,
            Err(error) => {
                // Stopped since the last look? Then its page says so.
                if let Target::Unavailable(unavailable) = self.follower.target(authority, true) {
                    return unavailable_page(&unavailable);
                }
                let detail = describe(&error);
                self.log.line(&format!(
                    "{} {authority}: {} of {} on 127.0.0.1:{}: {detail}",
                    version_name(version),
                    route.service,
                    route.instance,
                    route.port
                ));
                return unavailable_page(&Unavailable {
                    instance: route.instance,
                    service: route.service,
                    state: "not answering".to_string(),
                    detail: Some(format!("127.0.0.1:{}: {detail}", route.port)),
                    status: 502,
                });
            }
        };

        if let Some(inbound) = inbound {
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                let outbound = hyper::upgrade::on(&mut response);
                self.log.line(&format!(
                    "{} {authority}: upgraded to {} with {} of {}",
                    version_name(version),
                    response
                        .headers()
                        .get(header::UPGRADE)
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or("?"),
                    route.service,
                    route.instance
                ));
                tokio::spawn(splice(inbound, outbound));
                return if extended_connect {
                    websocket_accepted(response.headers())
                } else {
                    let (mut parts, _) = response.into_parts();
                    strip_hop_by_hop(&mut parts.headers, true);
                    Response::from_parts(parts, empty())
                };
            }
            if extended_connect && response.status().is_success() {
                // A 2xx to CONNECT would tell the client its WebSocket is open.
                return page(
                    StatusCode::BAD_GATEWAY,
                    "the service did not accept the WebSocket\n".to_string(),
                );
            }
        }
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers, false);
        Response::from_parts(parts, body.boxed())
    }
}

/// The name the client asked for: the `:authority` of HTTP/2 (and of an absolute-form
/// HTTP/1.1 target), else the `Host` header.
fn authority(request: &Request<Incoming>) -> Option<String> {
    request
        .uri()
        .authority()
        .map(|authority| authority.as_str().to_string())
        .or_else(|| {
            request
                .headers()
                .get(header::HOST)
                .and_then(|host| host.to_str().ok())
                .map(str::to_string)
        })
}

/// Whether an HTTP/1.1 request asks to switch protocols (`Connection: upgrade` and an
/// `Upgrade` header).
fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// Removes the headers of one hop: the standard ones and those `Connection` names. With
/// `upgrade`, `Upgrade` stays and `Connection: upgrade` is set again.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named {
        if !(upgrade && name == header::UPGRADE) {
            headers.remove(name);
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// Turns the headers of an RFC 8441 CONNECT into those of an RFC 6455 handshake: the
/// service sees an ordinary WebSocket upgrade. Its key is fresh; the client of an HTTP/2
/// WebSocket sends none and checks no accept value.
fn ask_websocket_upgrade(headers: &mut HeaderMap) {
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    let key = base64::engine::general_purpose::STANDARD.encode(crate::model::random_bytes());
    if let Ok(key) = HeaderValue::from_str(&key) {
        headers.insert(header::SEC_WEBSOCKET_KEY, key);
    }
    headers
        .entry(header::SEC_WEBSOCKET_VERSION)
        .or_insert(HeaderValue::from_static("13"));
}

/// The 200 that opens an HTTP/2 WebSocket, with what the service agreed to
/// (subprotocol, extensions).
fn websocket_accepted(service: &HeaderMap) -> Response<Body> {
    let mut response = Response::new(empty());
    for name in [
        header::SEC_WEBSOCKET_PROTOCOL,
        header::SEC_WEBSOCKET_EXTENSIONS,
    ] {
        if let Some(value) = service.get(&name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

/// `X-Forwarded-For` (appended to), `-Host` and `-Proto`, and `Host` kept as the client
/// wrote it: a dev server sees the name the browser used.
fn forwarded_headers(headers: &mut HeaderMap, authority: &str, peer: Peer) {
    let client = peer.address.ip().to_string();
    let forwarded_for = match headers
        .get("x-forwarded-for")
        .and_then(|value| value.to_str().ok())
    {
        Some(earlier) => format!("{earlier}, {client}"),
        None => client,
    };
    let proto = if peer.tls { "https" } else { "http" };
    for (name, value) in [
        ("x-forwarded-for", forwarded_for.as_str()),
        ("x-forwarded-host", authority),
        ("x-forwarded-proto", proto),
        ("host", authority),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
}

/// Copies bytes both ways between the client's upgraded connection and the service's,
/// until either side closes.
async fn splice(inbound: OnUpgrade, outbound: OnUpgrade) {
    let (Ok(inbound), Ok(outbound)) = tokio::join!(inbound, outbound) else {
        return;
    };
    let mut inbound = TokioIo::new(inbound);
    let mut outbound = TokioIo::new(outbound);
    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
}

fn unavailable_page(unavailable: &Unavailable) -> Response<Body> {
    let status = StatusCode::from_u16(unavailable.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = page(status, pages::unavailable(unavailable));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    }
    response
}

fn page(status: StatusCode, html: String) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(html))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

fn version_name(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/?",
    }
}

/// The innermost cause of a client error ("connection refused"), which is what a person
/// can act on.
fn describe(error: &hyper_util::client::legacy::Error) -> String {
    let mut source: &dyn std::error::Error = error;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
        let mut map = headers(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("accept", "text/html"),
        ]);
        strip_hop_by_hop(&mut map, false);
        let names: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, vec!["accept"]);
    }

    #[test]
    fn an_upgrade_keeps_upgrade_and_says_so_in_connection() {
        let mut map = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        assert!(wants_upgrade(&map));
        strip_hop_by_hop(&mut map, true);
        assert_eq!(map["upgrade"], "websocket");
        assert_eq!(map["connection"], "upgrade");
        assert!(map.contains_key("sec-websocket-key"));
    }

    #[test]
    fn an_http2_websocket_is_asked_as_an_http1_upgrade() {
        let mut map = headers(&[
            ("sec-websocket-version", "13"),
            ("origin", "http://a.localhost"),
        ]);
        ask_websocket_upgrade(&mut map);
        assert_eq!(map["upgrade"], "websocket");
        assert_eq!(map["connection"], "upgrade");
        let key = base64::engine::general_purpose::STANDARD
            .decode(map["sec-websocket-key"].as_bytes())
            .unwrap();
        assert_eq!(key.len(), 16);
    }

    #[test]
    fn forwarded_headers_append_the_client_and_keep_the_host() {
        let mut map = headers(&[("x-forwarded-for", "10.0.0.9")]);
        let peer = Peer {
            address: "127.0.0.1:50000".parse().unwrap(),
            tls: true,
        };
        forwarded_headers(&mut map, "web.a.localhost:7780", peer);
        assert_eq!(map["x-forwarded-for"], "10.0.0.9, 127.0.0.1");
        assert_eq!(map["x-forwarded-host"], "web.a.localhost:7780");
        assert_eq!(map["x-forwarded-proto"], "https");
        assert_eq!(map["host"], "web.a.localhost:7780");
    }
}
