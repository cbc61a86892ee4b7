//! Unix specifics: spawning services in sessions (and cgroups) of their own, peeking at
//! exits, signalling groups.

use std::fs::OpenOptions;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;

use super::children;
use crate::cgroup::Cgroup;
use crate::env_vars;
use crate::pidfd::Pidfd;
use crate::spawn::{Child, Spawn, Started};
use crate::state::{InstanceFile, InstancePaths, ProcessSpec};

fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        fs_err::create_dir_all(dir)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|error| {
            std::io::Error::new(
                error.kind(),
                format!("cannot open log `{}`: {error}", path.display()),
            )
        })
}

/// Starts `argv` as a service process: the leader of a session of its own, created in
/// the service's cgroup when there is one (so all it ever starts is in there too),
/// output to `output` (the write end of its log's pipe), the instance's token in its
/// environment, and SIGTERM if the supervisor's loop thread that started it dies.
pub fn spawn_process(
    argv: &[String],
    spec: &ProcessSpec,
    token: &str,
    cgroup: Option<&Cgroup>,
    output: OwnedFd,
) -> std::io::Result<Child> {
    let program = argv.first().map_or("", String::as_str);
    let spawn = Spawn::new(argv)?
        .current_dir(&spec.cwd)?
        .envs(&spec.env)
        .env(env_vars::BERTH_RUN_TOKEN, token)
        .stdin_null()?
        .stdout(output.try_clone()?)
        .stderr(output)
        .new_session()
        .death_signal(libc::SIGTERM)
        .close_from(3)
        .cgroup(cgroup);
    children::spawn_leader(spawn).map_err(|error| {
        std::io::Error::new(
            error.kind(),
            format!(
                "cannot start `{program}` in `{}`: {error}",
                spec.cwd.display()
            ),
        )
    })
}

/// Marks every descriptor from `first` on (3: all above stderr) close-on-exec, in a
/// child between fork and exec: what berth's own caller left open (a `flock` lock, a CI runner's pipe) must
/// not be held by the supervisor or a service for as long as they run. Marked, not
/// closed, so the descriptor the standard library uses to report a failed exec works.
/// Best effort: a kernel without close_range (before 5.11) leaves them as they are.
pub fn close_inherited_on_exec(first: u32) {
    // SAFETY: close_range only changes this process's descriptor flags.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
    }
}

/// Makes the child receive SIGTERM when the thread that started it dies.
fn die_with_parent(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches only the calling (child) process.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Starts `docker logs -f` on a container, its output to `output` (the write end of the
/// service's log pipe). `since` (Unix seconds, fractional) skips what an earlier follower
/// already copied.
pub fn spawn_log_follower(
    container: &str,
    since: Option<&str>,
    output: OwnedFd,
    token: &str,
) -> std::io::Result<std::process::Child> {
    let log = std::fs::File::from(output);
    let endpoint = crate::docker::Endpoint::from_env().map_err(std::io::Error::other)?;
    let mut command = endpoint.command("docker");
    command.args(["logs", "--follow"]);
    if let Some(since) = since {
        command.arg("--since").arg(since);
    }
    command.arg(container);
    supervised(&mut command, log, token)?;
    command.spawn()
}

/// What a helper child of the supervisor (`docker logs`) gets: the run token, no stdin,
/// output appended to `log`, its own process group in the supervisor's session, and
/// SIGTERM when the thread that started it dies.
fn supervised(command: &mut Command, log: std::fs::File, token: &str) -> std::io::Result<()> {
    command
        .env(env_vars::BERTH_RUN_TOKEN, token)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    die_with_parent(command);
    Ok(())
}

/// A one-shot timer with the kernel's precision, for the readiness probes' ticks:
/// tokio's timers round a deadline up to the next whole millisecond, which made a 1 ms
/// tick come every 2 ms, and a service be seen ready a millisecond late.
pub struct Ticker {
    fd: AsyncFd<OwnedFd>,
}

impl Ticker {
    /// `None` where the kernel gives no timerfd: the caller uses tokio's timers. Must be
    /// called inside the supervisor's runtime.
    pub fn new() -> Option<Ticker> {
        use rustix::time::{TimerfdClockId, TimerfdFlags, timerfd_create};
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )
        .ok()?;
        // SAFETY: the `AsyncFd` owns the descriptor: it stays open and keeps its number
        // until the `AsyncFd` drops it.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.ok()?;
        Some(Ticker { fd })
    }

    /// Returns once `duration` has passed; arming the timer again replaces an earlier
    /// arming (and the expiry it may have left unread).
    pub async fn sleep(&self, duration: Duration) {
        use rustix::time::{Itimerspec, TimerfdTimerFlags, Timespec, timerfd_settime};
        // A zero expiry would disarm the timer.
        let duration = duration.max(Duration::from_micros(1));
        let expiry = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: Timespec {
                tv_sec: duration.as_secs().try_into().unwrap_or(i64::MAX),
                tv_nsec: duration.subsec_nanos().into(),
            },
        };
        if timerfd_settime(&self.fd, TimerfdTimerFlags::empty(), &expiry).is_err() {
            return tokio::time::sleep(duration).await;
        }
        loop {
            let Ok(mut ready) = self.fd.readable().await else {
                return tokio::time::sleep(duration).await;
            };
            let mut expirations = [0u8; 8];
            // An expiry left unread from an earlier arming was cleared by the new one:
            // the read then finds nothing, and the readiness is cleared to wait again.
            let read = ready.try_io(|fd| {
                rustix::io::read(fd.get_ref(), &mut expirations).map_err(std::io::Error::from)
            });
            if let Ok(result) = read {
                if result.is_err() {
                    tokio::time::sleep(duration).await;
                }
                return;
            }
        }
    }
}

/// Waits, without a thread and without polling, for one process to end: its pidfd
/// becomes readable when it exits. Where the kernel has no pidfd (before Linux 5.3),
/// it looks every [`WATCH_FALLBACK_TICK`] instead.
pub struct ProcessWatch {
    pid: u32,
    fd: Option<AsyncFd<Pidfd>>,
}

/// How often a [`ProcessWatch`] without a pidfd looks at its process.
const WATCH_FALLBACK_TICK: Duration = Duration::from_millis(50);

impl ProcessWatch {
    /// Watches `pid`, which must be alive or an unreaped zombie (a child not yet waited
    /// for), so that the PID cannot name another process. Must be called inside the
    /// supervisor's runtime.
    pub fn new(pid: u32) -> Self {
        let fd = Pidfd::open(pid).ok().and_then(|pidfd| {
            // SAFETY: a `Pidfd` owns its descriptor: it stays open and keeps its number
            // until the `AsyncFd` drops it.
            unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE).ok() }
        });
        ProcessWatch { pid, fd }
    }

    /// Whether the kernel gave a pidfd (else [`ProcessWatch::ended`] polls).
    pub fn has_pidfd(&self) -> bool {
        self.fd.is_some()
    }

    /// Returns once the process has ended (exited, or is a zombie).
    pub async fn ended(&self) {
        match &self.fd {
            // The pidfd stays readable once the process has ended: no need to clear it.
            Some(fd) => drop(fd.readable().await),
            None => {
                while crate::process::is_running(self.pid) {
                    tokio::time::sleep(WATCH_FALLBACK_TICK).await;
                }
            }
        }
    }

    /// The exit status of the watched child once it has exited (without reaping it).
    pub async fn exit(&self) -> ExitInfo {
        loop {
            self.ended().await;
            if let Some(exit) = peek_exit_of(self.pid) {
                return exit;
            }
            // Ended but no status: not our child (or already reaped by someone else).
            if !crate::process::is_running(self.pid) {
                return ExitInfo {
                    code: None,
                    signal: None,
                };
            }
            tokio::time::sleep(WATCH_FALLBACK_TICK).await;
        }
    }
}

/// The exit status of the child `pid` if it has exited, without reaping it: while the
/// zombie is unreaped its PID (and so its process group ID) cannot be reused, so the
/// group can still be signalled safely.
fn peek_exit_of(pid: u32) -> Option<ExitInfo> {
    let pid = Pid::from_raw(pid as i32);
    match waitid(
        Id::Pid(pid),
        WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
    ) {
        Ok(WaitStatus::Exited(_, code)) => Some(ExitInfo {
            code: Some(code),
            signal: None,
        }),
        Ok(WaitStatus::Signaled(_, signal, _)) => Some(ExitInfo {
            code: None,
            signal: Some(signal as i32),
        }),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl ExitInfo {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    pub fn describe(&self) -> String {
        match (self.code, self.signal) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => "its processes exited".to_string(),
        }
    }
}

/// Starts the supervisor of the instance whose state directory `paths` names: a daemon
/// in a session of its own, created in `cgroup` (the instance's supervisor leaf) when
/// there is one, output to its log. It waits for the word to go on its standard input,
/// `go` (see [`await_go`]). Returns once the process exists; [`Started::finish`] tells
/// whether it runs.
pub fn spawn_supervisor(
    paths: &InstancePaths,
    cgroup: Option<&Cgroup>,
    go: OwnedFd,
) -> std::io::Result<Started> {
    let executable = std::env::current_exe()?;
    let log = OwnedFd::from(open_log(&paths.supervisor_log())?);
    Spawn::new(&[
        executable.as_os_str(),
        crate::cli::SUPERVISE.as_ref(),
        paths.dir.as_os_str(),
    ])?
    .stdin(go)
    .stdout(log.try_clone()?)
    .stderr(log)
    .new_session()
    .close_from(3)
    .cgroup(cgroup)
    .start()
}

/// What `up` writes on the supervisor's standard input once the instance's files are
/// written, followed by the instance as it is about to record it (one line of JSON):
/// the supervisor starts the services from that, while `up` writes `instance.json`.
pub const GO: &[u8] = b"go\n";
/// What `up` writes next, once `instance.json` holds the instance: from then on the
/// supervisor writes the file. Its input closing before that means `up` failed to
/// record the instance: the supervisor stops what it started, recording the instance
/// stopping, then stopped.
pub const PUBLISHED: &[u8] = b"published\n";

/// The rest of what `up` says on the supervisor's input, after [`GO`].
pub struct Orders {
    input: std::io::BufReader<std::fs::File>,
}

impl Orders {
    /// Waits until `up` has written `instance.json`: true once it says so, false when
    /// its input closed first.
    pub fn published(mut self) -> bool {
        use std::io::BufRead;
        let mut line = String::new();
        self.input.read_line(&mut line).is_ok() && line.as_bytes() == PUBLISHED
    }
}

/// Waits for [`GO`] and the instance on standard input; None when `up` closed it first
/// (it failed, or was killed, before the instance's files were written) or sent
/// something else. Standard input is then `/dev/null`: nothing the supervisor starts
/// inherits the pipe, which the returned [`Orders`] reads from.
pub fn await_go() -> Option<(InstanceFile, Orders)> {
    use std::io::BufRead;
    let input = std::io::stdin().as_fd().try_clone_to_owned().ok();
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = nix::unistd::dup2_stdin(null);
    }
    let mut input = std::io::BufReader::new(std::fs::File::from(input?));
    let mut line = String::new();
    if input.read_line(&mut line).ok()? == 0 || line.as_bytes() != GO {
        return None;
    }
    line.clear();
    input.read_line(&mut line).ok()?;
    let file = serde_json::from_str(&line).ok()?;
    Some((file, Orders { input }))
}
