//! Errors reading and writing berth's own files.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot write `{}`", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read `{}`", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{}` is corrupt: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("`{}` has format version {found}, newer than this berth understands ({supported})", path.display())]
    FutureVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("timed out after {waited_ms} ms waiting for the lock `{}`{}", path.display(), holder.as_ref().map(|holder| format!(", held by {holder}")).unwrap_or_default())]
    LockTimeout {
        path: PathBuf,
        waited_ms: u128,
        holder: Option<String>,
    },
    #[error("refusing to write through the symlink `{}`", path.display())]
    Symlink { path: PathBuf },
    #[error(
        "`{}` is {}: berth keeps each instance's state, logs and control socket in a directory there, and never follows a link",
        path.display(),
        if *symlink { "a symlink" } else { "not a directory" }
    )]
    Planted { path: PathBuf, symlink: bool },
}

impl StateError {
    pub fn hint(&self) -> Option<String> {
        match self {
            StateError::Corrupt { path, .. } => Some(format!(
                "berth never resets a corrupt file; inspect or move `{}` aside and run the command again",
                path.display()
            )),
            StateError::FutureVersion { .. } => {
                Some("a newer berth wrote this file; use that version".to_string())
            }
            StateError::LockTimeout { .. } => Some(
                "another berth command is still running; wait for it, or set BERTH_LOCK_TIMEOUT_MS to wait longer"
                    .to_string(),
            ),
            StateError::Write { .. } => {
                Some("check that the directory is writable and the disk is not full".to_string())
            }
            StateError::Symlink { .. } => {
                Some("remove the symlink; berth writes only regular files it owns".to_string())
            }
            StateError::Planted { path, .. } => Some(format!(
                "remove `{}`; berth creates the directory itself",
                path.display()
            )),
            StateError::Read { .. } => None,
        }
    }
}
