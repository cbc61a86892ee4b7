//! Advisory file locks (flock) with a deadline; the holder writes who it is into the file.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::StateError;

/// Who holds a lock, as written into the lock file by its holder.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LockHolder {
    pub pid: u32,
    pub command: String,
    pub since: String,
}

/// An exclusive flock held until drop (std's `File::try_lock` is flock(2) on Linux, so it
/// excludes any other flock of the file, berth's or not). The file descriptor is
/// close-on-exec (Rust opens every file with O_CLOEXEC), so child processes never
/// inherit the lock.
#[derive(Debug)]
pub struct FileLock {
    file: File,
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Unlocked explicitly, not only by closing: a child forked but not yet exec'd
        // shares the descriptor's open file description, which would keep the lock held
        // until that child execs. An unlock that fails leaves the close to release it.
        let _ = self.file.unlock();
    }
}

impl FileLock {
    /// Gives the lock to a child process: a second descriptor of the same open file
    /// description, for the child to inherit. The lock is not released here (flock locks
    /// belong to the description): it stays held until the last descriptor closes, in
    /// the child, which may outlive this process.
    pub fn hand_over(self) -> std::io::Result<File> {
        let file = self.file.try_clone()?;
        // Closing this descriptor without `Drop`'s unlock keeps the lock held.
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again; its file is read out once and
        // dropped here, which closes the descriptor.
        drop(unsafe { std::ptr::read(&this.file) });
        Ok(file)
    }

    /// Tries for up to `window`; `None` if the lock stayed held that long. For a lock
    /// held for a process's lifetime, which [`FileLock::is_held`] probes only briefly.
    pub fn try_acquire_within(path: &Path, window: Duration) -> Result<Option<Self>, StateError> {
        let started = Instant::now();
        loop {
            if let Some(lock) = Self::try_acquire(path)? {
                return Ok(Some(lock));
            }
            if started.elapsed() >= window {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits up to `deadline` for the lock, then fails naming the holder.
    pub fn acquire(path: &Path, deadline: Duration) -> Result<Self, StateError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            match Self::try_acquire(path)? {
                Some(lock) => return Ok(lock),
                None if started.elapsed() >= deadline => {
                    return Err(StateError::LockTimeout {
                        path: path.to_path_buf(),
                        waited_ms: started.elapsed().as_millis(),
                        holder: read_holder(path),
                    });
                }
                None => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
            }
        }
    }

    /// Takes the lock if nobody holds it, recording this process as the holder.
    pub fn try_acquire(path: &Path) -> Result<Option<Self>, StateError> {
        let mut file = open_lock_file(path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(source)) => {
                return Err(StateError::Write {
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
        let holder = LockHolder {
            pid: std::process::id(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            since: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        };
        // The holder record is informative only (for timeout messages), so failing to
        // write it must not fail the operation that needed the lock.
        let _ = file.set_len(0).and_then(|()| {
            file.rewind()?;
            file.write_all(
                serde_json::to_string(&holder)
                    .unwrap_or_default()
                    .as_bytes(),
            )
        });
        Ok(Some(FileLock { file }))
    }

    /// True when some process holds the lock at `path` (used as a liveness check: a
    /// supervisor holds its lock for as long as it lives, and the kernel drops it on death).
    pub fn is_held(path: &Path) -> bool {
        let Ok(file) = File::open(path) else {
            return false;
        };
        match file.try_lock_shared() {
            Err(TryLockError::WouldBlock) => true,
            Ok(()) => {
                // Released at once, as a holder's is: see `Drop for FileLock`.
                let _ = file.unlock();
                false
            }
            Err(TryLockError::Error(_)) => false,
        }
    }
}

fn open_lock_file(path: &Path) -> Result<File, StateError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|source| match source.raw_os_error() {
            Some(libc::ELOOP) => StateError::Symlink {
                path: path.to_path_buf(),
            },
            _ => StateError::Write {
                path: path.to_path_buf(),
                source,
            },
        })
}

fn read_holder(path: &Path) -> Option<String> {
    let mut text = String::new();
    File::open(path).ok()?.read_to_string(&mut text).ok()?;
    let holder: LockHolder = serde_json::from_str(&text).ok()?;
    Some(format!(
        "pid {} (`{}`) since {}",
        holder.pid, holder.command, holder.since
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_liveness_probe_does_not_turn_away_the_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("supervisor.lock");
        std::fs::write(&path, "").unwrap();
        // A probe that holds the lock shared (as `is_held` does, for an instant).
        let probe = File::open(&path).unwrap();
        probe.try_lock_shared().unwrap();
        assert!(FileLock::try_acquire(&path).unwrap().is_none());
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            drop(probe);
        });
        let owner = FileLock::try_acquire_within(&path, Duration::from_millis(500)).unwrap();
        assert!(owner.is_some());
        release.join().unwrap();
        assert!(
            FileLock::try_acquire_within(&path, Duration::from_millis(20))
                .unwrap()
                .is_none(),
            "a real holder still turns a second owner away"
        );
    }

    #[test]
    fn second_acquire_times_out_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.lock");
        let _held = FileLock::acquire(&path, Duration::from_secs(1)).unwrap();
        assert!(FileLock::is_held(&path));
        let error = FileLock::acquire(&path, Duration::from_millis(50)).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
    }
}
