//! Following a service's log as it grows, across rotations: what `logs -f`,
//! `up --attach` and the readiness `log` check read. Memory stays bounded whatever the
//! log holds: lines longer than [`MAX_LINE`](super::MAX_LINE) arrive in pieces.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::files::{self, FileId};
use super::lines::{LineSplitter, each_line};

const BLOCK: usize = 64 * 1024;

pub struct LogCursor {
    path: PathBuf,
    /// The file being read (held open: once rotated away it is still read to its end).
    current: Option<(File, FileId)>,
    offset: u64,
    lines: LineSplitter,
    block: Vec<u8>,
    out: Vec<u8>,
}

impl LogCursor {
    /// A cursor after everything the log at `path` holds now.
    pub fn at_end(path: &Path) -> Self {
        let mut cursor = LogCursor::from_start(path);
        if let Ok((file, id, length)) = files::open(path) {
            cursor.current = Some((file, id));
            cursor.offset = length;
        }
        cursor
    }

    /// A cursor at the start of the log's current file, or of the first one to appear.
    pub fn from_start(path: &Path) -> Self {
        LogCursor {
            path: path.to_path_buf(),
            current: None,
            offset: 0,
            lines: LineSplitter::default(),
            block: vec![0; BLOCK],
            out: Vec::new(),
        }
    }

    /// A cursor at `offset` in `file`, one of the log's files.
    pub(super) fn resume(path: &Path, file: File, id: FileId, offset: u64) -> Self {
        let mut cursor = LogCursor::from_start(path);
        cursor.current = Some((file, id));
        cursor.offset = offset;
        cursor
    }

    /// Reads what was written since the last call, about `budget` bytes at most (the
    /// rest is read next time), and calls `each` with every complete line, without its
    /// newline. Returns how many bytes were read.
    pub fn read(&mut self, budget: u64, each: &mut dyn FnMut(&[u8])) -> u64 {
        let mut total = 0;
        loop {
            if self.current.is_none() {
                let Ok((file, id, _)) = files::open(&self.path) else {
                    return total;
                };
                self.current = Some((file, id));
                self.offset = 0;
            }
            total += self.read_available(budget - total, each);
            let Some((file, id)) = &self.current else {
                return total;
            };
            let id = *id;
            if total >= budget {
                return total;
            }
            if files::id_of(&self.path) == Some(id) {
                // Still the file being written; one truncated under us starts over.
                if file
                    .metadata()
                    .is_ok_and(|metadata| metadata.len() < self.offset)
                {
                    self.offset = 0;
                    self.lines.reset();
                }
                return total;
            }
            // The log moved on to a new file: first take what was written to this one
            // before it did, then go on with the file that came after it.
            total += self.read_available(budget - total, each);
            if total >= budget {
                return total;
            }
            self.out.clear();
            self.lines.finish(&mut self.out);
            each_line(&self.out).for_each(&mut *each);
            self.current = successor(&self.path, id);
            self.offset = 0;
            if self.current.is_none() {
                return total;
            }
        }
    }

    /// Reads the current file from the offset to its end, at most `limit` bytes.
    fn read_available(&mut self, limit: u64, each: &mut dyn FnMut(&[u8])) -> u64 {
        let LogCursor {
            current,
            offset,
            lines,
            block,
            out,
            ..
        } = self;
        let Some((file, _)) = current else {
            return 0;
        };
        let mut total = 0;
        while total < limit {
            let size = (limit - total).min(BLOCK as u64) as usize;
            match file.read_at(&mut block[..size], *offset) {
                Ok(0) | Err(_) => break,
                Ok(read) => {
                    *offset += read as u64;
                    total += read as u64;
                    out.clear();
                    lines.push(&block[..read], out);
                    each_line(out).for_each(&mut *each);
                }
            }
        }
        total
    }
}

/// The file written after the one `of` is (the oldest kept, if it was dropped).
fn successor(log: &Path, of: FileId) -> Option<(File, FileId)> {
    let existing = files::existing(log);
    let next = match existing.iter().position(|(_, id)| *id == of) {
        Some(position) => existing.get(position + 1),
        None => existing.first(),
    }?;
    let (file, id, _) = files::open(&next.0).ok()?;
    Some((file, id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::RotatingLog;
    use crate::state::LogLimits;

    fn collect(cursor: &mut LogCursor) -> Vec<String> {
        let mut lines = Vec::new();
        cursor.read(u64::MAX, &mut |line| {
            lines.push(String::from_utf8_lossy(line).into_owned())
        });
        lines
    }

    #[test]
    fn follows_the_log_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.log");
        let limits = LogLimits {
            max_size: 12,
            max_files: 4,
        };
        let mut log = RotatingLog::new(&path, limits);
        log.write_lines(b"old\n").unwrap();
        let mut cursor = LogCursor::at_end(&path);
        assert!(collect(&mut cursor).is_empty());
        log.write_lines(b"one\ntwo\n").unwrap();
        assert_eq!(collect(&mut cursor), ["one", "two"]);
        // Two rotations between reads: nothing is skipped.
        log.write_lines(b"three\nfour\nfive\nsix\n").unwrap();
        assert_eq!(collect(&mut cursor), ["three", "four", "five", "six"]);
        log.write_lines(b"seven\n").unwrap();
        assert_eq!(collect(&mut cursor), ["seven"]);
    }

    #[test]
    fn a_log_that_does_not_exist_yet_is_read_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.log");
        let mut cursor = LogCursor::at_end(&path);
        assert!(collect(&mut cursor).is_empty());
        std::fs::write(&path, "first\nsecond\n").unwrap();
        assert_eq!(collect(&mut cursor), ["first", "second"]);
    }

    #[test]
    fn a_budget_spreads_reading_over_calls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.log");
        std::fs::write(&path, "a\n".repeat(100_000)).unwrap();
        let mut cursor = LogCursor::from_start(&path);
        let mut count = 0;
        assert_eq!(cursor.read(100_000, &mut |_| count += 1), 100_000);
        assert_eq!(count, 50_000);
        assert_eq!(cursor.read(u64::MAX, &mut |_| count += 1), 100_000);
        assert_eq!(count, 100_000);
    }
}
