//! Readiness checks: TCP connect, HTTP status, a command's exit status, a log line.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use regex::Regex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::unix::ProcessWatch;

use crate::logs::LogCursor;
use crate::membership::ServiceScope;
use crate::process;
use crate::state::{ProcessSpec, ReadyCheck};

/// The outcome of one check.
pub enum Probe {
    Ready,
    NotYet,
    /// Something answers, but it is not this service (a port held by another program).
    Foreign(String),
}

/// Runs one kind of check repeatedly; keeps what it needs between attempts.
pub struct Readiness {
    check: ReadyCheck,
    log: Option<LogScan>,
    /// PIDs already verified to belong to this instance, so /proc is scanned once.
    verified_owner: bool,
    last_exec: Option<Instant>,
}

/// Reads the log as it grows (across rotations), a bounded piece per probe and one line
/// of at most [`MAX_LINE`](crate::logs::MAX_LINE) bytes at a time, so a service writing
/// without newlines cannot make the supervisor grow.
struct LogScan {
    cursor: LogCursor,
    pattern: Regex,
}

/// The most one `log` probe reads; the rest waits for the next tick.
const LOG_SCAN_BUDGET: u64 = 4 * 1024 * 1024;

/// How often an `exec` check runs; the others are cheap enough to run every tick.
const EXEC_INTERVAL: Duration = Duration::from_millis(250);
const EXEC_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long an `http` check may take, connection and answer together.
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);

impl Readiness {
    /// `log_start` is where the log stood when the process started: a log check only
    /// looks at lines written since.
    pub fn new(spec: &ProcessSpec, log_start: LogCursor) -> Self {
        let log = match &spec.ready {
            ReadyCheck::Log { pattern } => Regex::new(pattern).ok().map(|pattern| LogScan {
                cursor: log_start,
                pattern,
            }),
            _ => None,
        };
        Readiness {
            check: spec.ready.clone(),
            log,
            verified_owner: false,
            last_exec: None,
        }
    }

    pub async fn probe(&mut self, spec: &ProcessSpec, scope: &ServiceScope) -> Probe {
        match self.check.clone() {
            ReadyCheck::Started => Probe::Ready,
            ReadyCheck::Tcp { port } => match connect(port).await {
                Some(_) => self.owned(port, scope),
                None => Probe::NotYet,
            },
            ReadyCheck::Http { port, path, status } => match http_status(port, &path).await {
                Some(code) if status.accepts(code) => self.owned(port, scope),
                _ => Probe::NotYet,
            },
            ReadyCheck::Exec { argv } => self.exec(&argv, spec).await,
            ReadyCheck::Log { .. } => match self.log.as_mut().map(LogScan::scan) {
                Some(true) => Probe::Ready,
                _ => Probe::NotYet,
            },
        }
    }

    /// A connection succeeded: make sure the listener is one of this service's
    /// processes (its cgroup, session or tree), so a port grabbed by another program is
    /// never reported ready.
    fn owned(&mut self, port: u16, scope: &ServiceScope) -> Probe {
        if self.verified_owner {
            return Probe::Ready;
        }
        match process::listener_of_preferring(port, &scope.members()) {
            Some(holder) if !scope.contains(holder) => Probe::Foreign(format!(
                "port {port} answers, but it is held by PID {holder} (`{}`), not by this service",
                process::command_line(holder).unwrap_or_default()
            )),
            _ => {
                self.verified_owner = true;
                Probe::Ready
            }
        }
    }

    async fn exec(&mut self, argv: &[String], spec: &ProcessSpec) -> Probe {
        if self
            .last_exec
            .is_some_and(|last| last.elapsed() < EXEC_INTERVAL)
        {
            return Probe::NotYet;
        }
        self.last_exec = Some(Instant::now());
        let Some((program, arguments)) = argv.split_first() else {
            return Probe::NotYet;
        };
        let child = Command::new(program)
            .args(arguments)
            .current_dir(&spec.cwd)
            .envs(&spec.env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(mut child) = child else {
            return Probe::NotYet;
        };
        let watch = ProcessWatch::new(child.id());
        let passed = match tokio::time::timeout(EXEC_TIMEOUT, watch.exit()).await {
            Ok(exit) => exit.success(),
            Err(_) => {
                let _ = child.kill();
                false
            }
        };
        let _ = child.wait();
        if passed { Probe::Ready } else { Probe::NotYet }
    }
}

impl LogScan {
    fn scan(&mut self) -> bool {
        let mut found = false;
        let pattern = &self.pattern;
        self.cursor.read(LOG_SCAN_BUDGET, &mut |line| {
            found = found || pattern.is_match(&String::from_utf8_lossy(line));
        });
        found
    }
}

async fn connect(port: u16) -> Option<TcpStream> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
        .await
        .ok()?
        .ok()
}

/// The status code of the answer to `GET path`, if one comes in time.
async fn http_status(port: u16, path: &str) -> Option<u16> {
    let exchange = async {
        let mut stream = connect(port).await?;
        let request = format!(
            "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: berth\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 32];
        let mut filled = 0;
        while filled < 12 {
            let read = stream.read(&mut head[filled..]).await.ok()?;
            if read == 0 {
                break;
            }
            filled += read;
        }
        let status_line = std::str::from_utf8(&head[..filled]).ok()?;
        let code: u16 = status_line.split_ascii_whitespace().nth(1)?.parse().ok()?;
        // The rest of the answer is read before the connection closes, off the probe's
        // path: closing with unread data sends a reset, which servers report as an error
        // of their own (Python's http.server logs a ConnectionResetError traceback).
        tokio::spawn(drain(stream));
        Some(code)
    };
    tokio::time::timeout(HTTP_TIMEOUT, exchange).await.ok()?
}

/// The most of a probe's answer read before closing; past it, the reset is the server's
/// problem (a readiness path that answers megabytes).
const DRAIN_LIMIT: usize = 1024 * 1024;

/// Reads what the server still sends until it closes (it was asked to), within
/// [`HTTP_TIMEOUT`] and [`DRAIN_LIMIT`].
async fn drain(mut stream: TcpStream) {
    let mut buffer = [0u8; 4096];
    let mut read_total = 0;
    let _ = tokio::time::timeout(HTTP_TIMEOUT, async {
        while read_total < DRAIN_LIMIT {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => read_total += read,
            }
        }
    })
    .await;
}
