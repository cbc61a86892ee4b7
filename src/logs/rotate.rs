//! Writing one service's log under a size cap: before a file would grow past `max_size`
//! it is renamed to `.1` (the older ones move up by one, the oldest is dropped) and a new
//! file is started, always at a line boundary.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::files::{MAX_FILES, rotated_path};
use crate::state::LogLimits;

#[derive(Debug)]
pub struct RotatingLog {
    path: PathBuf,
    limits: LogLimits,
    file: Option<File>,
    /// Bytes in the current file.
    size: u64,
    /// Whether rotated files beyond `max_files` (kept under a larger earlier limit) were
    /// removed.
    pruned: bool,
}

impl RotatingLog {
    /// A writer of the log at `path`; nothing is opened until the first write.
    pub fn new(path: &Path, limits: LogLimits) -> Self {
        RotatingLog {
            path: path.to_path_buf(),
            limits,
            file: None,
            size: 0,
            pruned: false,
        }
    }

    pub fn set_limits(&mut self, limits: LogLimits) {
        if limits != self.limits {
            self.limits = limits;
            self.pruned = false;
        }
    }

    /// Appends `lines` (whole lines, each ending in `\n`). Rotates between lines so that
    /// no file grows past `max_size`; only a single line longer than that (impossible
    /// with the smallest size the configuration allows) gets a file of its own.
    pub fn write_lines(&mut self, lines: &[u8]) -> io::Result<()> {
        let mut rest = lines;
        while !rest.is_empty() {
            self.open()?;
            let room = usize::try_from(self.limits.max_size.saturating_sub(self.size))
                .unwrap_or(usize::MAX)
                .min(rest.len());
            let take = if room == rest.len() {
                room
            } else if let Some(end) = memchr::memrchr(b'\n', &rest[..room]) {
                end + 1
            } else if self.size == 0 {
                memchr::memchr(b'\n', rest).map_or(rest.len(), |end| end + 1)
            } else {
                0
            };
            if take > 0 {
                self.append(&rest[..take])?;
                rest = &rest[take..];
            }
            if !rest.is_empty() {
                self.rotate()?;
            }
        }
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        match file.write_all(bytes) {
            Ok(()) => {
                self.size += bytes.len() as u64;
                Ok(())
            }
            Err(error) => {
                // Opened afresh on the next write, in case the file was removed.
                self.file = None;
                Err(located(error, "cannot write log", &self.path))
            }
        }
    }

    /// Opens the current file if it is not open: created 0600, never through a symlink,
    /// only a regular file (a FIFO in its place is refused rather than blocking).
    fn open(&mut self) -> io::Result<()> {
        if self.file.is_some() {
            return Ok(());
        }
        if !self.pruned {
            self.prune()?;
            self.pruned = true;
        }
        if let Some(dir) = self.path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|error| located(error, "cannot create", dir))?;
        }
        let file = File::options()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&self.path)
            .map_err(|error| located(error, "cannot open log", &self.path))?;
        let metadata = file
            .metadata()
            .map_err(|error| located(error, "cannot read", &self.path))?;
        if !metadata.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("log `{}` is not a regular file", self.path.display()),
            ));
        }
        self.size = metadata.len();
        self.file = Some(file);
        Ok(())
    }

    /// Shifts every file up by one (`.log` → `.log.1` → `.log.2` …), dropping the one
    /// that would become `.log.{max_files}`; the next write starts a new `.log`.
    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        self.size = 0;
        let count = self.limits.max_files.clamp(1, MAX_FILES);
        if count == 1 {
            return remove(&self.path);
        }
        for index in (1..count - 1).rev() {
            rename(
                &rotated_path(&self.path, index),
                &rotated_path(&self.path, index + 1),
            )?;
        }
        rename(&self.path, &rotated_path(&self.path, 1))
    }

    /// Removes rotated files numbered `max_files` and up, left by a larger earlier limit.
    /// The directory is read once, rather than a removal tried for each number up to
    /// [`MAX_FILES`]: this runs as a service starts, before its process is spawned.
    fn prune(&self) -> io::Result<()> {
        let first = self.limits.max_files.clamp(1, MAX_FILES);
        let (Some(dir), Some(name)) = (self.path.parent(), self.path.file_name()) else {
            return Ok(());
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(located(error, "cannot read", dir)),
        };
        let prefix = format!("{}.", name.to_string_lossy());
        for entry in entries.flatten() {
            let index = entry
                .file_name()
                .to_str()
                .and_then(|entry| entry.strip_prefix(&prefix))
                .and_then(|index| index.parse::<u32>().ok());
            if let Some(index) = index
                && (first..=MAX_FILES).contains(&index)
                && rotated_path(&self.path, index) == entry.path()
            {
                remove(&entry.path())?;
            }
        }
        Ok(())
    }
}

fn rename(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::rename(from, to) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            Err(located(error, "cannot rotate", from))
        }
        _ => Ok(()),
    }
}

fn remove(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            Err(located(error, "cannot remove", path))
        }
        _ => Ok(()),
    }
}

/// The error, with what was being done and to which path.
fn located(error: io::Error, doing: &str, path: &Path) -> io::Error {
    io::Error::new(
        error.kind(),
        format!("{doing} `{}`: {error}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn limits(max_size: u64, max_files: u32) -> LogLimits {
        LogLimits {
            max_size,
            max_files,
        }
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn rotates_at_line_boundaries_and_drops_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/api.log");
        let mut log = RotatingLog::new(&path, limits(10, 3));
        for line in [
            "aaaa\n", "bbbb\n", "cccc\n", "dddd\n", "eeee\n", "ffff\n", "gg\n",
        ] {
            log.write_lines(line.as_bytes()).unwrap();
        }
        assert_eq!(read(&path), "gg\n");
        assert_eq!(read(&rotated_path(&path, 1)), "eeee\nffff\n");
        assert_eq!(read(&rotated_path(&path, 2)), "cccc\ndddd\n");
        assert!(!rotated_path(&path, 3).exists());
    }

    #[test]
    fn one_write_of_many_lines_is_cut_between_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.log");
        let mut log = RotatingLog::new(&path, limits(8, 5));
        log.write_lines(b"123\n456\n789\nabc\nde\n").unwrap();
        assert_eq!(read(&rotated_path(&path, 2)), "123\n456\n");
        assert_eq!(read(&rotated_path(&path, 1)), "789\nabc\n");
        assert_eq!(read(&path), "de\n");
    }

    #[test]
    fn a_line_longer_than_the_cap_gets_a_file_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.log");
        let mut log = RotatingLog::new(&path, limits(4, 3));
        log.write_lines(b"ab\nlonger line\ncd\n").unwrap();
        assert_eq!(read(&rotated_path(&path, 2)), "ab\n");
        assert_eq!(read(&rotated_path(&path, 1)), "longer line\n");
        assert_eq!(read(&path), "cd\n");
    }

    #[test]
    fn the_total_never_exceeds_the_cap_however_much_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.log");
        let mut log = RotatingLog::new(&path, limits(64 * 1024, 3));
        let chunk = "flood line with some padding\n".repeat(2000);
        for _ in 0..200 {
            log.write_lines(chunk.as_bytes()).unwrap();
        }
        let mut total = 0;
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let size = entry.unwrap().metadata().unwrap().len();
            assert!(size <= 64 * 1024);
            total += size;
        }
        assert!(total <= 3 * 64 * 1024, "{total}");
        assert!(read(&path).ends_with("padding\n"));
    }

    #[test]
    fn one_file_only_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.log");
        let mut log = RotatingLog::new(&path, limits(6, 1));
        log.write_lines(b"abc\ndef\nghi\n").unwrap();
        assert_eq!(read(&path), "ghi\n");
        assert!(!rotated_path(&path, 1).exists());
    }

    #[test]
    fn an_existing_log_counts_and_a_smaller_limit_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.log");
        std::fs::write(&path, "old1\nold2\n").unwrap();
        for index in 1..=4 {
            std::fs::write(rotated_path(&path, index), "older\n").unwrap();
        }
        let mut log = RotatingLog::new(&path, limits(12, 2));
        log.write_lines(b"new\n").unwrap();
        assert_eq!(read(&rotated_path(&path, 1)), "old1\nold2\n");
        assert_eq!(read(&path), "new\n");
        for index in 2..=4 {
            assert!(!rotated_path(&path, index).exists(), "{index}");
        }
    }

    #[test]
    fn files_are_private_and_symlinks_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.log");
        let mut log = RotatingLog::new(&path, limits(1024, 2));
        log.write_lines(b"x\n").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "keep\n").unwrap();
        let planted = dir.path().join("web.log");
        std::os::unix::fs::symlink(&target, &planted).unwrap();
        let mut log = RotatingLog::new(&planted, limits(1024, 2));
        assert!(log.write_lines(b"x\n").is_err());
        assert_eq!(read(&target), "keep\n");
    }
}
