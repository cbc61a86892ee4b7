//! Errors of snapshots: each names the snapshot, file, volume or command it is about, and
//! keeps what went wrong underneath as its cause.

use std::path::PathBuf;

use crate::docker::EngineError;
use crate::external::ExternalError;
use crate::state::StateError;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("`{name}` is not a valid snapshot name")]
    InvalidName { name: String },
    #[error("a snapshot named `{name}` already exists")]
    Exists { name: String },
    /// A file of the snapshot is gone (the cause says why it cannot be read) or its
    /// checksum differs from the manifest's (no cause).
    #[error(
        "snapshot `{name}` is damaged: `{}` is missing or does not match its checksum",
        path.display()
    )]
    Damaged {
        name: String,
        path: PathBuf,
        #[source]
        source: Option<std::io::Error>,
    },
    #[error("cannot compute the checksum of `{}`", path.display())]
    Checksum {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot archive `{}`", path.display())]
    Archive {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The instance's own Compose file, which lists its volumes, is not YAML.
    #[error("cannot read `{}`", path.display())]
    ComposeFile {
        path: PathBuf,
        /// Boxed: the parser's error is large, and every result carries this enum.
        source: Box<serde_saphyr::Error>,
    },
    #[error(
        "no image to mount volume `{volume}` with: none of {} is on this machine",
        images.join(", ")
    )]
    NoImage { volume: String, images: Vec<String> },
    /// A `docker` command of a volume copy failed: the engine refused it or is gone.
    #[error("`{command}` failed ({status}): {stderr}")]
    Docker {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("the Docker engine is not available")]
    Engine(#[from] EngineError),
    /// A `docker` command could not be started, missed its deadline or printed without end.
    #[error(transparent)]
    External(#[from] ExternalError),
    #[error(transparent)]
    State(#[from] StateError),
    /// A file operation, through `fs-err`, so the message names the path.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl SnapshotError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            SnapshotError::InvalidName { .. } => {
                "use letters, digits, `.`, `_` and `-`, starting with a letter or digit (at most 100)"
                    .to_string()
            }
            SnapshotError::Exists { name } => format!(
                "pick another name, `berth snapshot rm {name}` first, or pass --force to replace it"
            ),
            SnapshotError::Damaged { name, .. } => {
                format!("nothing was changed; `berth snapshot rm {name}` removes it")
            }
            SnapshotError::ComposeFile { .. } => "run `berth up` to write it again".to_string(),
            SnapshotError::NoImage { .. } => {
                "run `berth up` once so Compose builds or loads the service's image".to_string()
            }
            SnapshotError::Docker { .. } => "check the Docker engine with `docker info`".to_string(),
            SnapshotError::Engine(error) => error.hint().to_string(),
            SnapshotError::External(error) => return error.hint(),
            SnapshotError::State(error) => return error.hint(),
            SnapshotError::Checksum { .. } | SnapshotError::Archive { .. } | SnapshotError::Io(_) => {
                return None;
            }
        })
    }
}
