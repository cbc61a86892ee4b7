//! Running the programs berth calls (the Compose tool, the docker CLI, PostgreSQL's
//! clients, `per_instance` commands): each within a deadline for its kind of call, with
//! bounded captured output, in a process group of its own that dies with berth.
//!
//! Dying with berth takes more than `PR_SET_PDEATHSIG`, which reaches only the direct
//! child: a shell script's `sleep`, the Compose v2 plugin under the docker CLI or a
//! PyInstaller tool's real process would keep running. So the child berth starts is a
//! small *guard* (a fork of the child, before `exec`, running no Rust code that
//! allocates): it leads the group, forks once more to `exec` the program, and watches
//! both the program and a pipe whose write end only berth holds. When berth exits in any
//! way, even by SIGKILL, the kernel closes that pipe and the guard sends the whole group
//! SIGTERM, then after [`GRACE`] SIGKILL. When the program exits, the guard exits the
//! same way, so berth sees the program's own status.
//!
//! Interactive commands (`exec`, `shell`, `db shell`) get no deadline and stay in berth's
//! process group, which owns the terminal; [`die_with_berth`] makes them end with it.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;

use crate::env_vars;

/// The most berth keeps of what a command prints on stdout; more is an error, as berth
/// reads the whole of it (a resolved Compose file is a few kilobytes, a YAML anchor bomb
/// expands without end).
pub const MAX_STDOUT_BYTES: u64 = 16 * 1024 * 1024;
/// How much of the end of a command's stderr is kept for an error message.
const MAX_STDERR_BYTES: usize = 64 * 1024;
/// Between SIGTERM and SIGKILL to a command's group: enough for the Compose tool or
/// pg_dump to remove what they were writing, short enough not to hold berth up.
pub const GRACE: Duration = Duration::from_secs(2);
/// How often berth looks at a running command (its exit, its deadline).
const TICK: Duration = Duration::from_millis(20);

/// What a command is for, which decides its deadline and the exit code when it is missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// `<compose> config`: reads local files only. 30 s is far beyond any real project
    /// (well under a second) and still ends a YAML anchor bomb.
    ComposeConfig,
    /// `<compose> up`, `stop`, `restart`, `down`: `up` may pull and build images, which
    /// takes minutes on a slow network or a cold cache, so 10 minutes.
    Compose,
    /// A short question or change to the engine through the docker CLI (`ps`, `inspect`,
    /// `rm`, `volume create`, `create`, `<compose> version`): a healthy engine answers in
    /// well under a second; 60 s covers one that is busy pulling or pruning.
    Docker,
    /// Copying data whose size berth does not know: `pg_dump`, `pg_restore`, `psql` with a
    /// file, `docker cp` of a volume. An hour covers some gigabytes on a slow disk.
    Data,
    /// A service's `per_instance` `create` or `drop` (`CREATE DATABASE`, say): seconds
    /// normally; 2 minutes covers a busy server.
    PerInstance,
    /// `git worktree add` (checks out every file: long for a large repository), `git
    /// worktree remove`, `git status`: 10 minutes.
    Git,
    /// A `[worktree] setup` command (`npm ci`, `bundle install`): 30 minutes.
    Setup,
}

impl CallKind {
    /// The variable that sets this kind's deadline, in milliseconds.
    pub fn variable(self) -> &'static str {
        match self {
            CallKind::ComposeConfig => env_vars::BERTH_COMPOSE_CONFIG_TIMEOUT_MS,
            CallKind::Compose => env_vars::BERTH_COMPOSE_TIMEOUT_MS,
            CallKind::Docker => env_vars::BERTH_DOCKER_TIMEOUT_MS,
            CallKind::Data => env_vars::BERTH_DATA_TIMEOUT_MS,
            CallKind::PerInstance => env_vars::BERTH_PER_INSTANCE_TIMEOUT_MS,
            CallKind::Git => env_vars::BERTH_GIT_TIMEOUT_MS,
            CallKind::Setup => env_vars::BERTH_SETUP_TIMEOUT_MS,
        }
    }

    pub fn default_timeout(self) -> Duration {
        Duration::from_secs(match self {
            CallKind::ComposeConfig => 30,
            CallKind::Compose => 600,
            CallKind::Docker => 60,
            CallKind::Data => 3600,
            CallKind::PerInstance => 120,
            CallKind::Git => 600,
            CallKind::Setup => 1800,
        })
    }

    /// The deadline: the variable's milliseconds when it holds a number, else the default.
    pub fn timeout(self) -> Duration {
        std::env::var(self.variable())
            .ok()
            .and_then(|value| value.trim().parse().ok())
            .map_or(self.default_timeout(), Duration::from_millis)
    }

    /// What to do after a missed deadline.
    fn advice(self) -> &'static str {
        match self {
            CallKind::ComposeConfig => {
                "check the Compose files for YAML anchors and aliases that expand without end \
                 (`docker compose config` shows what Compose makes of them)"
            }
            CallKind::Compose => {
                "building or pulling images can take long: run `docker compose build` or \
                 `docker compose pull` once by hand, or allow more time; `docker info` tells \
                 whether the engine answers"
            }
            CallKind::Docker => "check that the Docker engine answers with `docker info`",
            CallKind::Data => {
                "a large database or volume takes longer to copy; check that the server answers"
            }
            CallKind::PerInstance => {
                "check the command in berth.toml and that the shared service answers"
            }
            CallKind::Git => "check that `git status` answers in the repository",
            CallKind::Setup => "check the `[worktree] setup` command in berth.toml",
        }
    }
}

/// Why a command did not run to an exit status.
#[derive(Debug, thiserror::Error)]
pub enum ExternalError {
    #[error("cannot run `{command}`")]
    Spawn {
        command: String,
        kind: CallKind,
        source: std::io::Error,
    },
    #[error(
        "`{command}` did not finish within {} s, so berth stopped it ({} allows more time)",
        timeout.as_secs_f64(),
        kind.variable()
    )]
    Timeout {
        command: String,
        kind: CallKind,
        timeout: Duration,
    },
    #[error("`{command}` printed more than {} MiB, so berth stopped it", MAX_STDOUT_BYTES / (1024 * 1024))]
    TooMuchOutput { command: String, kind: CallKind },
}

impl ExternalError {
    pub fn kind(&self) -> CallKind {
        match self {
            ExternalError::Spawn { kind, .. }
            | ExternalError::Timeout { kind, .. }
            | ExternalError::TooMuchOutput { kind, .. } => *kind,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            ExternalError::Spawn { source, .. }
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Some("install it, or put it on PATH".to_string())
            }
            ExternalError::Spawn { .. } => None,
            ExternalError::Timeout { kind, .. } => Some(format!(
                "{}; set {}=MILLISECONDS to allow more than the default {} s",
                kind.advice(),
                kind.variable(),
                kind.default_timeout().as_secs()
            )),
            ExternalError::TooMuchOutput { kind, .. } => Some(kind.advice().to_string()),
        }
    }
}

/// A command's exit status and what berth captured of its output.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    /// Everything it printed on stdout, when captured (at most [`MAX_STDOUT_BYTES`]).
    pub stdout: Vec<u8>,
    /// The last 64 KiB it printed on stderr, when captured.
    pub stderr: Vec<u8>,
}

/// Where a child's stdout or stderr goes.
enum Stream {
    Capture,
    Given(Stdio),
}

/// One run of a program, described before it starts.
pub struct Call {
    command: Command,
    display: String,
    kind: CallKind,
    stdout: Stream,
    stderr: Stream,
}

impl Call {
    /// `display` names the command in messages (`docker compose up`); stdin is
    /// `/dev/null` and both outputs are captured unless set otherwise.
    pub fn new(mut command: Command, display: impl Into<String>, kind: CallKind) -> Self {
        command.stdin(Stdio::null());
        Call {
            command,
            display: display.into(),
            kind,
            stdout: Stream::Capture,
            stderr: Stream::Capture,
        }
    }

    /// The command as messages name it.
    pub fn display(&self) -> &str {
        &self.display
    }

    pub fn stdin(mut self, stdin: impl Into<Stdio>) -> Self {
        self.command.stdin(stdin);
        self
    }

    /// Sends stdout there instead of capturing it.
    pub fn stdout(mut self, stdout: impl Into<Stdio>) -> Self {
        self.stdout = Stream::Given(stdout.into());
        self
    }

    /// Sends stderr there instead of capturing it.
    pub fn stderr(mut self, stderr: impl Into<Stdio>) -> Self {
        self.stderr = Stream::Given(stderr.into());
        self
    }

    /// Runs the program to its exit within the kind's deadline. A non-zero exit is not an
    /// error here: the caller says what it means.
    pub fn run(self) -> Result<Finished, ExternalError> {
        let timeout = self.kind.timeout();
        self.run_within(timeout)
    }

    fn run_within(self, timeout: Duration) -> Result<Finished, ExternalError> {
        let Call {
            mut command,
            display,
            kind,
            stdout,
            stderr,
        } = self;
        let spawn_error = |source| ExternalError::Spawn {
            command: display.clone(),
            kind,
            source,
        };
        let capture_stdout = matches!(stdout, Stream::Capture);
        let capture_stderr = matches!(stderr, Stream::Capture);
        command.stdout(match stdout {
            Stream::Capture => Stdio::piped(),
            Stream::Given(stdio) => stdio,
        });
        command.stderr(match stderr {
            Stream::Capture => Stdio::piped(),
            Stream::Given(stdio) => stdio,
        });
        let (watch, _berth_alive) = lifeline().map_err(spawn_error)?;
        command.process_group(0);
        let watch_fd = watch.as_raw_fd();
        // SAFETY: between fork and exec the closure makes only async-signal-safe system
        // calls (fork, prctl, getppid, poll, waitpid, kill, close, dup2, sigaction,
        // setrlimit, nanosleep, _exit) and allocates nothing.
        unsafe {
            command.pre_exec(move || guard_then_exec(watch_fd));
        }
        let started = Instant::now();
        let mut child = command.spawn().map_err(spawn_error)?;
        // The guard holds its own copy; berth's would only keep this one open.
        drop(watch);
        let group = Pid::from_raw(child.id() as i32);

        let (sender, receiver) = channel();
        if capture_stdout && let Some(pipe) = child.stdout.take() {
            let sender = sender.clone();
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = pipe.take(MAX_STDOUT_BYTES + 1).read_to_end(&mut bytes);
                let _ = sender.send((0, bytes));
            });
        }
        if capture_stderr && let Some(pipe) = child.stderr.take() {
            let sender = sender.clone();
            std::thread::spawn(move || {
                let _ = sender.send((1, read_tail(pipe, MAX_STDERR_BYTES)));
            });
        }
        drop(sender);
        let mut outputs: [Option<Vec<u8>>; 2] = [
            (!capture_stdout).then(Vec::new),
            (!capture_stderr).then(Vec::new),
        ];
        let deadline = started + timeout;
        let mut status = None;
        let mut exited_at = None;
        loop {
            if status.is_none() && has_exited(&child) {
                // Anything the program left in its group would keep the pipes open.
                let _ = killpg(group, Signal::SIGKILL);
                status = Some(child.wait().map_err(spawn_error)?);
                exited_at = Some(Instant::now());
            }
            if outputs[0]
                .as_ref()
                .is_some_and(|bytes| bytes.len() as u64 > MAX_STDOUT_BYTES)
            {
                stop_group(&mut child, Duration::ZERO);
                return Err(ExternalError::TooMuchOutput {
                    command: display,
                    kind,
                });
            }
            // A process that left the group still holds a pipe: what was read so far is
            // all there will be.
            let abandoned = exited_at.is_some_and(|at| at.elapsed() > GRACE);
            if let Some(status) = status
                && (outputs.iter().all(Option::is_some) || abandoned)
            {
                let [stdout, stderr] = outputs.map(Option::unwrap_or_default);
                return Ok(Finished {
                    status,
                    stdout,
                    stderr,
                });
            }
            let now = Instant::now();
            if now >= deadline && status.is_none() {
                stop_group(&mut child, GRACE);
                return Err(ExternalError::Timeout {
                    command: display,
                    kind,
                    timeout,
                });
            }
            match receiver.recv_timeout(deadline.saturating_duration_since(now).min(TICK)) {
                Ok((index, bytes)) => outputs[index] = Some(bytes),
                Err(RecvTimeoutError::Timeout) => {}
                // Both readers are done; only the exit is awaited.
                Err(RecvTimeoutError::Disconnected) => std::thread::sleep(TICK),
            }
        }
    }
}

/// Makes an interactive command (one that keeps berth's terminal and has no deadline)
/// receive SIGHUP when berth dies, as it would if the terminal went away: a shell, psql
/// and the docker CLI end on it.
pub fn die_with_berth(command: &mut Command) {
    let parent = std::process::id();
    // SAFETY: prctl, getppid and _exit are async-signal-safe; nothing is allocated.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGHUP) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // berth died before the line above: nobody is waiting for this command.
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// A pipe whose read end the guard watches and whose write end only berth holds; both
/// close-on-exec, so no program inherits them, and at 3 or above, so the child's stdio
/// set-up cannot overwrite them.
fn lifeline() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((above_stdio(read)?, above_stdio(write)?))
}

fn above_stdio(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor, which the OwnedFd then owns.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `new` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Whether the guard has exited, without reaping it: while its zombie is unreaped its
/// PID (the group's ID) cannot be reused, so the group can still be signalled safely.
fn has_exited(child: &Child) -> bool {
    matches!(
        waitid(
            Id::Pid(Pid::from_raw(child.id() as i32)),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
        ),
        Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..))
    )
}

/// SIGTERM to the group, up to `grace` for the program to end, then SIGKILL to whatever
/// is left of the group; reaps the guard.
fn stop_group(child: &mut Child, grace: Duration) {
    let group = Pid::from_raw(child.id() as i32);
    if !grace.is_zero() {
        let _ = killpg(group, Signal::SIGTERM);
        let until = Instant::now() + grace;
        while !has_exited(child) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let _ = killpg(group, Signal::SIGKILL);
    let _ = child.wait();
}

/// Reads `pipe` to its end, keeping only the last `limit` bytes.
fn read_tail(mut pipe: impl Read, limit: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        match pipe.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => {
                kept.extend_from_slice(&buffer[..read]);
                if kept.len() > 2 * limit {
                    kept.drain(..kept.len() - limit);
                }
            }
        }
    }
    if kept.len() > limit {
        kept.drain(..kept.len() - limit);
    }
    kept
}

/// In the child, before `exec`: forks the program, which returns here to be exec'd; this
/// process stays behind as the guard and never returns.
///
/// # Safety
/// Only between fork and exec of a [`Command`]: it forks and calls `_exit`.
unsafe fn guard_then_exec(watch: RawFd) -> std::io::Result<()> {
    // SAFETY: (for the whole function) only async-signal-safe calls on memory this
    // process owns.
    unsafe {
        let guard = libc::getpid();
        let program = libc::fork();
        if program < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if program == 0 {
            // The program: it ends if the guard is killed outright.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != guard {
                libc::_exit(1);
            }
            return Ok(());
        }
        guard_loop(watch, program)
    }
}

/// The guard: mirrors the program's exit, or stops the whole group once berth is gone.
unsafe fn guard_loop(watch: RawFd, program: libc::pid_t) -> ! {
    // SAFETY: (for the whole function) only async-signal-safe calls on memory this
    // process owns.
    unsafe {
        // Signals for the group (berth's SIGTERM at a deadline) are the program's to act
        // on; the guard must live on to report how it ended.
        for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT] {
            libc::signal(signal, libc::SIG_IGN);
        }
        // Keep only the lifeline, at 3: every other descriptor (stdio pipes, the exec
        // error pipe std uses, berth's other files) would keep something open for berth.
        if watch != 3 {
            libc::dup2(watch, 3);
        }
        for fd in 0..3 {
            libc::close(fd);
        }
        if libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32) != 0 {
            for fd in 4..4096 {
                libc::close(fd);
            }
        }
        let pidfd = libc::syscall(libc::SYS_pidfd_open, program, 0u32) as libc::c_int;
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: 3,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: pidfd,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            let (count, wait_ms) = if pidfd >= 0 { (2, -1) } else { (1, 50) };
            libc::poll(fds.as_mut_ptr(), count, wait_ms);
            let berth_gone = fds[0].revents != 0;
            let mut status = 0;
            if libc::waitpid(program, &mut status, libc::WNOHANG) == program {
                if berth_gone {
                    libc::kill(0, libc::SIGKILL);
                }
                mirror_exit(status);
            }
            if berth_gone {
                libc::kill(0, libc::SIGTERM);
                let pause = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 20_000_000,
                };
                for _ in 0..(GRACE.as_millis() / 20) {
                    if libc::waitpid(program, &mut status, libc::WNOHANG) == program {
                        break;
                    }
                    libc::nanosleep(&pause, std::ptr::null_mut());
                }
                libc::kill(0, libc::SIGKILL);
                libc::_exit(1);
            }
        }
    }
}

/// Ends the guard the way the program ended: the same exit code, or the same signal.
unsafe fn mirror_exit(status: libc::c_int) -> ! {
    // SAFETY: async-signal-safe calls only.
    unsafe {
        if libc::WIFSIGNALED(status) {
            let signal = libc::WTERMSIG(status);
            let no_core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &no_core);
            libc::signal(signal, libc::SIG_DFL);
            libc::kill(libc::getpid(), signal);
            libc::_exit(128 + signal);
        }
        libc::_exit(libc::WEXITSTATUS(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.arg("-c").arg(script);
        command
    }

    #[test]
    fn reports_the_programs_own_status_and_output() {
        let done = Call::new(sh("echo out; echo err >&2; exit 3"), "sh", CallKind::Docker)
            .run()
            .unwrap();
        assert_eq!(done.status.code(), Some(3));
        assert_eq!(done.stdout, b"out\n");
        assert_eq!(done.stderr, b"err\n");
        let killed = Call::new(sh("kill -USR1 $$"), "sh", CallKind::Docker)
            .run()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(killed.status.signal(), Some(libc::SIGUSR1));
    }

    #[test]
    fn a_missed_deadline_stops_the_whole_group_and_names_the_variable() {
        let marker = format!("{}", 8_100_000 + std::process::id());
        let started = Instant::now();
        let error = Call::new(
            sh(&format!("sleep {marker} & wait")),
            "hang",
            CallKind::Compose,
        )
        .run_within(Duration::from_millis(200))
        .unwrap_err();
        // A shell ignores nothing here: SIGTERM ends it at once, no grace used up.
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            error.to_string(),
            "`hang` did not finish within 0.2 s, so berth stopped it \
             (BERTH_COMPOSE_TIMEOUT_MS allows more time)"
        );
        let left = crate::process::all_pids()
            .into_iter()
            .filter(|pid| {
                crate::process::command_line(*pid).is_some_and(|line| line.contains(&marker))
                    && crate::process::is_running(*pid)
            })
            .count();
        assert_eq!(left, 0, "the shell's child outlived the deadline");
    }

    #[test]
    fn keeps_only_the_tail_of_stderr_and_refuses_a_flood() {
        let done = Call::new(
            sh("head -c 200000 /dev/zero | tr '\\0' a >&2; echo end >&2"),
            "sh",
            CallKind::Docker,
        )
        .run()
        .unwrap();
        assert_eq!(done.stderr.len(), MAX_STDERR_BYTES);
        assert!(done.stderr.ends_with(b"aaaend\n"));
        let error = Call::new(sh("exec yes"), "yes", CallKind::Docker)
            .run()
            .unwrap_err();
        assert!(matches!(error, ExternalError::TooMuchOutput { .. }));
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let error = Call::new(
            Command::new("/nonexistent/berth-tool"),
            "berth-tool",
            CallKind::Docker,
        )
        .run()
        .unwrap_err();
        assert!(
            matches!(&error, ExternalError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
            "{error:?}"
        );
    }
}
