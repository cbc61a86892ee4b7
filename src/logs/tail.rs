//! Reading the end of a service's log across its rotated files, oldest first: the last N
//! lines, or only the current run's (after the last separator), reading at most
//! [`READ_BUDGET`] bytes and holding at most one block of them at a time.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::cursor::LogCursor;
use super::files::{self, FileId};
use super::header::{MAX_HEADER, is_header};
use super::lines::{LineSplitter, each_line};
use crate::state::LogLimits;

/// The most a tail reads looking for its lines.
pub const READ_BUDGET: u64 = 128 * 1024 * 1024;
const BLOCK: usize = 64 * 1024;

/// Which lines a tail is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    All,
    /// Only those after the last separator (see [`run_started`](super::run_started)).
    CurrentRun,
}

/// Why a tail holds no more lines than it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailEnd {
    /// It holds every line asked for.
    Count,
    /// It reached the separator the current run started with.
    RunStart,
    /// It reached the beginning of the log: there is nothing older.
    Beginning,
    /// It reached the oldest file kept: older lines were rotated away.
    Rotated,
    /// It stopped after reading [`READ_BUDGET`] bytes.
    Bounded,
}

/// The end of a log. Its files are held open, so a rotation while it is printed changes
/// nothing.
pub struct Tail {
    /// Newest first.
    files: Vec<Segment>,
    /// The file (index into `files`) and offset of its first line.
    start: (usize, u64),
    /// How many lines it holds.
    pub lines: usize,
    pub end: TailEnd,
}

struct Segment {
    file: File,
    id: FileId,
    length: u64,
}

impl Tail {
    /// The last `count` lines of the log at `path` (of its current run with
    /// [`Scope::CurrentRun`]). A log that does not exist is empty.
    pub fn read(path: &Path, count: usize, scope: Scope, limits: LogLimits) -> Tail {
        let (mut files, oldest) = open_files(path);
        if let Some(newest) = files.first_mut() {
            newest.length = whole_lines(newest);
        }
        let mut scan = Scan {
            count,
            scope,
            found: 0,
            start: (0, files.first().map_or(0, |segment| segment.length)),
        };
        let mut end = scan.run(&files);
        // Reaching the start of `.log.{max_files - 1}` means older lines were dropped.
        if end == TailEnd::Beginning && limits.max_files > 1 && oldest + 1 >= limits.max_files {
            end = TailEnd::Rotated;
        }
        Tail {
            files,
            start: scan.start,
            lines: scan.found,
            end,
        }
    }

    /// Calls `each` with every line of the tail, oldest first, without its newline.
    pub fn for_each(&self, mut each: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        let (first, offset) = self.start;
        let mut lines = LineSplitter::default();
        let mut block = vec![0; BLOCK];
        let mut out = Vec::new();
        for (index, segment) in self.files.iter().enumerate().take(first + 1).rev() {
            let mut position = if index == first { offset } else { 0 };
            while position < segment.length {
                let size = (segment.length - position).min(BLOCK as u64) as usize;
                if segment
                    .file
                    .read_exact_at(&mut block[..size], position)
                    .is_err()
                {
                    // The file shrank under us (truncated by hand): what is left is gone.
                    break;
                }
                out.clear();
                lines.push(&block[..size], &mut out);
                each_line(&out).try_for_each(&mut each)?;
                position += size as u64;
            }
            out.clear();
            lines.finish(&mut out);
            each_line(&out).try_for_each(&mut each)?;
        }
        Ok(())
    }

    /// A cursor at the end of the tail, for following the log from there without losing
    /// or repeating a line.
    pub fn follow(&self, path: &Path) -> LogCursor {
        match self.files.first() {
            Some(newest) => match newest.file.try_clone() {
                Ok(file) => LogCursor::resume(path, file, newest.id, newest.length),
                Err(_) => LogCursor::at_end(path),
            },
            None => LogCursor::from_start(path),
        }
    }
}

/// The last `count` lines of a log (of its current run with [`Scope::CurrentRun`]), as
/// text.
pub fn tail_lines(path: &Path, count: usize, scope: Scope, limits: LogLimits) -> Vec<String> {
    let tail = Tail::read(path, count, scope, limits);
    let mut lines = Vec::new();
    let _ = tail.for_each(|line| {
        lines.push(String::from_utf8_lossy(line).into_owned());
        Ok(())
    });
    // A line split while printing (one from before lines were bounded) counts as several.
    lines.drain(..lines.len().saturating_sub(count));
    lines
}

/// Opens the log's files newest first: the current one, then `.1`, `.2`, … A file met
/// twice (renamed by a rotation between two opens) is taken once. Also returns the
/// highest number found.
fn open_files(path: &Path) -> (Vec<Segment>, u32) {
    let mut files: Vec<Segment> = Vec::new();
    let mut oldest = 0;
    files::walk(path, |index, path| match files::open(path) {
        Ok((file, id, length)) => {
            if files.iter().all(|segment| segment.id != id) {
                files.push(Segment { file, id, length });
            }
            oldest = index;
            true
        }
        Err(_) => false,
    });
    (files, oldest)
}

/// The length of the part of `segment` that ends with a whole line. The sink writes
/// only whole lines, but a reader may see a write in progress: its unfinished end waits
/// for the next read (or a cursor from [`Tail::follow`]). Only the last block is searched,
/// which holds a newline unless the file predates bounded lines.
fn whole_lines(segment: &Segment) -> u64 {
    let size = segment.length.min(BLOCK as u64);
    let from = segment.length - size;
    let mut block = vec![0u8; size as usize];
    if segment.file.read_exact_at(&mut block, from).is_err() {
        return segment.length;
    }
    memchr::memrchr(b'\n', &block).map_or(segment.length, |end| from + end as u64 + 1)
}

/// The backward search for where the tail starts.
struct Scan {
    count: usize,
    scope: Scope,
    found: usize,
    start: (usize, u64),
}

impl Scan {
    fn run(&mut self, files: &[Segment]) -> TailEnd {
        if self.count == 0 {
            return TailEnd::Count;
        }
        let mut budget = READ_BUDGET;
        let mut block = vec![0u8; BLOCK];
        for (index, segment) in files.iter().enumerate() {
            // The line being assembled ends here (exclusive), its newline included.
            let mut line_end = segment.length;
            let mut position = segment.length;
            while position > 0 {
                if budget == 0 {
                    return TailEnd::Bounded;
                }
                let size = (position.min(BLOCK as u64)).min(budget) as usize;
                let from = position - size as u64;
                if segment
                    .file
                    .read_exact_at(&mut block[..size], from)
                    .is_err()
                {
                    return TailEnd::Beginning;
                }
                budget -= size as u64;
                for at in memchr::memrchr_iter(b'\n', &block[..size]) {
                    let newline = from + at as u64;
                    // The newline that ends the file ends its last line: no boundary.
                    if newline + 1 == line_end {
                        continue;
                    }
                    let view = (&block[..size], from);
                    if let Some(end) = self.line(index, segment, newline + 1..line_end, view) {
                        return end;
                    }
                    line_end = newline + 1;
                }
                position = from;
            }
            // A file starts with a line (rotation cuts between lines).
            if line_end > 0
                && let Some(end) = self.line(index, segment, 0..line_end, (&[], 0))
            {
                return end;
            }
        }
        TailEnd::Beginning
    }

    /// Takes the complete line `range` of file `index` (the block read last is `view`,
    /// with its offset); `Some` when the tail is complete.
    fn line(
        &mut self,
        index: usize,
        segment: &Segment,
        range: Range<u64>,
        view: (&[u8], u64),
    ) -> Option<TailEnd> {
        if self.scope == Scope::CurrentRun && is_separator(segment, &range, view) {
            self.start = (index, range.end);
            return Some(TailEnd::RunStart);
        }
        self.found += 1;
        self.start = (index, range.start);
        (self.found == self.count).then_some(TailEnd::Count)
    }
}

/// Whether the line `range` is a run separator; read from `view` (a block and its
/// offset) when it lies inside it, else from the file.
fn is_separator(segment: &Segment, range: &Range<u64>, view: (&[u8], u64)) -> bool {
    let length = (range.end - range.start) as usize;
    if length > MAX_HEADER + 1 {
        return false;
    }
    let (block, from) = view;
    let mut bytes = [0u8; MAX_HEADER + 1];
    let line = if range.start >= from && range.end <= from + block.len() as u64 {
        &block[(range.start - from) as usize..(range.end - from) as usize]
    } else if segment
        .file
        .read_exact_at(&mut bytes[..length], range.start)
        .is_ok()
    {
        &bytes[..length]
    } else {
        return false;
    };
    is_header(line.strip_suffix(b"\n").unwrap_or(line))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::{RotatingLog, rotated_path, run_started};

    fn limits(max_size: u64, max_files: u32) -> LogLimits {
        LogLimits {
            max_size,
            max_files,
        }
    }

    fn lines(tail: &Tail) -> Vec<String> {
        let mut lines = Vec::new();
        tail.for_each(|line| {
            lines.push(String::from_utf8_lossy(line).into_owned());
            Ok(())
        })
        .unwrap();
        lines
    }

    /// A log of `count` numbered lines, rotated at `max_size`.
    fn numbered(path: &Path, count: usize, limits: LogLimits) {
        let mut log = RotatingLog::new(path, limits);
        for number in 0..count {
            log.write_lines(format!("line {number}\n").as_bytes())
                .unwrap();
        }
    }

    #[test]
    fn the_last_lines_come_from_every_file_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.log");
        let limits = limits(20, 10);
        numbered(&path, 10, limits);
        assert!(rotated_path(&path, 3).exists());
        let tail = Tail::read(&path, 5, Scope::All, limits);
        assert_eq!(tail.end, TailEnd::Count);
        assert_eq!(
            lines(&tail),
            ["line 5", "line 6", "line 7", "line 8", "line 9"]
        );
        let tail = Tail::read(&path, 100, Scope::All, limits);
        assert_eq!((tail.lines, tail.end), (10, TailEnd::Beginning));
        assert_eq!(lines(&tail).first().unwrap(), "line 0");
    }

    #[test]
    fn a_full_set_of_files_says_older_lines_were_rotated_away() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.log");
        let limits = limits(20, 3);
        numbered(&path, 30, limits);
        let tail = Tail::read(&path, 100, Scope::All, limits);
        assert_eq!(tail.end, TailEnd::Rotated);
        assert!(tail.lines < 30);
        assert_eq!(lines(&tail).last().unwrap(), "line 29");
    }

    #[test]
    fn the_current_run_starts_after_the_last_separator() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.log");
        let limits = limits(40, 10);
        let mut log = RotatingLog::new(&path, limits);
        let header = |run| format!("{}\n", run_started(run, std::time::SystemTime::now()));
        log.write_lines(header(1).as_bytes()).unwrap();
        log.write_lines(b"first run\n").unwrap();
        log.write_lines(header(2).as_bytes()).unwrap();
        log.write_lines(b"a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\nm\nn\n")
            .unwrap();
        let tail = Tail::read(&path, 100, Scope::CurrentRun, limits);
        assert_eq!(tail.end, TailEnd::RunStart);
        assert_eq!(lines(&tail).join(""), "abcdefghijklmn");
        let tail = Tail::read(&path, 3, Scope::CurrentRun, limits);
        assert_eq!(
            (lines(&tail).join(""), tail.end),
            ("lmn".to_string(), TailEnd::Count)
        );
        // A separator as the last line: the current run has no line yet.
        log.write_lines(header(3).as_bytes()).unwrap();
        let tail = Tail::read(&path, 100, Scope::CurrentRun, limits);
        assert_eq!((tail.lines, tail.end), (0, TailEnd::RunStart));
        assert!(lines(&tail).is_empty());
        let tail = Tail::read(&path, 2, Scope::All, limits);
        assert!(lines(&tail)[1].starts_with("----- berth: run 3 started"));
    }

    #[test]
    fn a_missing_log_is_empty_and_a_line_being_written_waits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.log");
        let tail = Tail::read(&path, 10, Scope::All, LogLimits::default());
        assert_eq!((tail.lines, tail.end), (0, TailEnd::Beginning));
        std::fs::write(&path, "one\n\ntw").unwrap();
        assert_eq!(
            tail_lines(&path, 10, Scope::All, LogLimits::default()),
            ["one", ""]
        );
        let tail = Tail::read(&path, 1, Scope::All, LogLimits::default());
        assert_eq!(lines(&tail), [""]);
        // A cursor from the tail takes the line once it is whole.
        let mut cursor = tail.follow(&path);
        std::fs::write(&path, "one\n\ntwo\n").unwrap();
        let mut seen = Vec::new();
        cursor.read(u64::MAX, &mut |line| {
            seen.push(String::from_utf8_lossy(line).into_owned())
        });
        assert_eq!(seen, ["two"]);
    }

    #[test]
    fn long_lines_of_old_logs_are_read_in_bounded_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.log");
        let long = "x".repeat(3 * crate::logs::MAX_LINE);
        // Older logs may end without a newline, beyond the last block.
        std::fs::write(&path, &long).unwrap();
        assert_eq!(
            tail_lines(&path, 10, Scope::All, LogLimits::default()).len(),
            3
        );
        std::fs::write(&path, format!("start\n{long}\nend\n")).unwrap();
        let tail = Tail::read(&path, 2, Scope::All, LogLimits::default());
        let lines = lines(&tail);
        assert_eq!(lines.len(), 4);
        assert!(lines.iter().all(|line| line.len() <= crate::logs::MAX_LINE));
        assert_eq!(lines.last().unwrap(), "end");
    }

    #[test]
    fn a_cursor_from_a_tail_continues_exactly_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.log");
        let limits = limits(20, 5);
        let mut log = RotatingLog::new(&path, limits);
        log.write_lines(b"one\ntwo\n").unwrap();
        let tail = Tail::read(&path, 1, Scope::All, limits);
        let mut cursor = tail.follow(&path);
        log.write_lines(b"three\nfour\nfive\nsix\n").unwrap();
        let mut seen = Vec::new();
        cursor.read(u64::MAX, &mut |line| {
            seen.push(String::from_utf8_lossy(line).into_owned())
        });
        assert_eq!(lines(&tail), ["two"]);
        assert_eq!(seen, ["three", "four", "five", "six"]);
    }
}
