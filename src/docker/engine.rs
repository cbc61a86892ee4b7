//! A small synchronous façade over bollard, the Docker Engine API client.
//!
//! berth asks the engine directly for what it needs to know (which containers, networks
//! and volumes carry an instance's labels, and what state a container is in) because one
//! request takes a millisecond or two, while spawning the `docker` CLI costs about 40 ms
//! each time, and status views ask many such questions. Everything that changes the
//! engine's state in bulk or streams output (`up`, `down`, `logs`, `exec`) still goes
//! through the Compose tool and the `docker` CLI, pointed at the same [`Endpoint`].
//!
//! Each [`Engine`] owns a current-thread tokio runtime that runs one request at a time to
//! completion on the calling thread: no worker threads are started, and a clone of the
//! engine, shared by several threads, takes turns on the same runtime. The client connects
//! lazily, so an engine made before the daemon started works once it runs. Requests carry
//! no API version in their path, so the engine answers in its own version: berth reads
//! only fields that every engine from API 1.41 (Docker 20.10) on has.

use std::collections::HashMap;
use std::future::Future;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptionsBuilder, ListNetworksOptionsBuilder,
    ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptions,
};
use bollard::{API_DEFAULT_VERSION, BollardRequest, Docker};
use tokio::runtime::Runtime;

use super::endpoint::Endpoint;
use super::{Container, ContainerDetails, EngineError, Network, Volume};

/// How long one request may take, from connecting to the end of the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A Docker engine, reached at the endpoint the docker CLI would use.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Endpoint,
    transport: Transport,
    runtime: Runtime,
    /// Connected on first use, and again after connecting failed.
    client: Mutex<Option<Docker>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("endpoint", &self.inner.endpoint)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// The engine the docker CLI would use: `DOCKER_HOST`, else `DOCKER_CONTEXT`, else the
    /// docker config's current context, else `/var/run/docker.sock`.
    pub fn from_env() -> Result<Engine, EngineError> {
        Engine::new(Endpoint::from_env()?)
    }

    /// The engine at `endpoint`; nothing is sent until the first question.
    pub fn new(endpoint: Endpoint) -> Result<Engine, EngineError> {
        let transport = transport_for(&endpoint).map_err(|detail| EngineError::Unsupported {
            endpoint: endpoint.to_string(),
            detail,
        })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|source| EngineError::Runtime { source })?;
        Ok(Engine {
            inner: Arc::new(Inner {
                endpoint,
                transport,
                runtime,
                client: Mutex::new(None),
            }),
        })
    }

    /// Where the engine is, and how it was chosen.
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    /// The engine's version, e.g. `20.10.24+dfsg1`.
    pub fn version(&self) -> Result<String, EngineError> {
        let version = self.call("GET /version".to_string(), |docker| async move {
            docker.version().await
        })?;
        Ok(version.version.unwrap_or_default())
    }

    /// Containers carrying every label in `labels` (all containers when it is empty);
    /// stopped and created ones too when `all` is set.
    pub fn containers(
        &self,
        labels: &[(&str, &str)],
        all: bool,
    ) -> Result<Vec<Container>, EngineError> {
        let options = ListContainersOptionsBuilder::new()
            .all(all)
            .filters(&label_filters(labels))
            .build();
        let summaries = self.call("GET /containers/json".to_string(), |docker| async move {
            docker.list_containers(Some(options)).await
        })?;
        Ok(summaries.into_iter().map(Container::from).collect())
    }

    /// Networks carrying every label in `labels` (all networks when it is empty).
    pub fn networks(&self, labels: &[(&str, &str)]) -> Result<Vec<Network>, EngineError> {
        let options = ListNetworksOptionsBuilder::new()
            .filters(&label_filters(labels))
            .build();
        let networks = self.call("GET /networks".to_string(), |docker| async move {
            docker.list_networks(Some(options)).await
        })?;
        Ok(networks.into_iter().map(Network::from).collect())
    }

    /// Volumes carrying every label in `labels` (all volumes when it is empty).
    pub fn volumes(&self, labels: &[(&str, &str)]) -> Result<Vec<Volume>, EngineError> {
        let options = ListVolumesOptionsBuilder::new()
            .filters(&label_filters(labels))
            .build();
        let answer = self.call("GET /volumes".to_string(), |docker| async move {
            docker.list_volumes(Some(options)).await
        })?;
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
        let path = format!("GET /images/{image}/json");
        let image = image.to_string();
        match self.call(
            path,
            |docker| async move { docker.inspect_image(&image).await },
        ) {
            Ok(image) => Ok(image
                .config
                .and_then(|config| config.volumes)
                .unwrap_or_default()),
            Err(EngineError::Status { status: 404, .. }) => Ok(Vec::new()),
            Err(error) => Err(error),
        }
    }

    /// The state of one container, by id or name.
    pub fn inspect(&self, id: &str) -> Result<ContainerDetails, EngineError> {
        let path = format!("GET /containers/{id}/json");
        let id = id.to_string();
        let inspection = self.call(path, |docker| async move {
            docker
                .inspect_container(&id, None::<InspectContainerOptions>)
                .await
        })?;
        Ok(ContainerDetails::from(inspection))
    }

    /// Removes a container, stopping it first if it runs; one already gone is fine.
    pub fn remove_container(&self, id: &str) -> Result<(), EngineError> {
        let path = format!("DELETE /containers/{id}?force=1");
        let id = id.to_string();
        let options = RemoveContainerOptionsBuilder::new().force(true).build();
        gone_is_fine(self.call(path, |docker| async move {
            docker.remove_container(&id, Some(options)).await
        }))
    }

    /// Removes a network; one already gone is fine.
    pub fn remove_network(&self, id: &str) -> Result<(), EngineError> {
        let path = format!("DELETE /networks/{id}");
        let id = id.to_string();
        gone_is_fine(self.call(
            path,
            |docker| async move { docker.remove_network(&id).await },
        ))
    }

    /// Removes a volume; one that no longer exists is fine.
    pub fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        let path = format!("DELETE /volumes/{name}");
        let name = name.to_string();
        gone_is_fine(self.call(path, |docker| async move {
            docker
                .remove_volume(&name, None::<RemoveVolumeOptions>)
                .await
        }))
    }

    /// Runs `argv` in a running container, detached, and waits up to `timeout` for it to
    /// end: its exit code, or `None` if it is still running then.
    pub fn exec(
        &self,
        container: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Result<Option<i64>, EngineError> {
        use bollard::exec::{CreateExecOptions, StartExecOptions};
        let config = CreateExecOptions {
            cmd: Some(argv.to_vec()),
            attach_stdout: Some(false),
            attach_stderr: Some(false),
            ..CreateExecOptions::default()
        };
        let created = self.call(format!("POST /containers/{container}/exec"), |docker| {
            let container = container.to_string();
            async move { docker.create_exec(&container, config).await }
        })?;
        let id = created.id;
        self.call(format!("POST /exec/{id}/start"), |docker| {
            let id = id.clone();
            async move {
                let options = StartExecOptions {
                    detach: true,
                    ..StartExecOptions::default()
                };
                docker.start_exec(&id, Some(options)).await.map(drop)
            }
        })?;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let state = self.call(format!("GET /exec/{id}/json"), |docker| {
                let id = id.clone();
                async move { docker.inspect_exec(&id).await }
            })?;
            if state.running != Some(true) {
                return Ok(state.exit_code);
            }
            if std::time::Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Runs `future` to completion on this engine's runtime.
    pub(super) fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.inner.runtime.block_on(future)
    }

    /// Sends one request on this engine's runtime and waits for its answer, at most
    /// [`REQUEST_TIMEOUT`]. `path` names the request in errors (`GET /containers/json`).
    fn call<T, Request, Answer>(&self, path: String, request: Request) -> Result<T, EngineError>
    where
        Request: FnOnce(Docker) -> Answer,
        Answer: Future<Output = Result<T, BollardError>>,
    {
        let docker = self.client()?;
        let answer = self
            .inner
            .runtime
            .block_on(async { tokio::time::timeout(REQUEST_TIMEOUT, request(docker)).await });
        match answer {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(self.error(path, error)),
            Err(_elapsed) => Err(self.unreachable(timed_out())),
        }
    }

    /// The connected client, connecting first if need be.
    pub(super) fn client(&self) -> Result<Docker, EngineError> {
        // A panic while holding the lock leaves nothing half-done: the slot holds a
        // client or nothing, so a poisoned lock is still usable.
        let mut slot = self
            .inner
            .client
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(docker) = &*slot {
            return Ok(docker.clone());
        }
        let _context = self.inner.runtime.enter();
        let docker = connect(&self.inner.transport).map_err(|error| match error {
            BollardError::SocketNotFoundError(_) => {
                self.unreachable(std::io::Error::from_raw_os_error(libc::ENOENT))
            }
            error => EngineError::Unsupported {
                endpoint: self.inner.endpoint.to_string(),
                detail: error.to_string(),
            },
        })?;
        let docker = docker.with_request_modifier(prepare);
        *slot = Some(docker.clone());
        Ok(docker)
    }

    fn unreachable(&self, source: std::io::Error) -> EngineError {
        EngineError::Unreachable {
            endpoint: self.inner.endpoint.to_string(),
            source,
        }
    }

    /// Says what went wrong with `path` as an [`EngineError`].
    pub(super) fn error(&self, path: String, error: BollardError) -> EngineError {
        match error {
            BollardError::DockerResponseServerError {
                status_code,
                message,
            } => EngineError::Status {
                path,
                status: status_code,
                message: if message.trim().is_empty() {
                    "no message".to_string()
                } else {
                    message.trim().chars().take(200).collect()
                },
            },
            BollardError::RequestTimeoutError => self.unreachable(timed_out()),
            BollardError::SocketNotFoundError(_) => {
                self.unreachable(std::io::Error::from_raw_os_error(libc::ENOENT))
            }
            BollardError::JsonDataError { message, .. } => EngineError::Protocol {
                path,
                detail: format!("invalid JSON: {message}"),
            },
            BollardError::JsonSerdeError { err } => EngineError::Protocol {
                path,
                detail: format!("invalid JSON: {err}"),
            },
            error => match io_cause(&error) {
                Some(source) => self.unreachable(source),
                None => EngineError::Protocol {
                    path,
                    detail: error.to_string(),
                },
            },
        }
    }
}

/// `404 Not Found` means the object is already gone, which is what was asked for.
fn gone_is_fine(result: Result<(), EngineError>) -> Result<(), EngineError> {
    match result {
        Ok(()) | Err(EngineError::Status { status: 404, .. }) => Ok(()),
        Err(error) => Err(error),
    }
}

fn timed_out() -> std::io::Error {
    std::io::Error::new(
        ErrorKind::TimedOut,
        format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()),
    )
}

/// The I/O error at the bottom of a failed connection (refused, no such socket,
/// permission denied), copied so that its kind still chooses the hint.
fn io_cause(error: &(dyn std::error::Error + 'static)) -> Option<std::io::Error> {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return Some(match io.raw_os_error() {
                Some(code) => std::io::Error::from_raw_os_error(code),
                None => std::io::Error::new(io.kind(), io.to_string()),
            });
        }
        cause = error.source();
    }
    None
}

/// The engine's `filters` for objects carrying every `key=value` in `labels`.
pub(super) fn label_filters(labels: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
    if labels.is_empty() {
        return HashMap::new();
    }
    let labels = labels
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    HashMap::from([("label".to_string(), labels)])
}

/// Names berth as the client (engine logs and proxies tell it from the Compose tool),
/// and drops the `/v1.NN` bollard puts before every path, so the engine answers in its
/// own API version: engines refuse versions above their own (Docker 20.10 speaks 1.41)
/// and, since Docker 29, below 1.44, so no single version works with all of them.
fn prepare(mut request: BollardRequest) -> BollardRequest {
    request.headers_mut().insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static(concat!("berth/", env!("CARGO_PKG_VERSION"))),
    );
    let uri = request.uri();
    let Some(path_and_query) = uri.path_and_query() else {
        return request;
    };
    let Some(stripped) = strip_version(path_and_query.as_str()) else {
        return request;
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = stripped.parse().ok();
    if let Ok(uri) = http::Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
    request
}

/// `/v1.41/containers/json?all=1` without its version: `/containers/json?all=1`.
fn strip_version(path_and_query: &str) -> Option<String> {
    let rest = path_and_query.strip_prefix("/v")?;
    let end = rest.find('/')?;
    let version = &rest[..end];
    let is_version = version.split('.').count() == 2
        && version
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit()));
    is_version.then(|| rest[end..].to_string())
}

/// How berth's own client reaches an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Transport {
    /// A unix socket's path.
    Unix(String),
    /// `host:port`, plain HTTP.
    Http(String),
    /// `host:port` over TLS, verified against `ca.pem`, with a client certificate.
    Https { address: String, certs: PathBuf },
    /// `ssh://[user@]host[:port]`, through the `ssh` program and `docker system dial-stdio`.
    Ssh(String),
}

/// The transport for `endpoint`, or why berth's client cannot use it.
fn transport_for(endpoint: &Endpoint) -> Result<Transport, String> {
    let host = endpoint.host.as_str();
    let Some((scheme, rest)) = host.split_once("://") else {
        return Err("the host has no scheme such as unix:// or tcp://".to_string());
    };
    match scheme {
        "unix" => Ok(Transport::Unix(if rest.is_empty() {
            "/var/run/docker.sock".to_string()
        } else {
            rest.to_string()
        })),
        "tcp" => {
            let address = rest.trim_end_matches('/');
            if address.is_empty() {
                return Err("the tcp:// host names no address".to_string());
            }
            let default_port = if endpoint.tls.is_some() { 2376 } else { 2375 };
            let address = if has_port(address) {
                address.to_string()
            } else {
                format!("{address}:{default_port}")
            };
            match &endpoint.tls {
                None => Ok(Transport::Http(address)),
                Some(tls) if !tls.verify => Err(
                    "TLS without verifying the engine's certificate is not supported".to_string(),
                ),
                Some(tls) => {
                    let certs = tls
                        .cert_dir
                        .clone()
                        .ok_or("TLS needs a certificate directory")?;
                    let missing: Vec<&str> = ["ca.pem", "cert.pem", "key.pem"]
                        .into_iter()
                        .filter(|file| !certs.join(file).is_file())
                        .collect();
                    if !missing.is_empty() {
                        return Err(format!(
                            "TLS needs {} in `{}`",
                            missing.join(", "),
                            certs.display()
                        ));
                    }
                    Ok(Transport::Https { address, certs })
                }
            }
        }
        "ssh" => Ok(Transport::Ssh(host.to_string())),
        _ => Err(format!("`{scheme}://` engines are not supported")),
    }
}

/// Whether `host:port` (or `[v6]:port`) carries a port.
fn has_port(address: &str) -> bool {
    match address.rsplit_once(':') {
        Some((host, port)) => {
            !port.is_empty()
                && port.bytes().all(|byte| byte.is_ascii_digit())
                && (!host.contains(':') || host.ends_with(']'))
        }
        None => false,
    }
}

/// A bollard client for `transport`; must run inside the engine's runtime.
fn connect(transport: &Transport) -> Result<Docker, BollardError> {
    let timeout = REQUEST_TIMEOUT.as_secs();
    match transport {
        Transport::Unix(path) => Docker::connect_with_unix(path, timeout, API_DEFAULT_VERSION),
        Transport::Http(address) => {
            Docker::connect_with_http(address, timeout, API_DEFAULT_VERSION)
        }
        Transport::Https { address, certs } => Docker::connect_with_ssl(
            address,
            &certs.join("key.pem"),
            &certs.join("cert.pem"),
            &certs.join("ca.pem"),
            timeout,
            API_DEFAULT_VERSION,
        ),
        Transport::Ssh(host) => Docker::connect_with_ssh(host, timeout, API_DEFAULT_VERSION, None),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::path::Path;

    use super::*;
    use crate::docker::{Health, Origin, PublishedPort, Tls};

    fn endpoint(host: &str, tls: Option<Tls>) -> Endpoint {
        Endpoint {
            host: host.to_string(),
            tls,
            origin: Origin::DockerHost,
        }
    }

    #[test]
    fn chooses_the_transport() {
        for (host, expected) in [
            (
                "unix:///var/run/docker.sock",
                Transport::Unix("/var/run/docker.sock".to_string()),
            ),
            (
                "unix://",
                Transport::Unix("/var/run/docker.sock".to_string()),
            ),
            (
                "unix:///run/user/1000/docker.sock",
                Transport::Unix("/run/user/1000/docker.sock".to_string()),
            ),
            (
                "tcp://127.0.0.1:2375",
                Transport::Http("127.0.0.1:2375".to_string()),
            ),
            ("tcp://box", Transport::Http("box:2375".to_string())),
            ("tcp://box:99/", Transport::Http("box:99".to_string())),
            ("tcp://[::1]", Transport::Http("[::1]:2375".to_string())),
            ("tcp://[::1]:7", Transport::Http("[::1]:7".to_string())),
            ("ssh://me@box", Transport::Ssh("ssh://me@box".to_string())),
        ] {
            assert_eq!(transport_for(&endpoint(host, None)), Ok(expected), "{host}");
        }
        for (host, expected) in [
            ("/var/run/docker.sock", "the host has no scheme"),
            (
                "npipe:////./pipe/docker",
                "`npipe://` engines are not supported",
            ),
            ("fd://", "`fd://` engines are not supported"),
            ("tcp://", "the tcp:// host names no address"),
        ] {
            let error = transport_for(&endpoint(host, None)).unwrap_err();
            assert!(error.starts_with(expected), "{host}: {error}");
        }
        let error = Engine::new(endpoint("fd://", None)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "berth cannot talk to the Docker engine at `fd://`: `fd://` engines are not supported"
        );
    }

    #[test]
    fn tls_needs_verified_certificates() {
        let certs = tempfile::tempdir().unwrap();
        let tls = |verify| {
            Some(Tls {
                cert_dir: Some(certs.path().to_path_buf()),
                verify,
            })
        };
        let error = transport_for(&endpoint("tcp://box", tls(true))).unwrap_err();
        assert_eq!(
            error,
            format!(
                "TLS needs ca.pem, cert.pem, key.pem in `{}`",
                certs.path().display()
            )
        );
        for file in ["ca.pem", "cert.pem", "key.pem"] {
            fs_err::write(certs.path().join(file), "").unwrap();
        }
        assert_eq!(
            transport_for(&endpoint("tcp://box", tls(true))),
            Ok(Transport::Https {
                address: "box:2376".to_string(),
                certs: certs.path().to_path_buf()
            })
        );
        let error = transport_for(&endpoint("tcp://box", tls(false))).unwrap_err();
        assert!(error.contains("without verifying"), "{error}");
    }

    #[test]
    fn requests_carry_no_api_version() {
        for (path, expected) in [
            (
                "/v1.53/containers/json?all=1",
                Some("/containers/json?all=1"),
            ),
            ("/v1.41/version", Some("/version")),
            ("/containers/json", None),
            ("/volumes/v1.2", None),
            ("/vx.1/version", None),
            ("/v1/version", None),
        ] {
            assert_eq!(strip_version(path).as_deref(), expected, "{path}");
        }
    }

    #[test]
    fn builds_label_filters() {
        assert!(label_filters(&[]).is_empty());
        assert_eq!(
            label_filters(&[("berth.instance", "shop-1"), ("a", "b=c")]),
            HashMap::from([(
                "label".to_string(),
                vec!["berth.instance=shop-1".to_string(), "a=b=c".to_string()]
            )])
        );
    }

    #[test]
    fn a_missing_socket_is_unreachable() {
        let socket =
            std::env::temp_dir().join(format!("berth-no-engine-{}.sock", std::process::id()));
        let host = format!("unix://{}", socket.display());
        let engine = Engine::new(endpoint(&host, None)).unwrap();
        let error = engine.version().unwrap_err();
        assert!(
            matches!(&error, EngineError::Unreachable { source, .. } if source.kind() == ErrorKind::NotFound),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!("the Docker engine is not reachable at `{host}`")
        );
        assert_eq!(
            error.hint(),
            "start the Docker daemon, or choose another engine with `docker context use NAME` or DOCKER_HOST"
        );
        // A socket that appears later is used then.
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        drop(listener);
        let error = engine.version().unwrap_err();
        let _ = fs_err::remove_file(&socket);
        assert!(
            matches!(&error, EngineError::Unreachable { source, .. } if source.kind() == ErrorKind::ConnectionRefused),
            "{error:?}"
        );
    }

    /// A fake engine on a temporary socket that answers one connection with `answer`;
    /// the server thread checks the client's name and returns the request's first line.
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
        let engine = Engine::new(endpoint(&format!("unix://{}", socket.display()), None)).unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buffer = [0; 1024];
            while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                let read = stream.read(&mut buffer).unwrap();
                assert!(read > 0, "the client closed before ending its request");
                request.extend_from_slice(&buffer[..read]);
            }
            stream.write_all(answer).unwrap();
            drop(stream);
            fs_err::remove_file(&socket).unwrap();
            let request = String::from_utf8(request).unwrap();
            // berth names itself to the engine.
            assert!(
                request.lines().any(|line| line
                    .to_ascii_lowercase()
                    .starts_with(concat!("user-agent: berth/", env!("CARGO_PKG_VERSION")))),
                "{request}"
            );
            request.lines().next().unwrap_or_default().to_string()
        });
        (engine, server)
    }

    #[test]
    fn talks_http_over_the_socket() {
        let (engine, server) = serve_once(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              9\r\n{\"Volumes\r\n32\r\n\":[{\"Name\":\"v\",\"Driver\":\"local\",\"Mountpoint\":\"/m\",\r\n\
              2d\r\n\"Labels\":null,\"Options\":{},\"Scope\":\"local\"}]}\r\n0\r\n\r\n",
        );
        let volumes = engine.volumes(&[("k", "v")]).unwrap();
        assert_eq!(
            volumes,
            vec![Volume {
                name: "v".to_string(),
                labels: Default::default()
            }]
        );
        assert_eq!(
            server.join().unwrap(),
            "GET /volumes?filters=%7B%22label%22%3A%5B%22k%3Dv%22%5D%7D HTTP/1.1"
        );

        let (engine, server) = serve_once(
            b"HTTP/1.0 404 Not Found\r\nContent-Type: application/json\r\n\r\n{\"message\":\"No such container: nope\"}\n",
        );
        let error = engine.inspect("nope").unwrap_err();
        assert_eq!(server.join().unwrap(), "GET /containers/nope/json HTTP/1.1");
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

    #[test]
    fn a_silent_engine_times_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        // Accepts, reads, never answers.
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buffer = [0; 1024];
            while stream.read(&mut buffer).is_ok_and(|read| read > 0) {}
        });
        let engine = Engine::new(endpoint(&format!("tcp://{address}"), None)).unwrap();
        let started = std::time::Instant::now();
        let error = engine.version().unwrap_err();
        let waited = started.elapsed();
        assert!(
            matches!(&error, EngineError::Unreachable { source, .. } if source.kind() == ErrorKind::TimedOut),
            "{error:?}"
        );
        assert!(
            waited >= REQUEST_TIMEOUT && waited < REQUEST_TIMEOUT + Duration::from_secs(3),
            "{waited:?}"
        );
        drop(engine);
        server.join().unwrap();
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

    #[test]
    fn one_engine_serves_several_threads() {
        let Some(engine) = engine_or_skip() else {
            return;
        };
        let expected = engine.version().unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let engine = engine.clone();
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        engine.containers(&[], true).unwrap();
                        engine.version().unwrap();
                    }
                    engine.version().unwrap()
                })
            })
            .collect();
        for thread in threads {
            assert_eq!(thread.join().unwrap(), expected);
        }
    }

    #[test]
    fn streams_container_events() {
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
        ensure_test_image(&unique);
        let name = format!("berth-test-engine-events-{unique}");
        let _cleanup = Cleanup {
            containers: vec![name.clone()],
            networks: Vec::new(),
            volumes: Vec::new(),
        };
        let labels = [("berth.test.run", unique.as_str())];
        let before = std::time::SystemTime::now();
        let mut events = engine.events(&labels, None).unwrap();
        assert_eq!(
            events.next_within(Duration::from_millis(200)).unwrap(),
            None
        );
        docker(&[
            "run",
            "--detach",
            "--name",
            &name,
            "--label",
            &format!("berth.test.run={unique}"),
            TEST_IMAGE,
            "sh",
            "-c",
            "exit 3",
        ]);
        let mut actions = Vec::new();
        while !actions.iter().any(|action| action == "die") {
            let event = events
                .next_within(Duration::from_secs(20))
                .unwrap()
                .unwrap_or_else(|| panic!("no event within 20 s after {actions:?}"));
            assert_eq!(event.attributes["name"], name);
            if event.action == "die" {
                assert_eq!(event.attributes["exitCode"], "3");
            }
            actions.push(event.action);
        }
        let position = |wanted: &str| actions.iter().position(|action| action == wanted);
        assert!(position("create") < position("start"), "{actions:?}");
        assert!(position("start") < position("die"), "{actions:?}");

        // From a time in the past, the same events come again, and the iterator waits.
        let mut again = engine.events(&labels, Some(before)).unwrap();
        let first = again.next().unwrap().unwrap();
        assert_eq!(first.action, "create");
        assert_eq!(first.attributes["name"], name);
    }
}
