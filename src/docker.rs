//! A small, synchronous client for the Docker Engine HTTP API over its local unix socket.
//!
//! berth asks the engine directly for what it needs to know (which containers, networks
//! and volumes carry an instance's labels, and what state a container is in) because one
//! request over the socket takes a millisecond or two, while spawning the `docker` CLI costs
//! about 40 ms each time, and status views ask many such questions. Everything that changes
//! the engine's state or streams output (`up`, `down`, `logs`, `exec`) still goes through the
//! Compose tool and the `docker` CLI.
//!
//! The client speaks HTTP/1.0 so the engine closes the connection after each answer and
//! does not chunk it; one request is one connection, with no pooling and no async runtime.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Where the engine listens when `DOCKER_HOST` does not say otherwise.
const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// How long one read or write on the socket may block before the request fails.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A local Docker engine, reached through its unix socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    socket: PathBuf,
}

/// Why a question to the engine got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// `DOCKER_HOST` names a remote engine (`tcp://`, `ssh://`, …).
    #[error("`DOCKER_HOST={host}` is not a unix socket; berth talks only to a local Docker engine")]
    Unsupported { host: String },
    /// The socket is missing, refuses connections or may not be opened; also a timeout.
    #[error("the Docker engine is not reachable at `{}`", socket.display())]
    Unreachable {
        socket: PathBuf,
        source: std::io::Error,
    },
    /// A non-2xx answer, with the engine's `message` (or the body's start).
    #[error("the Docker engine answered `{path}` with HTTP {status}: {message}")]
    Status {
        path: String,
        status: u16,
        message: String,
    },
    /// An answer that is not well-formed HTTP or not the expected JSON.
    #[error("cannot understand the Docker engine's answer to `{path}`: {detail}")]
    Protocol { path: String, detail: String },
}

impl EngineError {
    /// What the user can do about this error.
    pub fn hint(&self) -> &'static str {
        match self {
            EngineError::Unsupported { .. } => {
                "unset DOCKER_HOST, or set it to a local socket such as unix:///var/run/docker.sock"
            }
            EngineError::Unreachable { source, .. }
                if source.kind() == ErrorKind::PermissionDenied =>
            {
                "add your user to the `docker` group and log in again, or set DOCKER_HOST=unix:///path/to/a/socket/you/can/use"
            }
            EngineError::Unreachable { .. } => {
                "start the Docker daemon, or set DOCKER_HOST=unix:///path/to/docker.sock"
            }
            EngineError::Status { .. } => "check the Docker engine with `docker info`",
            EngineError::Protocol { .. } => {
                "check that DOCKER_HOST points at a Docker engine's socket"
            }
        }
    }
}

impl Engine {
    /// The engine named by `DOCKER_HOST`: unset or empty means `/var/run/docker.sock`,
    /// `unix:///some/path` means that socket, and anything else (`tcp://`, `ssh://`) is
    /// refused because berth only talks to a local engine.
    pub fn from_env() -> Result<Engine, EngineError> {
        let host = std::env::var_os("DOCKER_HOST");
        let socket = match &host {
            None => socket_for_docker_host(None)?,
            Some(value) => match value.to_str() {
                Some(text) => socket_for_docker_host(Some(text))?,
                None => {
                    return Err(EngineError::Unsupported {
                        host: value.to_string_lossy().into_owned(),
                    });
                }
            },
        };
        Ok(Engine { socket })
    }

    /// The engine listening on `socket`.
    pub fn at(socket: PathBuf) -> Engine {
        Engine { socket }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The engine's version, e.g. `20.10.24+dfsg1`.
    pub fn version(&self) -> Result<String, EngineError> {
        let answer: WireVersion = self.get("/version")?;
        Ok(answer.version)
    }

    /// Containers carrying every label in `labels` (all containers when it is empty);
    /// stopped and created ones too when `all` is set.
    pub fn containers(
        &self,
        labels: &[(&str, &str)],
        all: bool,
    ) -> Result<Vec<Container>, EngineError> {
        let path = list_path("/containers/json", Some(all), labels);
        let answer: Vec<WireContainer> = self.get(&path)?;
        Ok(answer.into_iter().map(Container::from).collect())
    }

    /// Networks carrying every label in `labels` (all networks when it is empty).
    pub fn networks(&self, labels: &[(&str, &str)]) -> Result<Vec<Network>, EngineError> {
        let path = list_path("/networks", None, labels);
        let answer: Vec<WireNetwork> = self.get(&path)?;
        Ok(answer.into_iter().map(Network::from).collect())
    }

    /// Volumes carrying every label in `labels` (all volumes when it is empty).
    pub fn volumes(&self, labels: &[(&str, &str)]) -> Result<Vec<Volume>, EngineError> {
        let path = list_path("/volumes", None, labels);
        let answer: WireVolumes = self.get(&path)?;
        Ok(answer
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(Volume::from)
            .collect())
    }

    /// The paths an image declares as volumes (`VOLUME` in its Dockerfile); empty when
    /// the image is not on the engine yet (Compose pulls or builds it later).
    pub fn image_volumes(&self, image: &str) -> Result<Vec<String>, EngineError> {
        let path = format!("/images/{}/json", percent_encode(image));
        match self.get::<WireImage>(&path) {
            Ok(image) => Ok(image
                .config
                .and_then(|config| config.volumes)
                .map(|volumes| volumes.into_keys().collect())
                .unwrap_or_default()),
            Err(EngineError::Status { status: 404, .. }) => Ok(Vec::new()),
            Err(error) => Err(error),
        }
    }

    /// The state of one container, by id or name.
    pub fn inspect(&self, id: &str) -> Result<ContainerDetails, EngineError> {
        let path = format!("/containers/{}/json", percent_encode(id));
        let answer: WireContainerDetails = self.get(&path)?;
        Ok(ContainerDetails::from(answer))
    }

    /// Removes a container, stopping it first if it runs; one already gone is fine.
    pub fn remove_container(&self, id: &str) -> Result<(), EngineError> {
        self.delete(&format!("/containers/{}?force=1", percent_encode(id)))
    }

    /// Removes a network; one already gone is fine.
    pub fn remove_network(&self, id: &str) -> Result<(), EngineError> {
        self.delete(&format!("/networks/{}", percent_encode(id)))
    }

    fn delete(&self, path: &str) -> Result<(), EngineError> {
        match self.send("DELETE", path) {
            Ok(_) | Err(EngineError::Status { status: 404, .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Removes a volume (`DELETE /volumes/{name}`); one that no longer exists is fine.
    pub fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        self.delete(&format!("/volumes/{}", percent_encode(name)))
    }

    /// Runs `argv` in a running container, detached, and waits up to `timeout` for it to
    /// end: its exit code, or `None` if it is still running then.
    pub fn exec(
        &self,
        container: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Result<Option<i64>, EngineError> {
        #[derive(Deserialize)]
        struct Created {
            #[serde(rename = "Id")]
            id: String,
        }
        #[derive(Deserialize)]
        struct Inspected {
            #[serde(rename = "Running")]
            running: bool,
            #[serde(rename = "ExitCode")]
            exit_code: Option<i64>,
        }
        let body = serde_json::json!({ "Cmd": argv, "AttachStdout": false, "AttachStderr": false });
        let path = format!("/containers/{}/exec", percent_encode(container));
        let created: Created = self.post(&path, &body)?;
        let start = format!("/exec/{}/start", percent_encode(&created.id));
        self.send_body("POST", &start, Some(&serde_json::json!({ "Detach": true })))?;
        let deadline = std::time::Instant::now() + timeout;
        let inspect = format!("/exec/{}/json", percent_encode(&created.id));
        loop {
            let state: Inspected = self.get(&inspect)?;
            if !state.running {
                return Ok(state.exit_code);
            }
            if std::time::Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, EngineError> {
        let answer = self.send_body("POST", path, Some(body))?;
        serde_json::from_slice(&answer).map_err(|error| EngineError::Protocol {
            path: format!("POST {path}"),
            detail: format!("invalid JSON: {error}"),
        })
    }

    /// Sends `GET path` and decodes a 2xx answer's JSON body as `T`.
    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, EngineError> {
        let body = self.send("GET", path)?;
        serde_json::from_slice(&body).map_err(|error| EngineError::Protocol {
            path: format!("GET {path}"),
            detail: format!("invalid JSON: {error}"),
        })
    }

    /// Sends one request; the body of a 2xx answer, else the engine's error.
    fn send(&self, method: &str, path: &str) -> Result<Vec<u8>, EngineError> {
        self.send_body(method, path, None)
    }

    /// Sends one request, with a JSON body when given.
    fn send_body(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Vec<u8>, EngineError> {
        let raw = self
            .exchange(method, path, body)
            .map_err(|source| EngineError::Unreachable {
                socket: self.socket.clone(),
                source,
            })?;
        let protocol = |detail: String| EngineError::Protocol {
            path: format!("{method} {path}"),
            detail,
        };
        let response = parse_response(&raw).map_err(protocol)?;
        if !(200..300).contains(&response.status) {
            return Err(EngineError::Status {
                path: format!("{method} {path}"),
                status: response.status,
                message: error_message(&response.body),
            });
        }
        Ok(response.body)
    }

    /// One request on a fresh connection; the engine closes it after answering HTTP/1.0.
    fn exchange(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> std::io::Result<Vec<u8>> {
        let mut stream = UnixStream::connect(&self.socket)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let request = match body {
            Some(body) => {
                let json = body.to_string();
                format!(
                    "{method} {path} HTTP/1.0\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
                    json.len()
                )
            }
            None => format!("{method} {path} HTTP/1.0\r\nHost: docker\r\n\r\n"),
        };
        let mut raw = Vec::new();
        stream
            .write_all(request.as_bytes())
            .and_then(|()| stream.read_to_end(&mut raw))
            .map_err(|error| match error.kind() {
                // A socket timeout surfaces as EAGAIN, whose text says nothing useful.
                ErrorKind::WouldBlock | ErrorKind::TimedOut => std::io::Error::new(
                    ErrorKind::TimedOut,
                    format!("no answer within {} s", IO_TIMEOUT.as_secs()),
                ),
                _ => error,
            })?;
        Ok(raw)
    }
}

/// The socket path `DOCKER_HOST` designates (`None` when unset).
fn socket_for_docker_host(host: Option<&str>) -> Result<PathBuf, EngineError> {
    match host {
        None | Some("") => Ok(PathBuf::from(DEFAULT_SOCKET)),
        Some(host) => match host.strip_prefix("unix://") {
            Some("") => Ok(PathBuf::from(DEFAULT_SOCKET)),
            Some(path) => Ok(PathBuf::from(path)),
            None => Err(EngineError::Unsupported {
                host: host.to_string(),
            }),
        },
    }
}

/// A container as the engine lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    pub id: String,
    /// The container's name, without the engine's leading `/`.
    pub name: String,
    pub image: String,
    /// `running`, `exited`, `created`, `paused`, `restarting`, `removing` or `dead`.
    pub state: String,
    /// The engine's summary, e.g. `Up 3 seconds (healthy)`.
    pub status: String,
    pub labels: BTreeMap<String, String>,
    pub ports: Vec<PublishedPort>,
}

impl Container {
    /// The health check's verdict, read from [`Container::status`]; `None` when the
    /// container has no health check (or is not running).
    pub fn health(&self) -> Option<Health> {
        health_from_status(&self.status)
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

/// The verdict of a container's health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    /// Reads the engine's `State.Health.Status`; `none` and unknown words give `None`.
    fn from_word(word: &str) -> Option<Health> {
        match word {
            "starting" => Some(Health::Starting),
            "healthy" => Some(Health::Healthy),
            "unhealthy" => Some(Health::Unhealthy),
            _ => None,
        }
    }
}

/// Reads the health suffix the engine appends to a running container's status.
fn health_from_status(status: &str) -> Option<Health> {
    if status.contains("(health: starting)") {
        Some(Health::Starting)
    } else if status.contains("(unhealthy)") {
        Some(Health::Unhealthy)
    } else if status.contains("(healthy)") {
        Some(Health::Healthy)
    } else {
        None
    }
}

/// A container port, and the host address it is published on if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPort {
    /// The host address, e.g. `127.0.0.1` or `0.0.0.0`; `None` when not published.
    pub ip: Option<String>,
    pub private_port: u16,
    pub public_port: Option<u16>,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// The part of a container's inspection berth needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerDetails {
    pub id: String,
    /// The container's name, without the engine's leading `/`.
    pub name: String,
    /// `State.Status`: `created`, `running`, `paused`, `restarting`, `removing`, `exited`
    /// or `dead`.
    pub state: String,
    /// The last exit code; `None` while the container has not yet finished a run.
    pub exit_code: Option<i64>,
    /// `None` when the container has no health check.
    pub health: Option<Health>,
    /// The PID of its main process on the host while it runs (`State.Pid`).
    pub pid: Option<u32>,
    pub restart_count: u32,
    /// RFC 3339 time of the last start; `None` if it never started.
    pub started_at: Option<String>,
    /// RFC 3339 time of the last exit; `None` if it never exited.
    pub finished_at: Option<String>,
}

// The engine's wire format. Labels, lists and names can be null or missing, so every such
// field is optional here and defaulted during conversion.

#[derive(Deserialize)]
struct WireVersion {
    #[serde(rename = "Version")]
    version: String,
}

#[derive(Deserialize)]
struct WireContainer {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Names", default)]
    names: Option<Vec<String>>,
    #[serde(rename = "Image", default)]
    image: Option<String>,
    #[serde(rename = "State", default)]
    state: Option<String>,
    #[serde(rename = "Status", default)]
    status: Option<String>,
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "Ports", default)]
    ports: Option<Vec<WirePort>>,
}

#[derive(Deserialize)]
struct WirePort {
    #[serde(rename = "IP", default)]
    ip: Option<String>,
    #[serde(rename = "PrivatePort")]
    private_port: u16,
    #[serde(rename = "PublicPort", default)]
    public_port: Option<u16>,
    #[serde(rename = "Type", default)]
    protocol: Option<String>,
}

#[derive(Deserialize)]
struct WireNetwork {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct WireVolumes {
    #[serde(rename = "Volumes", default)]
    volumes: Option<Vec<WireVolume>>,
}

#[derive(Deserialize)]
struct WireVolume {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct WireImage {
    #[serde(rename = "Config", default)]
    config: Option<WireImageConfig>,
}

#[derive(Deserialize)]
struct WireImageConfig {
    #[serde(rename = "Volumes", default)]
    volumes: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct WireContainerDetails {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Name", default)]
    name: Option<String>,
    #[serde(rename = "State")]
    state: WireState,
    #[serde(rename = "RestartCount", default)]
    restart_count: Option<u32>,
}

#[derive(Deserialize)]
struct WireState {
    #[serde(rename = "Status", default)]
    status: Option<String>,
    #[serde(rename = "ExitCode", default)]
    exit_code: Option<i64>,
    #[serde(rename = "Health", default)]
    health: Option<WireHealth>,
    #[serde(rename = "StartedAt", default)]
    started_at: Option<String>,
    #[serde(rename = "FinishedAt", default)]
    finished_at: Option<String>,
    /// 0 when the container does not run.
    #[serde(rename = "Pid", default)]
    pid: Option<u32>,
}

#[derive(Deserialize)]
struct WireHealth {
    #[serde(rename = "Status", default)]
    status: Option<String>,
}

#[derive(Deserialize)]
struct WireErrorMessage {
    message: String,
}

impl From<WireContainer> for Container {
    fn from(wire: WireContainer) -> Self {
        let name = wire
            .names
            .unwrap_or_default()
            .into_iter()
            .next()
            .map(|name| strip_slash(&name).to_string())
            .unwrap_or_default();
        let ports = wire
            .ports
            .unwrap_or_default()
            .into_iter()
            .map(|port| PublishedPort {
                ip: port.ip.filter(|ip| !ip.is_empty()),
                private_port: port.private_port,
                public_port: port.public_port.filter(|&public| public != 0),
                protocol: port.protocol.unwrap_or_else(|| "tcp".to_string()),
            })
            .collect();
        Container {
            id: wire.id,
            name,
            image: wire.image.unwrap_or_default(),
            state: wire.state.unwrap_or_default(),
            status: wire.status.unwrap_or_default(),
            labels: wire.labels.unwrap_or_default(),
            ports,
        }
    }
}

impl From<WireNetwork> for Network {
    fn from(wire: WireNetwork) -> Self {
        Network {
            id: wire.id,
            name: wire.name,
            labels: wire.labels.unwrap_or_default(),
        }
    }
}

impl From<WireVolume> for Volume {
    fn from(wire: WireVolume) -> Self {
        Volume {
            name: wire.name,
            labels: wire.labels.unwrap_or_default(),
        }
    }
}

impl From<WireContainerDetails> for ContainerDetails {
    fn from(wire: WireContainerDetails) -> Self {
        let state = wire.state.status.unwrap_or_default();
        // The engine reports exit code 0 for a container that has not finished yet.
        let finished_a_run = !matches!(state.as_str(), "created" | "running" | "paused");
        ContainerDetails {
            id: wire.id,
            name: strip_slash(&wire.name.unwrap_or_default()).to_string(),
            exit_code: wire.state.exit_code.filter(|_| finished_a_run),
            health: wire
                .state
                .health
                .and_then(|health| health.status)
                .and_then(|word| Health::from_word(&word)),
            pid: wire.state.pid.filter(|pid| *pid != 0),
            restart_count: wire.restart_count.unwrap_or(0),
            started_at: real_time(wire.state.started_at),
            finished_at: real_time(wire.state.finished_at),
            state,
        }
    }
}

fn strip_slash(name: &str) -> &str {
    name.strip_prefix('/').unwrap_or(name)
}

/// The engine writes Go's zero time (`0001-01-01T00:00:00Z`) for "never".
fn real_time(time: Option<String>) -> Option<String> {
    time.filter(|time| !time.is_empty() && !time.starts_with("0001-01-01"))
}

/// The message of an engine error body (`{"message": "..."}`), or the body itself.
fn error_message(body: &[u8]) -> String {
    if let Ok(error) = serde_json::from_slice::<WireErrorMessage>(body) {
        return error.message;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "no message".to_string()
    } else {
        text.chars().take(200).collect()
    }
}

/// A list endpoint's path with its query: `all` when given, and a label filter when
/// `labels` is not empty.
fn list_path(base: &str, all: Option<bool>, labels: &[(&str, &str)]) -> String {
    let mut query = Vec::new();
    if let Some(all) = all {
        query.push(format!("all={}", if all { 1 } else { 0 }));
    }
    if let Some(filters) = label_filters(labels) {
        query.push(format!("filters={}", percent_encode(&filters)));
    }
    if query.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", query.join("&"))
    }
}

/// The engine's `filters` JSON for containers carrying every `key=value` in `labels`.
fn label_filters(labels: &[(&str, &str)]) -> Option<String> {
    if labels.is_empty() {
        return None;
    }
    let labels: Vec<String> = labels
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    Some(serde_json::json!({ "label": labels }).to_string())
}

/// Percent-encodes every byte outside RFC 3986's unreserved set.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A complete HTTP answer, body already de-chunked.
#[derive(Debug, PartialEq)]
struct Response {
    status: u16,
    body: Vec<u8>,
}

/// Parses a whole HTTP/1.x answer as read until the server closed the connection.
fn parse_response(raw: &[u8]) -> Result<Response, String> {
    if raw.is_empty() {
        return Err("empty answer".to_string());
    }
    let end = find(raw, b"\r\n\r\n").ok_or("the answer's headers never end")?;
    let head =
        std::str::from_utf8(&raw[..end]).map_err(|_| "the answer's headers are not UTF-8")?;
    let body = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status = parse_status_line(lines.next().unwrap_or_default())?;
    let mut chunked = false;
    let mut content_length = None;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("malformed header line `{line}`"))?;
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .split(',')
                .any(|coding| coding.trim().eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("content-length") {
            let length: usize = value
                .parse()
                .map_err(|_| format!("malformed Content-Length `{value}`"))?;
            content_length = Some(length);
        }
    }
    let body = if chunked {
        decode_chunked(body)?
    } else if let Some(length) = content_length {
        if body.len() < length {
            return Err(format!(
                "the body is cut short: {} of {length} bytes",
                body.len()
            ));
        }
        body[..length].to_vec()
    } else {
        body.to_vec()
    };
    Ok(Response { status, body })
}

/// Reads the code from a status line such as `HTTP/1.0 200 OK`.
fn parse_status_line(line: &str) -> Result<u16, String> {
    let malformed = || format!("malformed status line `{line}`");
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/") || code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(malformed());
    }
    let code: u16 = code.parse().map_err(|_| malformed())?;
    if !(100..600).contains(&code) {
        return Err(malformed());
    }
    Ok(code)
}

/// Decodes a `Transfer-Encoding: chunked` body; trailers after the last chunk are ignored.
fn decode_chunked(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n").ok_or("a chunk size line never ends")?;
        let line = std::str::from_utf8(&data[..line_end])
            .map_err(|_| "a chunk size line is not UTF-8".to_string())?;
        // A size may carry extensions after `;`, which mean nothing to us.
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("malformed chunk size `{line}`"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk_end = size
            .checked_add(2)
            .filter(|&end| end <= data.len())
            .ok_or_else(|| format!("a chunk of {size} bytes is cut short"))?;
        if &data[size..chunk_end] != b"\r\n" {
            return Err(format!("a chunk of {size} bytes does not end with CRLF"));
        }
        out.extend_from_slice(&data[..size]);
        data = &data[chunk_end..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_host_selects_the_socket() {
        for (host, expected) in [
            (None, DEFAULT_SOCKET),
            (Some(""), DEFAULT_SOCKET),
            (Some("unix://"), DEFAULT_SOCKET),
            (Some("unix:///var/run/docker.sock"), "/var/run/docker.sock"),
            (
                Some("unix:///run/user/1000/docker.sock"),
                "/run/user/1000/docker.sock",
            ),
        ] {
            let socket = socket_for_docker_host(host).unwrap();
            assert_eq!(socket, PathBuf::from(expected), "{host:?}");
        }
        for host in [
            "tcp://127.0.0.1:2375",
            "ssh://me@box",
            "npipe:////./pipe/x",
            "/x",
        ] {
            let error = socket_for_docker_host(Some(host)).unwrap_err();
            assert!(
                matches!(&error, EngineError::Unsupported { host: h } if h == host),
                "{host}: {error:?}"
            );
            assert_eq!(
                error.to_string(),
                format!(
                    "`DOCKER_HOST={host}` is not a unix socket; berth talks only to a local Docker engine"
                )
            );
        }
    }

    #[test]
    fn parses_status_lines() {
        for (line, expected) in [
            ("HTTP/1.0 200 OK", Ok(200)),
            ("HTTP/1.1 404 Not Found", Ok(404)),
            ("HTTP/1.1 500", Ok(500)),
            ("HTTP/1.0 204 No Content", Ok(204)),
            ("HTTP/1.0 20 OK", Err(())),
            ("HTTP/1.0 2000 OK", Err(())),
            ("HTTP/1.0 099 Odd", Err(())),
            ("HTTP/1.0 abc OK", Err(())),
            ("HTTP/1.0", Err(())),
            ("SSH-2.0-OpenSSH_9.2", Err(())),
            ("", Err(())),
        ] {
            assert_eq!(parse_status_line(line).map_err(|_| ()), expected, "{line}");
        }
    }

    #[test]
    fn parses_plain_responses() {
        let raw =
            b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]";
        assert_eq!(
            parse_response(raw).unwrap(),
            Response {
                status: 200,
                body: b"[]".to_vec()
            }
        );
        // Without Content-Length the body runs to the end of the connection.
        let raw = b"HTTP/1.0 404 Not Found\r\n\r\n{\"message\":\"No such container: x\"}\n";
        let response = parse_response(raw).unwrap();
        assert_eq!(response.status, 404);
        assert_eq!(error_message(&response.body), "No such container: x");
        // Bytes past Content-Length are not part of the body.
        let raw = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabcdef";
        assert_eq!(parse_response(raw).unwrap().body, b"abc");
        // A body may itself contain a blank line.
        let raw = b"HTTP/1.0 200 OK\r\n\r\na\r\n\r\nb";
        assert_eq!(parse_response(raw).unwrap().body, b"a\r\n\r\nb");
        let raw = b"HTTP/1.0 204 No Content\r\n\r\n";
        assert_eq!(parse_response(raw).unwrap().body, b"");
    }

    #[test]
    fn decodes_chunked_responses() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                    4\r\n[{\"a\r\nd;name=value\r\n\":1},{\"b\":2}]\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let response = parse_response(raw).unwrap();
        assert_eq!(response.body, br#"[{"a":1},{"b":2}]"#);
        assert_eq!(decode_chunked(b"0\r\n\r\n").unwrap(), b"");
        assert_eq!(
            decode_chunked(b"A\r\n0123456789\r\n1\r\n!\r\n0\r\n\r\n").unwrap(),
            b"0123456789!"
        );
        for bad in [
            &b""[..],
            b"5\r\nabc",
            b"3\r\nabcdef\r\n0\r\n\r\n",
            b"zz\r\nabc\r\n0\r\n\r\n",
            b"\r\n",
            b"ffffffffffffffff\r\nabc\r\n",
            b"3\r\nabc\r\n",
        ] {
            assert!(
                decode_chunked(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn rejects_bad_responses() {
        for (raw, expected) in [
            (&b""[..], "empty answer"),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: 2",
                "the answer's headers never end",
            ),
            (b"garbage\r\n\r\n[]", "malformed status line `garbage`"),
            (
                b"HTTP/1.0 200 OK\r\nNoColon\r\n\r\n",
                "malformed header line `NoColon`",
            ),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: lots\r\n\r\n",
                "malformed Content-Length `lots`",
            ),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\n[]",
                "the body is cut short: 2 of 10 bytes",
            ),
            (
                b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                "a chunk of 5 bytes is cut short",
            ),
            (
                b"HTTP/1.0 200 \xff\r\n\r\n",
                "the answer's headers are not UTF-8",
            ),
        ] {
            assert_eq!(
                parse_response(raw).unwrap_err(),
                expected,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn error_messages_fall_back_to_the_body() {
        assert_eq!(
            error_message(br#"{"message":"page not found"}"#),
            "page not found"
        );
        assert_eq!(error_message(b"  plain text\n"), "plain text");
        assert_eq!(error_message(b""), "no message");
        assert_eq!(error_message(&[b'x'; 500]).len(), 200);
    }

    #[test]
    fn encodes_label_filters() {
        assert_eq!(label_filters(&[]), None);
        assert_eq!(
            label_filters(&[("berth.instance", "shop-1"), ("a", "b=c")]).unwrap(),
            r#"{"label":["berth.instance=shop-1","a=b=c"]}"#
        );
        // Quotes and backslashes are escaped as JSON before the URL encoding.
        assert_eq!(
            label_filters(&[("k", "say \"hi\" \\")]).unwrap(),
            r#"{"label":["k=say \"hi\" \\"]}"#
        );
        assert_eq!(percent_encode("a-Z_0.9~"), "a-Z_0.9~");
        assert_eq!(
            percent_encode("a b/&?=#%é"),
            "a%20b%2F%26%3F%3D%23%25%C3%A9"
        );
    }

    #[test]
    fn builds_list_paths() {
        assert_eq!(
            list_path("/containers/json", Some(true), &[]),
            "/containers/json?all=1"
        );
        assert_eq!(
            list_path(
                "/containers/json",
                Some(false),
                &[("berth.instance", "shop-1")]
            ),
            "/containers/json?all=0&filters=%7B%22label%22%3A%5B%22berth.instance%3Dshop-1%22%5D%7D"
        );
        assert_eq!(list_path("/networks", None, &[]), "/networks");
        assert_eq!(
            list_path("/volumes", None, &[("k", "v")]),
            "/volumes?filters=%7B%22label%22%3A%5B%22k%3Dv%22%5D%7D"
        );
    }

    #[test]
    fn reads_health_from_status() {
        for (status, expected) in [
            ("Up 3 seconds (healthy)", Some(Health::Healthy)),
            ("Up 3 seconds (unhealthy)", Some(Health::Unhealthy)),
            ("Up 1 second (health: starting)", Some(Health::Starting)),
            ("Up 2 hours", None),
            ("Up 2 hours (Paused)", None),
            ("Exited (0) 5 minutes ago", None),
            ("Created", None),
            ("", None),
        ] {
            assert_eq!(health_from_status(status), expected, "{status}");
        }
    }

    #[test]
    fn converts_the_wire_format() {
        let wire: Vec<WireContainer> = serde_json::from_str(
            r#"[{"Id":"abc","Names":["/shop-1-web-1","/other/alias"],"Image":"nginx",
                 "State":"running","Status":"Up 3 seconds (health: starting)",
                 "Labels":{"berth.instance":"shop-1"},
                 "Ports":[{"IP":"127.0.0.1","PrivatePort":80,"PublicPort":8080,"Type":"tcp"},
                          {"PrivatePort":443,"Type":"tcp"}]},
                {"Id":"def","Names":null,"Image":"x","State":"created","Status":"Created",
                 "Labels":null,"Ports":null}]"#,
        )
        .unwrap();
        let containers: Vec<Container> = wire.into_iter().map(Container::from).collect();
        assert_eq!(containers[0].name, "shop-1-web-1");
        assert_eq!(containers[0].label("berth.instance"), Some("shop-1"));
        assert_eq!(containers[0].label("missing"), None);
        assert_eq!(containers[0].health(), Some(Health::Starting));
        assert_eq!(
            containers[0].ports,
            vec![
                PublishedPort {
                    ip: Some("127.0.0.1".to_string()),
                    private_port: 80,
                    public_port: Some(8080),
                    protocol: "tcp".to_string(),
                },
                PublishedPort {
                    ip: None,
                    private_port: 443,
                    public_port: None,
                    protocol: "tcp".to_string(),
                },
            ]
        );
        assert_eq!(containers[1].name, "");
        assert!(containers[1].labels.is_empty());
        assert!(containers[1].ports.is_empty());

        let volumes: WireVolumes =
            serde_json::from_str(r#"{"Volumes":null,"Warnings":null}"#).unwrap();
        assert!(volumes.volumes.is_none());
        let network: WireNetwork =
            serde_json::from_str(r#"{"Id":"n1","Name":"bridge","Labels":null}"#).unwrap();
        assert!(Network::from(network).labels.is_empty());

        let details: WireContainerDetails = serde_json::from_str(
            r#"{"Id":"abc","Name":"/web","RestartCount":2,
                "State":{"Status":"exited","ExitCode":3,"StartedAt":"2024-01-01T00:00:00Z",
                         "FinishedAt":"2024-01-01T00:01:00Z","Health":{"Status":"unhealthy"},
                         "Pid":0}}"#,
        )
        .unwrap();
        assert_eq!(
            ContainerDetails::from(details),
            ContainerDetails {
                id: "abc".to_string(),
                name: "web".to_string(),
                state: "exited".to_string(),
                exit_code: Some(3),
                health: Some(Health::Unhealthy),
                pid: None,
                restart_count: 2,
                started_at: Some("2024-01-01T00:00:00Z".to_string()),
                finished_at: Some("2024-01-01T00:01:00Z".to_string()),
            }
        );
        let details: WireContainerDetails = serde_json::from_str(
            r#"{"Id":"abc","Name":"/web","RestartCount":0,
                "State":{"Status":"created","ExitCode":0,"StartedAt":"0001-01-01T00:00:00Z",
                         "FinishedAt":"0001-01-01T00:00:00Z"}}"#,
        )
        .unwrap();
        let details = ContainerDetails::from(details);
        assert_eq!(details.exit_code, None);
        assert_eq!(details.health, None);
        assert_eq!(details.started_at, None);
        assert_eq!(details.finished_at, None);
    }

    #[test]
    fn a_missing_socket_is_unreachable() {
        let socket =
            std::env::temp_dir().join(format!("berth-no-engine-{}.sock", std::process::id()));
        let error = Engine::at(socket.clone()).version().unwrap_err();
        assert!(
            matches!(&error, EngineError::Unreachable { socket: s, source } if *s == socket && source.kind() == ErrorKind::NotFound),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!(
                "the Docker engine is not reachable at `{}`",
                socket.display()
            )
        );
        assert_eq!(
            error.hint(),
            "start the Docker daemon, or set DOCKER_HOST=unix:///path/to/docker.sock"
        );
    }

    /// A fake engine on a temporary socket that answers one connection with `answer`.
    fn serve_once(answer: &'static [u8]) -> (Engine, std::thread::JoinHandle<String>) {
        use std::os::unix::net::UnixListener;
        let socket = std::env::temp_dir().join(format!(
            "berth-fake-engine-{}-{}.sock",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let listener = UnixListener::bind(&socket).unwrap();
        let engine = Engine::at(socket.clone());
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buffer = [0; 1024];
            while find(&request, b"\r\n\r\n").is_none() {
                let read = stream.read(&mut buffer).unwrap();
                assert!(read > 0, "the client closed before ending its request");
                request.extend_from_slice(&buffer[..read]);
            }
            stream.write_all(answer).unwrap();
            drop(stream);
            fs_err::remove_file(&socket).unwrap();
            String::from_utf8(request).unwrap()
        });
        (engine, server)
    }

    #[test]
    fn talks_http_over_the_socket() {
        let (engine, server) = serve_once(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              9\r\n{\"Volumes\r\n14\r\n\":[{\"Name\":\"v\",\"Labe\r\nb\r\nls\":null}]}\r\n0\r\n\r\n",
        );
        let volumes = engine.volumes(&[("k", "v")]).unwrap();
        assert_eq!(
            volumes,
            vec![Volume {
                name: "v".to_string(),
                labels: BTreeMap::new()
            }]
        );
        assert_eq!(
            server.join().unwrap(),
            "GET /volumes?filters=%7B%22label%22%3A%5B%22k%3Dv%22%5D%7D HTTP/1.0\r\nHost: docker\r\n\r\n"
        );

        let (engine, server) = serve_once(
            b"HTTP/1.0 404 Not Found\r\nContent-Type: application/json\r\n\r\n{\"message\":\"No such container: nope\"}\n",
        );
        let error = engine.inspect("nope").unwrap_err();
        server.join().unwrap();
        assert_eq!(
            error.to_string(),
            "the Docker engine answered `GET /containers/nope/json` with HTTP 404: No such container: nope"
        );

        let (engine, server) = serve_once(b"HTTP/1.0 200 OK\r\n\r\n{\"Version\":");
        let error = engine.version().unwrap_err();
        server.join().unwrap();
        assert!(
            error.to_string().starts_with(
                "cannot understand the Docker engine's answer to `GET /version`: invalid JSON: "
            ),
            "{error}"
        );
    }

    // The rest talks to a real engine through the `docker` CLI and this client.

    const TEST_IMAGE: &str = "berth-test-engine:latest";

    /// The engine from `DOCKER_HOST`, or `None` (after a loud note) when there is none and
    /// `BERTH_REQUIRE_DOCKER=1` is not set.
    fn engine_or_skip() -> Option<Engine> {
        let required = std::env::var("BERTH_REQUIRE_DOCKER").is_ok_and(|value| value == "1");
        let engine = Engine::from_env().and_then(|engine| engine.version().map(|_| engine));
        match engine {
            Ok(engine) => Some(engine),
            Err(error) if required => panic!("BERTH_REQUIRE_DOCKER=1 but {error}"),
            Err(error) => {
                eprintln!(
                    "\n*** SKIPPED: no Docker engine ({error}); set BERTH_REQUIRE_DOCKER=1 to fail instead ***\n"
                );
                None
            }
        }
    }

    /// Runs the `docker` CLI, panicking with its stderr on failure; returns trimmed stdout.
    fn docker(args: &[&str]) -> String {
        let output = std::process::Command::new("docker")
            .args(args)
            .output()
            .unwrap_or_else(|error| panic!("cannot run `docker`: {error}"));
        assert!(
            output.status.success(),
            "`docker {}` failed with {}: {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    }

    /// Builds [`TEST_IMAGE`] (a static busybox on `FROM scratch`) unless it already exists.
    fn ensure_test_image(unique: &str) {
        let exists = std::process::Command::new("docker")
            .args(["image", "inspect", TEST_IMAGE])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        if exists {
            return;
        }
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .map(Path::new)
            .find(|path| path.exists())
            .expect("the Docker tests need a static busybox: apt-get install -y busybox-static");
        let context = TempDir(std::env::temp_dir().join(format!("berth-test-engine-{unique}")));
        let bin = context.0.join("rootfs/bin");
        fs_err::create_dir_all(&bin).unwrap();
        fs_err::copy(busybox, bin.join("busybox")).unwrap();
        for applet in ["sh", "sleep"] {
            fs_err::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
        fs_err::write(
            context.0.join("Dockerfile"),
            "FROM scratch\nCOPY rootfs /\nENV PATH=/bin\n",
        )
        .unwrap();
        docker(&[
            "build",
            "--quiet",
            "--tag",
            TEST_IMAGE,
            &context.0.to_string_lossy(),
        ]);
    }

    struct TempDir(PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs_err::remove_dir_all(&self.0);
        }
    }

    /// Removes what the test made, even when it fails half way.
    struct Cleanup {
        containers: Vec<String>,
        networks: Vec<String>,
        volumes: Vec<String>,
    }

    impl Drop for Cleanup {
        fn drop(&mut self) {
            let quiet = |args: Vec<&str>| {
                let _ = std::process::Command::new("docker")
                    .args(args)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
            };
            for name in &self.containers {
                quiet(vec!["rm", "--force", "--volumes", name]);
            }
            for name in &self.networks {
                quiet(vec!["network", "rm", name]);
            }
            for name in &self.volumes {
                quiet(vec!["volume", "rm", "--force", name]);
            }
        }
    }

    #[test]
    fn talks_to_a_real_engine() {
        let Some(engine) = engine_or_skip() else {
            return;
        };
        let unique = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let run_label = format!("berth.test.run={unique}");
        let web = format!("berth-test-engine-web-{unique}");
        let idle = format!("berth-test-engine-idle-{unique}");
        let done = format!("berth-test-engine-done-{unique}");
        let network = format!("berth-test-engine-net-{unique}");
        let volume = format!("berth-test-engine-vol-{unique}");
        let _cleanup = Cleanup {
            containers: vec![web.clone(), idle.clone(), done.clone()],
            networks: vec![network.clone()],
            volumes: vec![volume.clone()],
        };

        assert_eq!(
            engine.version().unwrap(),
            docker(&["version", "--format", "{{.Server.Version}}"])
        );

        ensure_test_image(&unique);
        docker(&[
            "network",
            "create",
            "--label",
            &run_label,
            "--label",
            "berth.test.kind=net",
            &network,
        ]);
        docker(&[
            "volume",
            "create",
            "--label",
            &run_label,
            "--label",
            "berth.test.kind=vol",
            &volume,
        ]);
        docker(&[
            "run",
            "--detach",
            "--name",
            &web,
            "--network",
            &network,
            "--label",
            &run_label,
            "--label",
            "berth.test.role=web",
            "--publish",
            "127.0.0.1::8080",
            "--health-cmd",
            "true",
            "--health-interval",
            "200ms",
            TEST_IMAGE,
            "sleep",
            "30",
        ]);
        docker(&[
            "create",
            "--name",
            &idle,
            "--label",
            &run_label,
            "--label",
            "berth.test.role=idle",
            TEST_IMAGE,
            "sleep",
            "30",
        ]);
        docker(&[
            "run",
            "--detach",
            "--name",
            &done,
            "--label",
            &run_label,
            "--label",
            "berth.test.role=done",
            TEST_IMAGE,
            "sh",
            "-c",
            "exit 3",
        ]);
        assert_eq!(docker(&["wait", &done]), "3");

        // The list shows the health check's verdict once the first check has run.
        let by_run = [("berth.test.run", unique.as_str())];
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let running = loop {
            let running = engine.containers(&by_run, false).unwrap();
            assert_eq!(running.len(), 1, "{running:#?}");
            if running[0].health() == Some(Health::Healthy) {
                break running.into_iter().next().unwrap();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "`{web}` never became healthy: {running:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let published = docker(&["port", &web, "8080/tcp"]);
        let public_port: u16 = published
            .strip_prefix("127.0.0.1:")
            .unwrap_or_else(|| panic!("unexpected `docker port` answer `{published}`"))
            .parse()
            .unwrap();
        assert_eq!(running.name, web);
        assert_eq!(running.image, TEST_IMAGE);
        assert_eq!(running.state, "running");
        assert!(running.status.starts_with("Up "), "{}", running.status);
        assert_eq!(running.label("berth.test.role"), Some("web"));
        assert_eq!(running.label("berth.test.run"), Some(unique.as_str()));
        assert_eq!(
            running.ports,
            vec![PublishedPort {
                ip: Some("127.0.0.1".to_string()),
                private_port: 8080,
                public_port: Some(public_port),
                protocol: "tcp".to_string(),
            }]
        );

        let mut everything: Vec<(String, String)> = engine
            .containers(&by_run, true)
            .unwrap()
            .into_iter()
            .map(|container| (container.name, container.state))
            .collect();
        everything.sort();
        let mut expected = vec![
            (web.clone(), "running".to_string()),
            (idle.clone(), "created".to_string()),
            (done.clone(), "exited".to_string()),
        ];
        expected.sort();
        assert_eq!(everything, expected);

        // Several labels must all match.
        let idle_only = engine
            .containers(&[by_run[0], ("berth.test.role", "idle")], true)
            .unwrap();
        assert_eq!(idle_only.len(), 1, "{idle_only:#?}");
        assert_eq!(idle_only[0].name, idle);
        assert!(idle_only[0].ports.is_empty());
        assert_eq!(idle_only[0].health(), None);
        assert!(
            engine
                .containers(&[("berth.test.run", "no-such-run")], true)
                .unwrap()
                .is_empty()
        );

        let details = engine.inspect(&running.id).unwrap();
        assert_eq!(details.id, running.id);
        assert_eq!(details.name, web);
        assert_eq!(details.state, "running");
        assert_eq!(details.exit_code, None);
        assert_eq!(details.health, Some(Health::Healthy));
        assert_eq!(details.restart_count, 0);
        assert!(details.started_at.is_some());
        assert_eq!(details.finished_at, None);

        let details = engine.inspect(&idle).unwrap();
        assert_eq!(details.name, idle);
        assert_eq!(details.state, "created");
        assert_eq!(details.exit_code, None);
        assert_eq!(details.health, None);
        assert_eq!(details.started_at, None);

        let details = engine.inspect(&done).unwrap();
        assert_eq!(details.state, "exited");
        assert_eq!(details.exit_code, Some(3));
        assert!(details.started_at.is_some());
        assert!(details.finished_at.is_some());

        let missing = format!("berth-test-engine-missing-{unique}");
        match engine.inspect(&missing) {
            Err(EngineError::Status {
                status: 404,
                message,
                ..
            }) => assert!(message.contains(&missing), "{message}"),
            other => panic!("inspecting `{missing}` gave {other:?}"),
        }

        let networks = engine.networks(&by_run).unwrap();
        assert_eq!(networks.len(), 1, "{networks:#?}");
        assert_eq!(networks[0].name, network);
        assert!(!networks[0].id.is_empty());
        assert_eq!(
            networks[0]
                .labels
                .get("berth.test.kind")
                .map(String::as_str),
            Some("net")
        );
        assert!(
            engine
                .networks(&[("berth.test.run", "no-such-run")])
                .unwrap()
                .is_empty()
        );

        let volumes = engine.volumes(&by_run).unwrap();
        assert_eq!(volumes.len(), 1, "{volumes:#?}");
        assert_eq!(volumes[0].name, volume);
        assert_eq!(
            volumes[0].labels.get("berth.test.kind").map(String::as_str),
            Some("vol")
        );
        assert!(
            engine
                .volumes(&[("berth.test.run", "no-such-run")])
                .unwrap()
                .is_empty()
        );
    }
}
