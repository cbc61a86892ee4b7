//! Crash-safe writes (temp file, fsync, rename, fsync of the directory) and versioned reads.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StateError;
use crate::input::InputError;

/// The most berth reads of one of its state files (a ledger of thousands of instances is
/// a few megabytes).
const MAX_STATE_BYTES: u64 = 64 * 1024 * 1024;

/// Creates `path` and any missing parents with mode 0700 (an existing directory is left
/// as it is).
pub fn create_private_dir(path: &Path) -> Result<(), StateError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|source| StateError::Write {
            path: path.to_path_buf(),
            source,
        })
}

/// Writes `bytes` to `path` so that readers see either the old or the new content, never
/// a mix, even if the machine crashes. The file is created with mode 0600, and a symlink
/// planted at `path` is replaced rather than followed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    publish_atomic(path, bytes)?.sync()
}

/// [`write_atomic`] up to the point where every reader sees the new content: written,
/// flushed to disk and renamed into place. What is left, making the rename itself
/// durable (an fsync of the directory), is the returned [`Published`]'s to do, so a
/// caller in a hurry (`up` starting a supervisor, a supervisor telling `up` a service is
/// ready) does it after what it hurries for. A crash before that finds the old content
/// or the new, whole either way.
pub fn publish_atomic(path: &Path, bytes: &[u8]) -> Result<Published, StateError> {
    let write_error = |source| StateError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy())
        .unwrap_or_default();
    remove_dead_temps(dir, &file_name);
    let temp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        // O_NOFOLLOW: a symlink planted at the temp path is an error, never followed.
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temp)
        .map_err(write_error)?;
    let result = (|| {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        // rename() replaces a symlink at `path` itself instead of writing through it.
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map_err(write_error)?;
    Ok(Published {
        path: path.to_path_buf(),
        synced: false,
    })
}

/// A file [`publish_atomic`] put in place whose rename is not yet durable. Dropped
/// without [`Published::sync`], it syncs anyway, ignoring errors.
#[must_use = "the rename is durable only once `sync` is called"]
#[derive(Debug)]
pub struct Published {
    path: std::path::PathBuf,
    synced: bool,
}

impl Published {
    /// Makes the rename durable: an fsync of the file's directory.
    pub fn sync(mut self) -> Result<(), StateError> {
        self.synced = true;
        self.sync_dir().map_err(|source| StateError::Write {
            path: self.path.clone(),
            source,
        })
    }

    fn sync_dir(&self) -> std::io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::File::open(dir)?.sync_all()
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        if !self.synced {
            let _ = self.sync_dir();
        }
    }
}

/// Removes temp files of `file_name` left by writers that died mid-write (`kill -9`):
/// their PID, part of the name, is no longer a live process. A temp file of a live
/// writer, or of a PID reused since, is left alone.
fn remove_dead_temps(dir: &Path, file_name: &str) {
    let prefix = format!(".{file_name}.");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.strip_prefix(&prefix))
            .and_then(|rest| rest.strip_suffix(".tmp"))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !crate::process::exists(pid) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Serialises `value` as pretty JSON and writes it atomically.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), StateError> {
    publish_json_atomic(path, value)?.sync()
}

/// Serialises `value` as pretty JSON and publishes it (see [`publish_atomic`]).
pub fn publish_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<Published, StateError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|error| StateError::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(error),
    })?;
    bytes.push(b'\n');
    publish_atomic(path, &bytes)
}

/// Reads a JSON file that carries `"version": N`. Returns `None` when the file does not
/// exist; a file that does not parse, or is of a newer version, is an error naming it.
pub fn read_versioned<T: DeserializeOwned>(
    path: &Path,
    supported: u32,
) -> Result<Option<T>, StateError> {
    let corrupt = |reason: String| StateError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    // Read as any file of the work tree is: a FIFO or a device planted there must not
    // hang berth or make it read without end.
    let bytes = match crate::input::read_bytes(path, MAX_STATE_BYTES) {
        Ok(bytes) => bytes,
        Err(InputError::Open { error, .. }) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(InputError::Open { error, .. }) => {
            return Err(StateError::Read {
                path: path.to_path_buf(),
                source: error,
            });
        }
        Err(error) => return Err(corrupt(error.to_string())),
    };
    // The version first, skipping the rest without building it (no `Value` tree: a
    // ledger of 500 instances is read by every `ls`), then the file as `T`.
    #[derive(serde::Deserialize)]
    struct Versioned {
        version: Option<serde_json::Value>,
    }
    let versioned: Versioned =
        serde_json::from_slice(&bytes).map_err(|error| corrupt(error.to_string()))?;
    let version = versioned
        .version
        .and_then(|version| version.as_u64())
        .ok_or_else(|| corrupt("no format `version` field".to_string()))?;
    if version > u64::from(supported) {
        return Err(StateError::FutureVersion {
            path: path.to_path_buf(),
            found: version as u32,
            supported,
        });
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|error| corrupt(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_files_of_dead_writers_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        // No process has PID 0; this test's own process is alive.
        let dead = dir.path().join(".state.json.0.tmp");
        let live = dir
            .path()
            .join(format!(".state.json.{}.tmp.keep", std::process::id()));
        std::fs::write(&dead, "half").unwrap();
        std::fs::write(&live, "other").unwrap();
        write_atomic(&path, b"whole").unwrap();
        assert!(!dead.exists());
        assert!(live.exists(), "only this file's temp names are touched");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "whole");
    }

    #[test]
    fn write_replaces_a_planted_symlink_instead_of_following_it() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let target = dir.path().join("state.json");
        std::os::unix::fs::symlink(&victim, &target).unwrap();
        write_atomic(&target, b"{}").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(
            !std::fs::symlink_metadata(&target)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn corrupt_and_future_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        std::fs::write(&path, "{\"version\": 1, \"trunc").unwrap();
        let error = read_versioned::<serde_json::Value>(&path, 1).unwrap_err();
        assert!(matches!(error, StateError::Corrupt { .. }), "{error}");
        assert!(error.to_string().contains("x.json"));
        std::fs::write(&path, "{\"version\": 9}").unwrap();
        let error = read_versioned::<serde_json::Value>(&path, 1).unwrap_err();
        assert!(matches!(error, StateError::FutureVersion { found: 9, .. }));
        assert!(
            read_versioned::<serde_json::Value>(&dir.path().join("none"), 1)
                .unwrap()
                .is_none()
        );
    }
}
