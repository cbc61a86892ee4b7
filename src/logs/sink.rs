//! The supervisor's log sink. Every service's output reaches berth through a pipe; one
//! thread polls all the pipes and writes what they carry, line by line, into each
//! service's rotating log, so the size cap holds however fast a service writes and
//! berth's memory stays bounded whatever a service writes. berth's own remarks go into
//! the same logs, through the same writer.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::lines::LineSplitter;
use super::rotate::RotatingLog;
use crate::state::LogLimits;

/// How much the pump reads from one pipe at a time (the size of a pipe's buffer).
const READ_CHUNK: usize = 64 * 1024;
/// An unfinished line quiet for this long is written as it is (a prompt, a progress
/// bar), so readers and the readiness `log` check see it.
const QUIET_LINE: Duration = Duration::from_millis(250);
/// How much a flush reads from one pipe at most, so a flood cannot hold it forever.
const FLUSH_LIMIT: usize = 16 * 1024 * 1024;

/// Clones share one pump thread.
#[derive(Clone)]
pub struct LogSink {
    inner: Arc<Inner>,
}

/// The log of one service, as the supervisor's threads write to it.
#[derive(Clone)]
pub struct LogHandle {
    log: Arc<Mutex<Log>>,
    inner: Arc<Inner>,
}

struct Inner {
    /// One writer per log path, shared by the pump and by remarks.
    logs: Mutex<HashMap<PathBuf, Arc<Mutex<Log>>>>,
    /// What the pump picks up when woken.
    inbox: Mutex<Inbox>,
    /// Writing a byte here wakes the pump.
    wake: OwnedFd,
    pump: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct Inbox {
    sources: Vec<Source>,
    flushes: Vec<(Arc<Mutex<Log>>, Sender<()>)>,
    /// Set by [`LogSink::finish`]: end once every pipe is closed, or at this instant.
    finish_by: Option<Instant>,
}

/// A log and whether its last write failed (so a failure is reported once, not per line).
struct Log {
    writer: RotatingLog,
    failing: bool,
}

/// The read end of one child's output pipe.
struct Source {
    pipe: File,
    log: Arc<Mutex<Log>>,
    lines: LineSplitter,
    last_data: Instant,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not stop the logging: every change under these locks is
    // complete or absent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Log {
    fn write(&mut self, lines: &[u8]) -> io::Result<()> {
        let result = self.writer.write_lines(lines);
        match &result {
            Ok(()) => self.failing = false,
            Err(error) if !self.failing => {
                self.failing = true;
                crate::daemon_log!(
                    "berth supervisor: {error}; output is dropped until it works again"
                );
            }
            Err(_) => {}
        }
        result
    }
}

impl LogSink {
    /// Starts the pump thread.
    pub fn start() -> io::Result<LogSink> {
        let (wake_read, wake_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        let inner = Arc::new(Inner {
            logs: Mutex::new(HashMap::new()),
            inbox: Mutex::new(Inbox::default()),
            wake: wake_write,
            pump: Mutex::new(None),
        });
        let pump = Pump {
            inner: Arc::clone(&inner),
            wake: File::from(wake_read),
            sources: Vec::new(),
            buffer: vec![0; READ_CHUNK],
            out: Vec::with_capacity(READ_CHUNK + 1),
        };
        let handle = std::thread::Builder::new()
            .name("logs".to_string())
            .spawn(move || pump.run())?;
        *lock(&inner.pump) = Some(handle);
        Ok(LogSink { inner })
    }

    /// The log at `path`, kept within `limits` (the same writer for every caller).
    pub fn open(&self, path: &Path, limits: LogLimits) -> LogHandle {
        let mut logs = lock(&self.inner.logs);
        let log = logs.entry(path.to_path_buf()).or_insert_with(|| {
            Arc::new(Mutex::new(Log {
                writer: RotatingLog::new(path, limits),
                failing: false,
            }))
        });
        lock(log).writer.set_limits(limits);
        LogHandle {
            log: Arc::clone(log),
            inner: Arc::clone(&self.inner),
        }
    }

    /// Writes what the pipes still hold and stops the pump: once every pipe is closed
    /// (the processes are gone), or after `within` for pipes a stray process keeps open.
    pub fn finish(&self, within: Duration) {
        lock(&self.inner.inbox).finish_by = Some(Instant::now() + within);
        self.inner.wake();
        if let Some(pump) = lock(&self.inner.pump).take() {
            let _ = pump.join();
        }
    }
}

impl Inner {
    fn wake(&self) {
        // A full wake pipe already holds a wake-up.
        let _ = nix::unistd::write(&self.wake, &[1]);
    }
}

impl LogHandle {
    /// A new pipe into this log; the returned write end is for a child's stdout and
    /// stderr (close-on-exec, so only the child it is given to holds it).
    pub fn attach(&self) -> io::Result<OwnedFd> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        // Only the pump's end is non-blocking: a child writing faster than the disk
        // takes it simply waits.
        fcntl(&read, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        lock(&self.inner.inbox).sources.push(Source {
            pipe: File::from(read),
            log: Arc::clone(&self.log),
            lines: LineSplitter::default(),
            last_data: Instant::now(),
        });
        self.inner.wake();
        Ok(write)
    }

    /// Writes one of berth's own lines (several if it holds newlines or is too long).
    pub fn remark(&self, text: &str) -> io::Result<()> {
        let mut lines = LineSplitter::default();
        let mut out = Vec::with_capacity(text.len() + 1);
        lines.push(text.as_bytes(), &mut out);
        lines.finish(&mut out);
        lock(&self.log).write(&out)
    }

    /// Waits, at most `within`, until the pump has written everything this log's pipes
    /// hold now: after a process exited, its last lines are in the file.
    pub fn flush(&self, within: Duration) {
        let (done, finished) = mpsc::channel();
        lock(&self.inner.inbox)
            .flushes
            .push((Arc::clone(&self.log), done));
        self.inner.wake();
        let _ = finished.recv_timeout(within);
    }
}

/// The thread that moves output from pipes to logs.
struct Pump {
    inner: Arc<Inner>,
    wake: File,
    sources: Vec<Source>,
    buffer: Vec<u8>,
    out: Vec<u8>,
}

/// What one read from a pipe found.
enum Drained {
    Data,
    Empty,
    Closed,
}

impl Pump {
    fn run(mut self) {
        loop {
            let (flushes, finish_by) = {
                let mut inbox = lock(&self.inner.inbox);
                self.sources.append(&mut inbox.sources);
                (std::mem::take(&mut inbox.flushes), inbox.finish_by)
            };
            for (log, done) in flushes {
                self.flush(&log);
                drop(done);
            }
            if let Some(deadline) = finish_by
                && (self.sources.is_empty() || Instant::now() >= deadline)
            {
                self.end_quiet_lines(Duration::ZERO);
                return;
            }
            let ready = self.wait(finish_by);
            if ready.first().copied().unwrap_or(false) {
                let mut bytes = [0u8; 64];
                while matches!(self.wake.read(&mut bytes), Ok(read) if read > 0) {}
            }
            let mut closed = Vec::new();
            for (index, ready) in ready.iter().skip(1).enumerate() {
                if *ready && matches!(self.read_once(index), Drained::Closed) {
                    closed.push(index);
                }
            }
            for index in closed.into_iter().rev() {
                self.sources.swap_remove(index);
            }
            self.end_quiet_lines(QUIET_LINE);
        }
    }

    /// Polls the wake pipe and every source; returns which are readable (or closed),
    /// the wake pipe first.
    fn wait(&self, finish_by: Option<Instant>) -> Vec<bool> {
        let mut descriptors = Vec::with_capacity(self.sources.len() + 1);
        descriptors.push(PollFd::new(self.wake.as_fd(), PollFlags::POLLIN));
        for source in &self.sources {
            descriptors.push(PollFd::new(source.pipe.as_fd(), PollFlags::POLLIN));
        }
        let mut timeout =
            finish_by.map(|deadline| deadline.saturating_duration_since(Instant::now()));
        if self.sources.iter().any(|source| source.lines.has_partial()) {
            timeout = Some(timeout.map_or(QUIET_LINE, |timeout| timeout.min(QUIET_LINE)));
        }
        let timeout = timeout.map_or(PollTimeout::NONE, |timeout| {
            PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX)
        });
        match poll(&mut descriptors, timeout) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return vec![false; descriptors.len()],
            Err(error) => {
                // Cannot happen with valid descriptors; do not spin if it does.
                crate::daemon_log!("berth supervisor: poll: {error}");
                std::thread::sleep(Duration::from_millis(100));
                return vec![false; descriptors.len()];
            }
        }
        descriptors
            .iter()
            .map(|descriptor| descriptor.any().unwrap_or(true))
            .collect()
    }

    /// Reads what one source holds (one chunk) and writes the lines it completes.
    fn read_once(&mut self, index: usize) -> Drained {
        let source = &mut self.sources[index];
        let result = source.pipe.read(&mut self.buffer);
        self.out.clear();
        let drained = match result {
            Ok(0) => {
                source.lines.finish(&mut self.out);
                Drained::Closed
            }
            Ok(read) => {
                source.lines.push(&self.buffer[..read], &mut self.out);
                source.last_data = Instant::now();
                Drained::Data
            }
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                Drained::Empty
            }
            Err(_) => {
                source.lines.finish(&mut self.out);
                Drained::Closed
            }
        };
        if !self.out.is_empty() {
            // A failed write is reported by the log; the output is dropped either way so
            // the child never blocks on a full pipe.
            let _ = lock(&source.log).write(&self.out);
        }
        drained
    }

    /// Reads every pipe of `log` until it is empty or closed.
    fn flush(&mut self, log: &Arc<Mutex<Log>>) {
        let mut index = 0;
        while index < self.sources.len() {
            if !Arc::ptr_eq(&self.sources[index].log, log) {
                index += 1;
                continue;
            }
            let mut read = 0;
            let closed = loop {
                match self.read_once(index) {
                    Drained::Closed => break true,
                    Drained::Empty => break false,
                    Drained::Data => read += READ_CHUNK,
                }
                if read >= FLUSH_LIMIT {
                    break false;
                }
            };
            if closed {
                self.sources.swap_remove(index);
            } else {
                index += 1;
            }
        }
    }

    /// Writes unfinished lines that have been quiet for `quiet` as lines of their own.
    fn end_quiet_lines(&mut self, quiet: Duration) {
        for source in &mut self.sources {
            if source.lines.has_partial() && source.last_data.elapsed() >= quiet {
                self.out.clear();
                source.lines.finish(&mut self.out);
                let _ = lock(&source.log).write(&self.out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::logs::rotated_path;

    fn limits(max_size: u64, max_files: u32) -> LogLimits {
        LogLimits {
            max_size,
            max_files,
        }
    }

    #[test]
    fn output_and_remarks_reach_the_log_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.log");
        let sink = LogSink::start().unwrap();
        let log = sink.open(&path, LogLimits::default());
        log.remark("----- berth: run 1 -----").unwrap();
        let mut pipe = File::from(log.attach().unwrap());
        pipe.write_all(b"hello\nwor").unwrap();
        pipe.write_all(b"ld\nno newline").unwrap();
        drop(pipe);
        log.flush(Duration::from_secs(5));
        log.remark("berth: exited\nwith status 1").unwrap();
        sink.finish(Duration::from_secs(5));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "----- berth: run 1 -----\nhello\nworld\nno newline\nberth: exited\nwith status 1\n"
        );
    }

    #[test]
    fn a_quiet_unfinished_line_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.log");
        let sink = LogSink::start().unwrap();
        let log = sink.open(&path, LogLimits::default());
        let mut pipe = File::from(log.attach().unwrap());
        pipe.write_all(b"password: ").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(&path).unwrap_or_default() != "password: \n" {
            assert!(
                Instant::now() < deadline,
                "the prompt never reached the log"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(pipe);
        sink.finish(Duration::from_secs(5));
    }

    #[test]
    fn many_writers_stay_within_their_caps() {
        let dir = tempfile::tempdir().unwrap();
        let sink = LogSink::start().unwrap();
        let mut writers = Vec::new();
        for service in ["a", "b", "c"] {
            let log = sink.open(
                &dir.path().join(format!("{service}.log")),
                limits(64 * 1024, 3),
            );
            let mut pipe = File::from(log.attach().unwrap());
            writers.push(std::thread::spawn(move || {
                let line = format!("{service} {}\n", "x".repeat(100));
                let chunk = line.repeat(100);
                for _ in 0..200 {
                    pipe.write_all(chunk.as_bytes()).unwrap();
                }
                // A long line without a newline is split, never held whole.
                pipe.write_all(&vec![b'y'; 100_000]).unwrap();
            }));
        }
        for writer in writers {
            writer.join().unwrap();
        }
        sink.finish(Duration::from_secs(10));
        for service in ["a", "b", "c"] {
            let path = dir.path().join(format!("{service}.log"));
            let mut total = 0;
            for index in 0..3 {
                let size = std::fs::metadata(rotated_path(&path, index)).unwrap().len();
                assert!(size <= 64 * 1024, "{service}.{index}: {size}");
                total += size;
            }
            assert!(!rotated_path(&path, 3).exists());
            assert!(total > 64 * 1024, "{service}: {total}");
            let current = std::fs::read_to_string(&path).unwrap();
            assert!(
                current
                    .lines()
                    .all(|line| line.len() <= crate::logs::MAX_LINE)
            );
            assert!(current.ends_with(&format!(
                "{}\n",
                "y".repeat(100_000 % crate::logs::MAX_LINE)
            )));
        }
    }
}
