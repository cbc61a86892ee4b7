//! The control socket `supervisor.sock`: one JSON request per connection, one JSON reply.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// Activate services (all when empty) that are inactive.
    Start { services: Vec<String> },
    /// Restart services (all active ones when empty).
    Restart { services: Vec<String> },
    /// Stop every service and exit.
    Stop,
    /// Answer once `instance.json` has been written past version `after` (at once when
    /// it already was), or after `timeout_ms` (at most [`MAX_WAIT`]): how `up` learns of
    /// every change without reading the file again and again.
    Wait { after: u64, timeout_ms: u64 },
}

/// The longest a [`Request::Wait`] is held before it is answered anyway.
pub const MAX_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    pub error: Option<String>,
    /// For [`Request::Wait`]: the version of `instance.json` on disk.
    #[serde(default)]
    pub written: Option<u64>,
}

impl Reply {
    pub fn ok() -> Self {
        Reply {
            ok: true,
            error: None,
            written: None,
        }
    }

    pub fn failed(error: String) -> Self {
        Reply {
            ok: false,
            error: Some(error),
            written: None,
        }
    }
}

pub const SOCKET_NAME: &str = "supervisor.sock";

/// Binds the socket in the current directory (the supervisor runs in the instance's
/// state directory), so a deep project path never hits the 108-byte socket path limit.
pub fn bind() -> std::io::Result<UnixListener> {
    let _ = std::fs::remove_file(SOCKET_NAME);
    let listener = UnixListener::bind(SOCKET_NAME)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Waits until the supervisor of the instance in `dir` has written `instance.json` past
/// version `after` (see [`Request::Wait`]), at most `timeout`; returns the version on
/// disk. An error when there is no supervisor to ask (not started yet, or gone).
pub fn wait_for_write(dir: &Path, after: u64, timeout: Duration) -> std::io::Result<u64> {
    let timeout_ms = timeout.min(MAX_WAIT).as_millis() as u64;
    let reply = send(dir, &Request::Wait { after, timeout_ms })?;
    reply
        .written
        .ok_or_else(|| std::io::Error::other(reply.error.unwrap_or_default()))
}

/// Sends `request` to the supervisor of the instance in `dir` and returns its reply.
pub fn send(dir: &Path, request: &Request) -> std::io::Result<Reply> {
    // Connect through /proc/self/fd/N/…: the path stays short however deep `dir` is.
    let directory = std::fs::File::open(dir)?;
    let path = format!("/proc/self/fd/{}/{SOCKET_NAME}", directory.as_raw_fd());
    let mut stream = UnixStream::connect(&path)?;
    drop(directory);
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut bytes = serde_json::to_vec(request).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    stream.write_all(&bytes)?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    serde_json::from_str(&line).map_err(std::io::Error::other)
}
