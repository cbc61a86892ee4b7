//! The top-level error type, its rendering, and the exit codes of SPEC §8.

use std::fmt::Write as _;

use crate::cleanup::CleanupError;
use crate::compose::ComposeError;
use crate::config::ConfigError;
use crate::envfiles::EnvFileError;
use crate::external::{CallKind, ExternalError};
use crate::input::InputError;
use crate::ledger::LedgerError;
use crate::ports::PortError;
use crate::router::RouterError;
use crate::snapshot::SnapshotError;
use crate::state::StateError;
use crate::supervisor::SupervisorError;

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
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    EnvFile(#[from] EnvFileError),
    #[error(transparent)]
    Cleanup(#[from] CleanupError),
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
    #[error(transparent)]
    Router(#[from] RouterError),
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
            Error::Config(_) | Error::Input(_) | Error::Usage { .. } => ExitCode::Usage,
            Error::Port(error) => port_exit_code(error),
            Error::Compose(error) => compose_exit_code(error),
            Error::External(error) => external_exit_code(error),
            Error::State(error) => state_exit_code(error),
            Error::Snapshot(error) => snapshot_exit_code(error),
            Error::EnvFile(error) => env_file_exit_code(error),
            Error::Cleanup(error) => cleanup_exit_code(error),
            Error::Supervisor(error) => supervisor_exit_code(error),
            Error::Router(error) if error.is_port_unavailable() => ExitCode::PortUnavailable,
            Error::Router(RouterError::State(error)) => state_exit_code(error),
            Error::Router(RouterError::Input(_)) => ExitCode::Usage,
            Error::Router(_) => ExitCode::Failure,
            Error::ServiceFailed { .. } => ExitCode::ServiceFailed,
            Error::Ledger(error) => ledger_exit_code(error),
            Error::Failed { .. } | Error::Io(_) | Error::Exited { .. } => ExitCode::Failure,
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
            Error::Snapshot(error) => error.hint(),
            Error::EnvFile(error) => error.hint(),
            Error::Cleanup(error) => error.hint(),
            Error::Supervisor(error) => error.hint(),
            Error::Router(error) => error.hint(),
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
        // A configuration error reaches here directly or through the Compose loader.
        let located = match self {
            Error::Config(error) => error.report(colour),
            Error::Compose(ComposeError::Config(error)) => error.report(colour),
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
        | ComposeError::Input(_)
        | ComposeError::Config(_) => ExitCode::Usage,
        ComposeError::State(error) => state_exit_code(error),
        ComposeError::External(error) => external_exit_code(error),
        ComposeError::Command { .. } => ExitCode::ServiceFailed,
        ComposeError::Output { .. } | ComposeError::Write { .. } => ExitCode::Failure,
    }
}

/// A file planted where berth keeps its state is the user's to move (2); any other
/// state error is 1.
fn state_exit_code(error: &StateError) -> ExitCode {
    match error {
        StateError::Planted { .. } => ExitCode::Usage,
        _ => ExitCode::Failure,
    }
}

/// A bad name or a name taken is 2; the engine or a `docker` command of a volume copy
/// failing is 5; a damaged snapshot, a missing image or a local file that cannot be
/// written is 1.
fn snapshot_exit_code(error: &SnapshotError) -> ExitCode {
    match error {
        SnapshotError::InvalidName { .. } | SnapshotError::Exists { .. } => ExitCode::Usage,
        SnapshotError::Engine(_) | SnapshotError::Docker { .. } => ExitCode::DockerUnavailable,
        SnapshotError::External(error) => external_exit_code(error),
        SnapshotError::State(error) => state_exit_code(error),
        SnapshotError::Damaged { .. }
        | SnapshotError::Checksum { .. }
        | SnapshotError::Archive { .. }
        | SnapshotError::ComposeFile { .. }
        | SnapshotError::NoImage { .. }
        | SnapshotError::Io(_) => ExitCode::Failure,
    }
}

/// A target berth may not write or a dotenv file that cannot be read is the
/// configuration's fault (2); a write that fails is 1.
fn env_file_exit_code(error: &EnvFileError) -> ExitCode {
    match error {
        EnvFileError::Target(_) | EnvFileError::Read { .. } | EnvFileError::Parse { .. } => {
            ExitCode::Usage
        }
        EnvFileError::Write { .. } | EnvFileError::GitExclude { .. } => ExitCode::Failure,
    }
}

/// The engine failing to list or remove an instance's objects is 5; a state directory
/// that cannot be removed is 1.
fn cleanup_exit_code(error: &CleanupError) -> ExitCode {
    match error {
        CleanupError::List { .. } | CleanupError::Remove { .. } => ExitCode::DockerUnavailable,
        CleanupError::StateDir { .. } => ExitCode::Failure,
    }
}

/// No way to tell where the ledger lives is for the user to set (2); a ledger directory
/// or file that cannot be used is 1.
fn ledger_exit_code(error: &LedgerError) -> ExitCode {
    match error {
        LedgerError::NoHome => ExitCode::Usage,
        LedgerError::Home { .. } | LedgerError::State(_) => ExitCode::Failure,
    }
}

/// A supervisor that cannot start is 1 (its services' failures are its state, not errors).
fn supervisor_exit_code(error: &SupervisorError) -> ExitCode {
    match error {
        SupervisorError::State(error) => state_exit_code(error),
        SupervisorError::Start { .. } => ExitCode::Failure,
    }
}

/// As the README documents: a Compose file that makes `config` spin or flood is a
/// configuration error (2); the engine or the Compose tool not answering is 5; a
/// `per_instance` command that hangs fails the instance's start (4); anything else,
/// a data copy, git and a worktree's setup included, is 1.
fn external_exit_code(error: &ExternalError) -> ExitCode {
    match (error, error.kind()) {
        (ExternalError::Spawn { .. }, _) => ExitCode::Failure,
        (_, CallKind::ComposeConfig) => ExitCode::Usage,
        (_, CallKind::Compose | CallKind::Docker) => ExitCode::DockerUnavailable,
        (_, CallKind::PerInstance) => ExitCode::ServiceFailed,
        (_, CallKind::Data | CallKind::Git | CallKind::Setup) => ExitCode::Failure,
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
            // berth.toml loaded with the Compose files: still the configuration's fault.
            (
                Error::from(ComposeError::from(ConfigError::NotFound {
                    dir: "/src/shop".into(),
                })),
                ExitCode::Usage,
            ),
            (
                Error::from(ComposeError::State(StateError::Write {
                    path: "/src/shop/.berth/shop/compose.yml".into(),
                    source: std::io::Error::from(std::io::ErrorKind::StorageFull),
                })),
                ExitCode::Failure,
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(error.exit_code(), expected, "{error}");
        }
    }

    /// An error that is not a timeout: a `docker` command that could not be started.
    fn spawn_failed(kind: CallKind) -> ExternalError {
        ExternalError::Spawn {
            command: "docker cp".to_string(),
            kind,
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        }
    }

    fn timed_out(kind: CallKind) -> ExternalError {
        ExternalError::Timeout {
            command: "docker cp".to_string(),
            kind,
            timeout: std::time::Duration::from_secs(60),
        }
    }

    fn unreachable_engine() -> crate::docker::EngineError {
        crate::docker::EngineError::Unreachable {
            endpoint: "`unix:///nowhere.sock`".to_string(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        }
    }

    #[test]
    fn snapshot_errors_map_to_the_documented_exit_codes() {
        let path = std::path::PathBuf::from("/snapshots/shop/one/data.tar");
        let cases = [
            (
                SnapshotError::InvalidName {
                    name: "a/b".to_string(),
                },
                ExitCode::Usage,
            ),
            (
                SnapshotError::Exists {
                    name: "one".to_string(),
                },
                ExitCode::Usage,
            ),
            (
                SnapshotError::Docker {
                    command: "docker cp -a - abc:/".to_string(),
                    status: "exit status: 1".to_string(),
                    stderr: "Cannot connect to the Docker daemon".to_string(),
                },
                ExitCode::DockerUnavailable,
            ),
            (
                SnapshotError::Engine(unreachable_engine()),
                ExitCode::DockerUnavailable,
            ),
            (
                SnapshotError::External(timed_out(CallKind::Docker)),
                ExitCode::DockerUnavailable,
            ),
            // The README: a volume copy that misses its deadline is a data copy (1).
            (
                SnapshotError::External(timed_out(CallKind::Data)),
                ExitCode::Failure,
            ),
            (
                SnapshotError::External(spawn_failed(CallKind::Docker)),
                ExitCode::Failure,
            ),
            (
                SnapshotError::Damaged {
                    name: "one".to_string(),
                    path: path.clone(),
                    source: None,
                },
                ExitCode::Failure,
            ),
            (
                SnapshotError::Archive {
                    path: path.clone(),
                    source: std::io::Error::from(std::io::ErrorKind::StorageFull),
                },
                ExitCode::Failure,
            ),
            (
                SnapshotError::NoImage {
                    volume: "pgdata".to_string(),
                    images: vec!["postgres:15".to_string()],
                },
                ExitCode::Failure,
            ),
            (
                SnapshotError::State(StateError::Planted {
                    path: path.clone(),
                    symlink: false,
                }),
                ExitCode::Usage,
            ),
            (
                SnapshotError::Io(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
                ExitCode::Failure,
            ),
        ];
        for (error, expected) in cases {
            let error = Error::from(error);
            assert_eq!(error.exit_code(), expected, "{error}");
        }
    }

    #[test]
    fn a_cause_is_rendered_on_its_own_line() {
        let error = Error::from(SnapshotError::Archive {
            path: "/snapshots/shop/one/data.tar".into(),
            source: std::io::Error::other("no space left on device"),
        });
        assert_eq!(
            error.render(false),
            "error: cannot archive `/snapshots/shop/one/data.tar`\n  caused by: no space left on device\n"
        );
    }

    #[test]
    fn env_file_errors_map_to_the_documented_exit_codes() {
        let path = std::path::PathBuf::from("/src/shop/.env");
        let cases = [
            (
                EnvFileError::Target(crate::beneath::BeneathError::Symlink { path: path.clone() }),
                ExitCode::Usage,
            ),
            (
                EnvFileError::Read {
                    what: "[project] env_file".to_string(),
                    source: crate::input::InputError::TooLarge {
                        path: path.clone(),
                        limit: 4 << 20,
                    },
                },
                ExitCode::Usage,
            ),
            (
                EnvFileError::Parse {
                    what: "[project] env_file".to_string(),
                    path: path.clone(),
                    source: crate::dotenv::DotenvError {
                        line: 3,
                        message: "unterminated quote".to_string(),
                    },
                },
                ExitCode::Usage,
            ),
            (
                EnvFileError::Write {
                    path: path.clone(),
                    source: crate::beneath::BeneathError::Io {
                        path: path.clone(),
                        error: std::io::Error::from(std::io::ErrorKind::StorageFull),
                    },
                },
                ExitCode::Failure,
            ),
            (
                EnvFileError::GitExclude {
                    pattern: "/.env".to_string(),
                    source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
                },
                ExitCode::Failure,
            ),
        ];
        for (error, expected) in cases {
            let error = Error::from(error);
            assert_eq!(error.exit_code(), expected, "{error}");
        }
    }

    #[test]
    fn cleanup_errors_map_to_the_documented_exit_codes() {
        let cases = [
            (
                CleanupError::List {
                    what: "containers",
                    instance: "shop".to_string(),
                    source: Box::new(unreachable_engine()),
                },
                ExitCode::DockerUnavailable,
            ),
            (
                CleanupError::Remove {
                    what: "volume",
                    name: "shop_pgdata".to_string(),
                    source: Box::new(crate::docker::EngineError::Status {
                        path: "/volumes/shop_pgdata".to_string(),
                        status: 409,
                        message: "volume is in use".to_string(),
                    }),
                },
                ExitCode::DockerUnavailable,
            ),
            (
                CleanupError::StateDir {
                    path: "/src/shop/.berth/shop".into(),
                    source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
                },
                ExitCode::Failure,
            ),
        ];
        for (error, expected) in cases {
            let error = Error::from(error);
            assert_eq!(error.exit_code(), expected, "{error}");
        }
    }

    #[test]
    fn ledger_and_supervisor_errors_map_to_the_documented_exit_codes() {
        let denied = || std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let cases = [
            (Error::from(LedgerError::NoHome), ExitCode::Usage),
            (
                Error::from(LedgerError::Home {
                    path: "berth-home".into(),
                    source: denied(),
                }),
                ExitCode::Failure,
            ),
            (
                Error::from(SupervisorError::Start {
                    action: "listen on its control socket",
                    source: denied(),
                }),
                ExitCode::Failure,
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(error.exit_code(), expected, "{error}");
        }
    }
}
