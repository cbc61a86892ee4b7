//! `$BERTH_HOME/snapshots/<project>/<name>/`: one directory per snapshot, holding
//! `snapshot.json` (the manifest) and the tar files it names.
//!
//! A snapshot is assembled in a `.partial-<name>-<pid>` directory and renamed into place
//! only once complete, so a snapshot that is listed is whole; partial directories of dead
//! writers are swept by the next save.

use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::SnapshotError;
use crate::state::{FileLock, create_private_dir, read_versioned, write_json_atomic};

type Result<T, E = SnapshotError> = std::result::Result<T, E>;

pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;
const MANIFEST: &str = "snapshot.json";
const PARTIAL_PREFIX: &str = ".partial-";

/// What a snapshot holds and where it came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
pub struct Manifest {
    pub version: u32,
    pub name: String,
    pub project: String,
    /// The instance it was taken from, and that instance's root.
    pub instance: String,
    pub root: PathBuf,
    pub created_at: String,
    /// The services asked for with `--service`; empty for the whole instance.
    pub services: Vec<String>,
    /// Files of process services under the instance's data directory.
    pub data: Option<DataItem>,
    /// The instance's own named volumes.
    pub volumes: Vec<VolumeItem>,
    /// The size of every file of the snapshot, in bytes.
    pub bytes: u64,
}

/// The data directory, or parts of it, as one tar file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
pub struct DataItem {
    /// Paths relative to the data directory; `""` is the whole directory.
    pub paths: Vec<String>,
    /// Process services whose data this is (their one-time setup counts as done after a
    /// restore).
    pub services: Vec<String>,
    pub file: String,
    pub bytes: u64,
    /// BLAKE3 of the file (hex), checked before a restore touches anything.
    pub blake3: String,
}

impl DataItem {
    /// `data`, or `data (PATH, …)` when it holds only some paths.
    pub fn describe(&self) -> String {
        if self.paths.iter().any(String::is_empty) {
            "data".to_string()
        } else {
            format!("data ({})", self.paths.join(", "))
        }
    }
}

/// One named volume as a tar file of its content (the volume root included).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
pub struct VolumeItem {
    /// The volume's key in the Compose file, the same in every instance.
    pub key: String,
    /// The services that mount it.
    pub services: Vec<String>,
    pub file: String,
    pub bytes: u64,
    pub blake3: String,
}

/// The snapshots of one project.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// A snapshot being written: its directory, not yet visible under its name.
#[derive(Debug)]
pub struct Staging {
    pub dir: PathBuf,
    name: String,
    committed: bool,
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Staging {
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Checks a snapshot name: letters, digits, `.`, `_` and `-`, starting with a letter or
/// digit, at most 100 characters.
pub fn validate_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 100
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(SnapshotError::InvalidName {
            name: name.to_string(),
        })
    }
}

impl Store {
    /// The snapshots of `project`, under the ledger directory `home`.
    pub fn new(home: &Path, project: &str) -> Self {
        Store {
            dir: home.join("snapshots").join(project),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn ensure_dir(&self) -> Result<()> {
        Ok(create_private_dir(&self.dir)?)
    }

    /// Taken while a snapshot of this project is saved, restored or removed.
    pub fn lock(&self, timeout: Duration) -> Result<FileLock> {
        self.ensure_dir()?;
        Ok(FileLock::acquire(&self.dir.join(".lock"), timeout)?)
    }

    /// The directory of snapshot `name` (whether or not it exists).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The manifest of snapshot `name`, if there is one.
    pub fn get(&self, name: &str) -> Result<Option<Manifest>> {
        Ok(read_versioned(
            &self.path(name).join(MANIFEST),
            SNAPSHOT_FORMAT_VERSION,
        )?)
    }

    /// Every snapshot, oldest first. A damaged manifest is an error naming its file.
    pub fn list(&self) -> Result<Vec<Manifest>> {
        let entries = match fs_err::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error.into()),
        };
        let mut manifests = Vec::new();
        for entry in entries {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if let Some(manifest) = self.get(&name)? {
                manifests.push(manifest);
            }
        }
        manifests.sort_by(|a, b| (&a.created_at, &a.name).cmp(&(&b.created_at, &b.name)));
        Ok(manifests)
    }

    /// Starts writing snapshot `name` (the caller holds the store lock).
    pub fn begin(&self, name: &str) -> Result<Staging> {
        self.ensure_dir()?;
        self.sweep_partial();
        let dir = self
            .dir
            .join(format!("{PARTIAL_PREFIX}{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        create_private_dir(&dir)?;
        Ok(Staging {
            dir,
            name: name.to_string(),
            committed: false,
        })
    }

    /// Writes the manifest and renames the staging directory into place, replacing an
    /// existing snapshot of that name only when `replace` is set.
    pub fn commit(&self, mut staging: Staging, manifest: &Manifest, replace: bool) -> Result<()> {
        write_json_atomic(&staging.dir.join(MANIFEST), manifest)?;
        let target = self.path(&staging.name);
        if target.exists() {
            if !replace {
                return Err(SnapshotError::Exists {
                    name: staging.name.clone(),
                });
            }
            let old = self.dir.join(format!(
                "{PARTIAL_PREFIX}old-{}-{}",
                staging.name,
                std::process::id()
            ));
            fs_err::rename(&target, &old)?;
            fs_err::rename(&staging.dir, &target)?;
            fs_err::remove_dir_all(&old)?;
        } else {
            fs_err::rename(&staging.dir, &target)?;
        }
        staging.committed = true;
        fs_err::File::open(&self.dir)?.sync_all()?;
        Ok(())
    }

    /// Removes snapshot `name`; false when there is none.
    pub fn remove(&self, name: &str) -> Result<bool> {
        let path = self.path(name);
        if !path.join(MANIFEST).is_file() {
            return Ok(false);
        }
        // Renamed away first, so a crash halfway never leaves a listed, half-deleted one.
        let doomed = self
            .dir
            .join(format!("{PARTIAL_PREFIX}rm-{name}-{}", std::process::id()));
        fs_err::rename(&path, &doomed)?;
        fs_err::remove_dir_all(&doomed)?;
        Ok(true)
    }

    /// Removes partial directories whose writer is gone.
    fn sweep_partial(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(PARTIAL_PREFIX) else {
                continue;
            };
            let writer = rest
                .rsplit_once('-')
                .and_then(|(_, pid)| pid.parse::<u32>().ok());
            if !writer.is_some_and(crate::process::exists) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// The size and BLAKE3 digest (hex) of a file. BLAKE3 rather than SHA-256: it checks
/// a large database's snapshot several times faster, and this guards against damage,
/// not forgery.
pub fn measure(path: &Path) -> Result<(u64, String)> {
    digest(path).map_err(|source| SnapshotError::Checksum {
        path: path.to_path_buf(),
        source,
    })
}

fn digest(path: &Path) -> std::io::Result<(u64, String)> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(std::fs::File::open(path)?)?;
    let bytes = std::fs::metadata(path)?.len();
    Ok((bytes, hasher.finalize().to_hex().to_string()))
}

/// Checks every file of the snapshot in `dir` against its manifest, so a damaged
/// snapshot is refused before a restore changes anything.
pub fn verify(dir: &Path, manifest: &Manifest) -> Result<()> {
    let data = manifest.data.iter().map(|item| (&item.file, &item.blake3));
    let volumes = manifest
        .volumes
        .iter()
        .map(|item| (&item.file, &item.blake3));
    for (file, expected) in data.chain(volumes) {
        let path = dir.join(file);
        let source = match digest(&path) {
            Ok((_, actual)) if actual == *expected => continue,
            Ok(_) => None,
            Err(error) => Some(error),
        };
        return Err(SnapshotError::Damaged {
            name: manifest.name.clone(),
            path,
            source,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(name: &str, created_at: &str) -> Manifest {
        Manifest {
            version: SNAPSHOT_FORMAT_VERSION,
            name: name.to_string(),
            project: "shop".to_string(),
            instance: "shop".to_string(),
            root: PathBuf::from("/src/shop"),
            created_at: created_at.to_string(),
            services: Vec::new(),
            data: None,
            volumes: Vec::new(),
            bytes: 0,
        }
    }

    #[test]
    fn names_are_checked() {
        for good in ["before-migration", "v1.2", "a", "2026_11_22"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".hidden", "-x", "a/b", "a b", "ü", &"x".repeat(101)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn commit_is_atomic_and_replace_is_explicit() {
        let home = tempfile::tempdir().unwrap();
        let store = Store::new(home.path(), "shop");
        let staging = store.begin("one").unwrap();
        std::fs::write(staging.dir.join("data.tar"), b"first").unwrap();
        assert!(
            store.list().unwrap().is_empty(),
            "not visible before commit"
        );
        store
            .commit(staging, &manifest("one", "2026-01-02T00:00:00Z"), false)
            .unwrap();
        let staging = store.begin("one").unwrap();
        let error = store
            .commit(staging, &manifest("one", "2026-01-03T00:00:00Z"), false)
            .unwrap_err();
        assert!(error.to_string().contains("already exists"), "{error}");
        let staging = store.begin("one").unwrap();
        store
            .commit(staging, &manifest("one", "2026-01-04T00:00:00Z"), true)
            .unwrap();
        let listed = store.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].created_at, "2026-01-04T00:00:00Z");
        // Nothing but the snapshot and the lock-free store remains.
        let names: Vec<String> = std::fs::read_dir(store.dir())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["one"]);
        assert!(store.remove("one").unwrap());
        assert!(!store.remove("one").unwrap());
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn a_dropped_staging_directory_is_removed() {
        let home = tempfile::tempdir().unwrap();
        let store = Store::new(home.path(), "shop");
        let staging = store.begin("x").unwrap();
        let dir = staging.dir.clone();
        assert!(dir.is_dir());
        drop(staging);
        assert!(!dir.exists());
    }
}
