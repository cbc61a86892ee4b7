//! Errors of the Compose backend: each says which tool, file or service, and what to do.

use std::path::PathBuf;

use crate::docker::EngineError;
use crate::error::ExitCode;

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
    #[error("cannot run `{command}`")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
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
    #[error("`{command}` did not finish within {seconds} s, so berth stopped it")]
    Timeout { command: String, seconds: f64 },
    #[error("`{command}` printed more than {limit_mib} MiB, so berth stopped it")]
    TooMuchOutput { command: String, limit_mib: u64 },
}

impl ComposeError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            ComposeError::ToolMissing
            | ComposeError::ToolNotFound { .. }
            | ComposeError::Engine(_) => ExitCode::DockerUnavailable,
            ComposeError::Invalid { .. }
            | ComposeError::Port { .. }
            | ComposeError::Unsupported { .. }
            | ComposeError::Input(_)
            | ComposeError::Timeout { .. }
            | ComposeError::TooMuchOutput { .. } => ExitCode::Usage,
            ComposeError::Command { .. } => ExitCode::ServiceFailed,
            ComposeError::Spawn { .. }
            | ComposeError::Output { .. }
            | ComposeError::Write { .. } => ExitCode::Failure,
        }
    }

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
            ComposeError::Timeout { .. } | ComposeError::TooMuchOutput { .. } => {
                "check the Compose files for YAML anchors and aliases that expand without end \
                 (`docker compose config` shows what Compose makes of them); \
                 BERTH_COMPOSE_CONFIG_TIMEOUT_MS allows a slow tool more time"
                    .to_string()
            }
            ComposeError::Port { .. } => {
                "write the port as HOST:CONTAINER with one host port per container port".to_string()
            }
            _ => return None,
        })
    }
}
