//! The top-level error type, its rendering, and the exit codes of SPEC §8.

use std::fmt::Write as _;

use crate::compose::ComposeError;
use crate::config::ConfigError;
use crate::external::{CallKind, ExternalError};
use crate::input::InputError;
use crate::ledger::LedgerError;
use crate::ports::PortError;
use crate::state::StateError;

/// Exit codes, as documented in the README and SPEC §8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    Ok = 0,
    Failure = 1,
    Usage = 2,
    PortUnavailable = 3,
    ServiceFailed = 4,
    DockerUnavailable = 5,
}

/// Every error a berth command can end with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Compose(#[from] ComposeError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Port(#[from] PortError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    External(#[from] ExternalError),
    #[error("{message}")]
    Usage {
        message: String,
        hint: Option<String>,
    },
    #[error("{message}")]
    ServiceFailed {
        message: String,
        details: Vec<String>,
        hint: Option<String>,
    },
    #[error("{message}")]
    Failed {
        message: String,
        hint: Option<String>,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A command berth ran attached to the terminal (`exec`, `shell`, `db shell`) failed:
    /// berth exits with its status and says nothing more.
    #[error("the command exited with status {code}")]
    Exited { code: i32 },
}

impl Error {
    pub fn usage(message: impl Into<String>, hint: impl Into<Option<String>>) -> Self {
        Error::Usage {
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub fn failed(message: impl Into<String>, hint: impl Into<Option<String>>) -> Self {
        Error::Failed {
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// Nothing when `status` is success; else the error that makes berth exit with the
    /// same status (1 for a signal).
    pub fn exited(status: std::process::ExitStatus) -> Result<()> {
        match status.code().unwrap_or(1) {
            0 => Ok(()),
            code => Err(Error::Exited { code }),
        }
    }

    /// The status berth exits with.
    pub fn exit_status(&self) -> i32 {
        match self {
            Error::Exited { code } => *code,
            other => other.exit_code() as i32,
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Config(_)
            | Error::Input(_)
            | Error::Usage { .. }
            | Error::State(StateError::Planted { .. }) => ExitCode::Usage,
            Error::Port(error) => port_exit_code(error),
            Error::Compose(error) => compose_exit_code(error),
            Error::External(error) => external_exit_code(error),
            Error::ServiceFailed { .. } => ExitCode::ServiceFailed,
            Error::Ledger(_)
            | Error::State(_)
            | Error::Failed { .. }
            | Error::Io(_)
            | Error::Exited { .. } => ExitCode::Failure,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Error::Config(error) => error.hint(),
            Error::Ledger(error) => error.hint(),
            Error::Port(error) => error.hint(),
            Error::Compose(error) => error.hint(),
            Error::State(error) => error.hint(),
            Error::Input(error) => error.hint(),
            Error::External(error) => error.hint(),
            Error::Usage { hint, .. }
            | Error::ServiceFailed { hint, .. }
            | Error::Failed { hint, .. } => hint.clone(),
            Error::Io(_) | Error::Exited { .. } => None,
        }
    }

    /// Renders `error: …`, the chain of causes, extra detail lines, then `hint: …`. A
    /// configuration error with a place shows its line, with colour when `colour`.
    pub fn render(&self, colour: bool) -> String {
        if let Error::Exited { .. } = self {
            return String::new();
        }
        let located = match self {
            Error::Config(error) => error.report(colour),
            _ => None,
        };
        let mut out = match located {
            Some(report) => format!("{report}\n"),
            None => format!("error: {self}\n"),
        };
        let mut source = std::error::Error::source(self);
        // Transparent variants forward `source` to the inner error, whose message is
        // already the headline, so skip causes that repeat the headline verbatim.
        while let Some(cause) = source {
            let text = cause.to_string();
            if !out.contains(&text) {
                let _ = writeln!(out, "  caused by: {text}");
            }
            source = cause.source();
        }
        if let Error::ServiceFailed { details, .. } = self {
            for line in details {
                let _ = writeln!(out, "{line}");
            }
        }
        if let Some(hint) = self.hint() {
            let _ = writeln!(out, "hint: {hint}");
        }
        out
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A port berth cannot use is 3; a port outside 1024-65535 is the configuration's fault (2).
fn port_exit_code(error: &PortError) -> ExitCode {
    match error {
        PortError::OutOfRange { .. } => ExitCode::Usage,
        _ => ExitCode::PortUnavailable,
    }
}

fn compose_exit_code(error: &ComposeError) -> ExitCode {
    match error {
        ComposeError::ToolMissing | ComposeError::ToolNotFound { .. } | ComposeError::Engine(_) => {
            ExitCode::DockerUnavailable
        }
        ComposeError::Invalid { .. }
        | ComposeError::Port { .. }
        | ComposeError::Unsupported { .. }
        | ComposeError::Input(_) => ExitCode::Usage,
        ComposeError::External(error) => external_exit_code(error),
        ComposeError::Command { .. } => ExitCode::ServiceFailed,
        ComposeError::Output { .. } | ComposeError::Write { .. } => ExitCode::Failure,
    }
}

/// As the README documents: a Compose file that makes `config` spin or flood is a
/// configuration error (2); the engine or the Compose tool not answering is 5; a
/// `per_instance` command that hangs fails the instance's start (4); anything else,
/// a data copy included, is 1.
fn external_exit_code(error: &ExternalError) -> ExitCode {
    match (error, error.kind()) {
        (ExternalError::Spawn { .. }, _) => ExitCode::Failure,
        (_, CallKind::ComposeConfig) => ExitCode::Usage,
        (_, CallKind::Compose | CallKind::Docker) => ExitCode::DockerUnavailable,
        (_, CallKind::PerInstance) => ExitCode::ServiceFailed,
        (_, CallKind::Data) => ExitCode::Failure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Holder;

    #[test]
    fn a_taken_port_exits_port_unavailable() {
        let error = Error::from(PortError::Taken {
            port: 3000,
            service: "api".to_string(),
            holder: Holder::Process {
                pid: 42,
                command: "nc -l".to_string(),
            },
            offset: 0,
        });
        assert_eq!(error.exit_code(), ExitCode::PortUnavailable);
    }

    #[test]
    fn domain_errors_map_to_the_documented_exit_codes() {
        let timeout = |kind| ExternalError::Timeout {
            command: "docker compose config".to_string(),
            kind,
            timeout: std::time::Duration::from_secs(30),
        };
        let cases = [
            (
                Error::from(PortError::OutOfRange {
                    service: "api".to_string(),
                    base: 65500,
                    offset: 100,
                    port: 65600,
                }),
                ExitCode::Usage,
            ),
            (
                Error::from(ComposeError::ToolMissing),
                ExitCode::DockerUnavailable,
            ),
            (
                Error::from(ComposeError::External(timeout(CallKind::ComposeConfig))),
                ExitCode::Usage,
            ),
            (
                Error::from(ComposeError::External(timeout(CallKind::Compose))),
                ExitCode::DockerUnavailable,
            ),
            (
                Error::from(timeout(CallKind::PerInstance)),
                ExitCode::ServiceFailed,
            ),
            (Error::from(timeout(CallKind::Data)), ExitCode::Failure),
        ];
        for (error, expected) in cases {
            assert_eq!(error.exit_code(), expected, "{error}");
        }
    }
}
