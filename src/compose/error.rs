//! Errors of the Compose backend: each says which tool, file or service, and what to do.

use std::path::PathBuf;

use crate::config::ConfigError;
use crate::docker::EngineError;
use crate::state::StateError;

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error(
        "no Compose tool found: neither `docker compose` (v2) nor `docker-compose` (v1) is installed"
    )]
    ToolMissing,
    #[error("`BERTH_COMPOSE` names `{command}`, which is not an executable on PATH")]
    ToolNotFound { command: String },
    #[error("the Docker engine is not available")]
    Engine(#[from] EngineError),
    #[error("`{command}` failed ({status}) on the project's Compose files:\n{stderr}")]
    Invalid {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("`{command}` failed ({status}):\n{stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    /// The tool could not be started, missed its deadline or printed without end.
    #[error(transparent)]
    External(#[from] crate::external::ExternalError),
    #[error("cannot read what `{command}` printed: {detail}")]
    Output { command: String, detail: String },
    #[error("service `{service}` publishes `{text}`, which berth cannot rewrite: {detail}")]
    Port {
        service: String,
        text: String,
        detail: String,
    },
    #[error("service `{service}`: {detail}")]
    Unsupported { service: String, detail: String },
    #[error("cannot write `{}`", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Input(#[from] crate::input::InputError),
    /// berth.toml, loaded together with the Compose files it resolves
    /// ([`super::load_project`]). Boxed: it is large, and every result carries this enum.
    #[error(transparent)]
    Config(Box<ConfigError>),
    /// The per-instance Compose file could not be written.
    #[error(transparent)]
    State(#[from] StateError),
}

impl From<ConfigError> for ComposeError {
    fn from(error: ConfigError) -> Self {
        ComposeError::Config(Box::new(error))
    }
}

impl ComposeError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            ComposeError::ToolMissing => "install Docker Compose v2 (the `docker compose` plugin) \
                 or v1 (`docker-compose`), or set BERTH_COMPOSE to the command to run"
                .to_string(),
            ComposeError::ToolNotFound { .. } => {
                "set BERTH_COMPOSE to a command on PATH, such as `docker compose`".to_string()
            }
            ComposeError::Engine(error) => error.hint().to_string(),
            ComposeError::Invalid { .. } => {
                "fix the Compose file; `docker compose config` shows the same error".to_string()
            }
            ComposeError::Input(error) => return error.hint(),
            ComposeError::Config(error) => return error.hint(),
            ComposeError::State(error) => return error.hint(),
            ComposeError::External(error) => return error.hint(),
            ComposeError::Port { .. } => {
                "write the port as HOST:CONTAINER with one host port per container port".to_string()
            }
            _ => return None,
        })
    }
}
