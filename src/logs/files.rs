//! The files of one service's log: `<service>.log` is the one written to, `<service>.log.1`
//! the one before it, and so on; and opening them safely for reading.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// More files than any configuration keeps (`[logs] max_files` is at most this).
pub const MAX_FILES: u32 = 100;

/// Which file: its device and inode, the same under any name it is renamed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    device: u64,
    inode: u64,
}

impl FileId {
    pub fn of(metadata: &Metadata) -> Self {
        FileId {
            device: metadata.dev(),
            inode: metadata.ino(),
        }
    }
}

/// `<log>` itself for index 0, `<log>.N` for index N.
pub fn rotated_path(log: &Path, index: u32) -> PathBuf {
    if index == 0 {
        return log.to_path_buf();
    }
    let mut name = log.as_os_str().to_owned();
    name.push(format!(".{index}"));
    PathBuf::from(name)
}

/// Opens a log file for reading: never through a symlink, and only a regular file (a
/// FIFO planted in its place would block the reader forever). Returns the file, which
/// file it is, and its length.
pub fn open(path: &Path) -> io::Result<(File, FileId, u64)> {
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` is not a regular file", path.display()),
        ));
    }
    Ok((file, FileId::of(&metadata), metadata.len()))
}

/// Which file `path` names now, if any.
pub fn id_of(path: &Path) -> Option<FileId> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|metadata| FileId::of(&metadata))
}

/// Calls `visit` with the log's files newest first (`<log>`, `<log>.1`, `<log>.2`, …)
/// and their numbers; `visit` says whether the file is there. Stops at two missing
/// numbers in a row: a rotation renames one file at a time, so while it runs one number
/// may be missing.
pub fn walk(log: &Path, mut visit: impl FnMut(u32, &Path) -> bool) {
    let mut missing = 0;
    for index in 0..=MAX_FILES {
        if visit(index, &rotated_path(log, index)) {
            missing = 0;
        } else {
            missing += 1;
            if missing == 2 {
                return;
            }
        }
    }
}

/// The files of the log `log` that exist, oldest first: the rotated ones from the
/// highest number down, then the current one.
pub fn existing(log: &Path) -> Vec<(PathBuf, FileId)> {
    let mut found = Vec::new();
    walk(log, |_, path| match id_of(path) {
        Some(id) => {
            found.push((path.to_path_buf(), id));
            true
        }
        None => false,
    });
    found.reverse();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_files_are_numbered_after_the_log() {
        let log = Path::new("/x/logs/api.log");
        assert_eq!(rotated_path(log, 0), log);
        assert_eq!(rotated_path(log, 3), Path::new("/x/logs/api.log.3"));
    }

    #[test]
    fn existing_files_are_listed_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("api.log");
        assert!(existing(&log).is_empty());
        // One number missing (a rotation in progress) is skipped; two end the list.
        for index in [0, 2, 3, 6] {
            std::fs::write(rotated_path(&log, index), "x\n").unwrap();
        }
        let names: Vec<PathBuf> = existing(&log).into_iter().map(|(path, _)| path).collect();
        assert_eq!(
            names,
            [rotated_path(&log, 3), rotated_path(&log, 2), log.clone()]
        );
    }

    #[test]
    fn only_regular_files_are_opened() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "secret\n").unwrap();
        let link = dir.path().join("api.log");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(open(&link).is_err());
        let fifo = dir.path().join("web.log");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(open(&fifo).is_err());
        assert_eq!(open(&target).unwrap().2, 7);
    }
}
