//! The router's log (`router/router.log`, its standard error): one line per event worth
//! knowing (start, upgrades, services that do not answer), never one per request, and
//! bounded: past [`LOG_LIMIT`] the file starts over.

use std::io::Write;
use std::os::fd::AsFd;
use std::sync::Mutex;

/// The most the router's log holds.
pub const LOG_LIMIT: u64 = 4 * 1024 * 1024;

pub struct Log {
    written: Mutex<u64>,
}

impl Log {
    /// The log on standard error, which already holds `written` bytes.
    pub fn new(written: u64) -> Self {
        Log {
            written: Mutex::new(written),
        }
    }

    pub fn line(&self, message: &str) {
        let mut written = self
            .written
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let stderr = std::io::stderr();
        if *written > LOG_LIMIT {
            // The file is opened for appending: after the truncation, writes start at 0.
            let _ = nix::unistd::ftruncate(stderr.as_fd(), 0);
            *written = 0;
        }
        let line = format!(
            "{} {message}\n",
            humantime::format_rfc3339_millis(std::time::SystemTime::now())
        );
        let mut handle = stderr.lock();
        if handle.write_all(line.as_bytes()).is_ok() {
            *written += line.len() as u64;
        }
    }
}
