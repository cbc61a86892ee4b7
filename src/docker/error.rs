//! Why a question to the Docker engine got no usable answer, and what to do about it.

use std::io::ErrorKind;
use std::path::PathBuf;

/// Why a question to the engine got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// `DOCKER_CONTEXT` or the docker config's `currentContext` names no context.
    #[error("docker context `{name}` (named by {selected_by}) does not exist")]
    UnknownContext {
        name: String,
        /// `DOCKER_CONTEXT`, or `` `currentContext` in `PATH` ``.
        selected_by: String,
        /// Where its `meta.json` would be.
        meta: PathBuf,
    },
    /// The docker CLI's `config.json` or a context's `meta.json` cannot be read.
    #[error("cannot read the docker CLI's configuration `{}`: {detail}", path.display())]
    Config { path: PathBuf, detail: String },
    /// An endpoint berth's own client cannot use (an unknown scheme, TLS it cannot do).
    #[error("berth cannot talk to the Docker engine at {endpoint}: {detail}")]
    Unsupported { endpoint: String, detail: String },
    /// Nothing listens, the socket may not be opened, or no answer came in time.
    #[error("the Docker engine is not reachable at {endpoint}")]
    Unreachable {
        /// The endpoint as [`super::Endpoint`] displays it (host, and context if any).
        endpoint: String,
        source: std::io::Error,
    },
    /// A non-2xx answer, with the engine's `message`.
    #[error("the Docker engine answered `{path}` with HTTP {status}: {message}")]
    Status {
        path: String,
        status: u16,
        message: String,
    },
    /// An answer that is not the expected JSON, or another failure of the client.
    #[error("cannot understand the Docker engine's answer to `{path}`: {detail}")]
    Protocol { path: String, detail: String },
    /// The client's I/O runtime could not be started.
    #[error("cannot start the Docker client")]
    Runtime { source: std::io::Error },
}

impl EngineError {
    /// What the user can do about this error.
    pub fn hint(&self) -> &'static str {
        match self {
            EngineError::UnknownContext { .. } => {
                "`docker context ls` lists the contexts; pick one with `docker context use NAME`, \
                 or unset DOCKER_CONTEXT"
            }
            EngineError::Config { .. } => {
                "fix the file (the docker CLI reads it too), or point DOCKER_CONFIG elsewhere"
            }
            EngineError::Unsupported { .. } => {
                "use a unix://, tcp:// or ssh:// engine, with TLS certificates (ca.pem, cert.pem, \
                 key.pem) that are verified"
            }
            EngineError::Unreachable { source, .. }
                if source.kind() == ErrorKind::PermissionDenied =>
            {
                "add your user to the `docker` group and log in again, or set DOCKER_HOST=unix:///path/to/a/socket/you/can/use"
            }
            EngineError::Unreachable { .. } => {
                "start the Docker daemon, or choose another engine with `docker context use NAME` or DOCKER_HOST"
            }
            EngineError::Status { .. } => "check the Docker engine with `docker info`",
            EngineError::Protocol { .. } => {
                "check that DOCKER_HOST or the docker context points at a Docker engine"
            }
            EngineError::Runtime { .. } => "check the limits on open files and threads",
        }
    }
}
