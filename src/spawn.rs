//! Starting a program directly inside a cgroup: `clone3` with `CLONE_INTO_CGROUP`, then
//! `execve`. `up` starts the supervisor so, in its instance's cgroup, and the supervisor
//! each service, in the service's own.
//!
//! Why by hand: moving a process into a cgroup once it exists (a write of `0` to
//! `cgroup.procs`, all a `pre_exec` hook can do) takes the kernel's global
//! `cgroup_threadgroup_rwsem` for writing, which waits for an RCU grace period: 6 to 11 ms
//! per move on the 2-core test machine, on the path of every `up` (the supervisor, then
//! each service). A process created in its cgroup moves nowhere (0.2 ms). The standard
//! library's `Command` cannot hand a cgroup to `clone3`, and no maintained crate spawns
//! that way, so this module does the part of `Command::spawn` berth needs: every array
//! (arguments, environment, where to look for the program) is built before the clone;
//! the child then makes only async-signal-safe system calls (signal mask, `dup2`,
//! `chdir`, `setsid`, `prctl`, `close_range`, `execve`) and sends a failure's errno back
//! through a close-on-exec pipe.
//!
//! Where the kernel refuses the cgroup (before Linux 5.7, a cgroup removed meanwhile, no
//! permission), the child is forked as usual and moves itself in: slower, never wrong.
//! So too where the kernel kills the new child at once: Linux 6.18 sends SIGKILL to a
//! child created in a cgroup whose `cgroup.kill` count differs from its parent's (a
//! service's leaf once killed by a stop, say). The child's first act is to say it runs;
//! a child that dies before it could is started again the slow way.
//!
//! [`Spawn::spawn`] returns once the program runs; [`Spawn::start`] as soon as the process
//! exists, its exec confirmed later ([`Started::finish`]): `up` goes on with its own work
//! while the supervisor it started loads.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::cgroup::Cgroup;

/// A program to start: built up, then [`Spawn::spawn`]ed once.
pub struct Spawn {
    argv: Vec<CString>,
    /// Extra or changed variables, on top of this process's environment.
    env: Vec<(OsString, OsString)>,
    cwd: Option<CString>,
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    new_session: bool,
    death_signal: Option<libc::c_int>,
    /// Descriptors from this one on are closed at exec.
    close_from: Option<u32>,
    cgroup: Option<Cgroup>,
}

/// A started process, to be waited for once (its exit status is left to the caller's
/// own watch, e.g. a pidfd).
#[derive(Debug)]
pub struct Child {
    pid: u32,
    reaped: bool,
}

impl Child {
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// Waits for the process to exit and reaps it (once; later calls return at once).
    pub fn wait(&mut self) {
        if self.reaped {
            return;
        }
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(self.pid as i32), None);
        self.reaped = true;
    }
}

fn c_string(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` contains a NUL byte", String::from_utf8_lossy(bytes)),
        )
    })
}

impl Spawn {
    /// `argv[0]` is the program: a path when it has a `/`, else looked up in the `PATH`
    /// of the environment the program gets, as `execvp` does.
    pub fn new<S: AsRef<OsStr>>(argv: &[S]) -> io::Result<Spawn> {
        if argv.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty command"));
        }
        Ok(Spawn {
            argv: argv
                .iter()
                .map(|argument| c_string(argument.as_ref().as_bytes()))
                .collect::<io::Result<_>>()?,
            env: Vec::new(),
            cwd: None,
            stdin: None,
            stdout: None,
            stderr: None,
            new_session: false,
            death_signal: None,
            close_from: None,
            cgroup: None,
        })
    }

    pub fn env(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((name.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    pub fn envs<K: AsRef<OsStr>, V: AsRef<OsStr>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        for (name, value) in vars {
            self = self.env(name, value);
        }
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> io::Result<Self> {
        self.cwd = Some(c_string(dir.as_os_str().as_bytes())?);
        Ok(self)
    }

    pub fn stdin(mut self, fd: OwnedFd) -> Self {
        self.stdin = Some(fd);
        self
    }

    /// Standard input from `/dev/null`.
    pub fn stdin_null(mut self) -> io::Result<Self> {
        self.stdin = Some(OwnedFd::from(std::fs::File::open("/dev/null")?));
        Ok(self)
    }

    pub fn stdout(mut self, fd: OwnedFd) -> Self {
        self.stdout = Some(fd);
        self
    }

    pub fn stderr(mut self, fd: OwnedFd) -> Self {
        self.stderr = Some(fd);
        self
    }

    /// The program leads a session (and process group) of its own.
    pub fn new_session(mut self) -> Self {
        self.new_session = true;
        self
    }

    /// The program gets `signal` when the thread that started it dies.
    pub fn death_signal(mut self, signal: libc::c_int) -> Self {
        self.death_signal = Some(signal);
        self
    }

    /// Every descriptor from `first` on (3: all above the standard three) is closed at
    /// exec, whatever this process left open.
    pub fn close_from(mut self, first: u32) -> Self {
        self.close_from = Some(first);
        self
    }

    /// The program starts in `cgroup` (best effort: where the kernel refuses, outside).
    pub fn cgroup(mut self, cgroup: Option<&Cgroup>) -> Self {
        self.cgroup = cgroup.cloned();
        self
    }

    /// Starts the program; an error when it could not be run (not found, not
    /// executable, a bad working directory), with the errno of the step that failed.
    pub fn spawn(self) -> io::Result<Child> {
        self.start()?.finish()
    }

    /// Creates the process and returns at once, before it has run its program:
    /// [`Started::finish`] then waits until it does.
    pub fn start(self) -> io::Result<Started> {
        // Created in the cgroup; else (refused) forked, to move itself in.
        if let Some(dir) = self.cgroup.as_ref().and_then(Cgroup::open_dir)
            && let Some((child, report)) = self.launch(How::Into(dir.as_raw_fd()))?
        {
            return Ok(Started {
                spawn: self,
                child,
                report,
                forked: false,
            });
        }
        self.start_forked()
    }

    /// Starts the program the slow way: forked, the child moving itself into the
    /// cgroup; waits until it runs its program.
    fn spawn_forked(self) -> io::Result<Child> {
        match self.start_forked()?.ran()? {
            Ran::Running(child) => Ok(child),
            Ran::Unborn(_) => Err(died_unborn()),
        }
    }

    fn start_forked(self) -> io::Result<Started> {
        let procs = self.cgroup.as_ref().and_then(Cgroup::procs_writer);
        let (child, report) = self
            .launch(How::Fork(procs.as_ref().map(AsRawFd::as_raw_fd)))?
            .ok_or_else(died_unborn)?;
        Ok(Started {
            spawn: self,
            child,
            report,
            forked: true,
        })
    }

    /// Makes the child: it and the pipe on which it reports, or None when the kernel
    /// refused to create it in the cgroup.
    fn launch(&self, how: How) -> io::Result<Option<(Child, OwnedFd)>> {
        let plan = Plan::new(self)?;
        let stdio = [
            self.stdin.as_ref().map(AsRawFd::as_raw_fd),
            self.stdout.as_ref().map(AsRawFd::as_raw_fd),
            self.stderr.as_ref().map(AsRawFd::as_raw_fd),
        ];
        let settings = ChildSettings {
            new_session: self.new_session,
            death_signal: self.death_signal,
            close_from: self.close_from,
        };
        let (report_read, report_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let fds = ChildFds {
            stdio,
            report: report_write.as_raw_fd(),
        };
        let (pid, migrate) = match how {
            How::Into(dir) => (clone_into_cgroup(dir), None),
            // SAFETY: the child runs only `run_child`, which makes async-signal-safe
            // system calls on memory prepared before the fork, and never returns.
            How::Fork(procs) => (unsafe { libc::fork() } as libc::c_long, procs),
        };
        if pid == 0 {
            // SAFETY: in the child of the fork or clone, as `run_child` requires.
            unsafe { run_child(&plan, &fds, &settings, migrate) }
        }
        if pid < 0 {
            return match how {
                How::Into(_) => Ok(None),
                How::Fork(_) => Err(io::Error::last_os_error()),
            };
        }
        Ok(Some((
            Child {
                pid: pid as u32,
                reaped: false,
            },
            report_read,
        )))
    }
}

fn died_unborn() -> io::Error {
    io::Error::other("the new process died before it could run its program")
}

/// A process created by [`Spawn::start`] that may not have run its program yet.
pub struct Started {
    /// Kept until the child has run its program: the parent's copies of its standard
    /// descriptors close then, and the slow way needs it when the child died unborn.
    spawn: Spawn,
    child: Child,
    /// What the child says before its exec closes it: see [`read_report`].
    report: OwnedFd,
    forked: bool,
}

/// What became of a [`Started`] process.
enum Ran {
    /// It runs its program.
    Running(Child),
    /// The kernel killed it before it ran (Linux 6.18 kills a child created in a cgroup
    /// whose `cgroup.kill` count differs from its parent's: a service's leaf once killed
    /// by a stop, say): start it again with [`Spawn::spawn_forked`].
    Unborn(Spawn),
}

impl Started {
    /// Waits until the child runs its program (started again the slow way if it died
    /// unborn); an error when it could not.
    pub fn finish(self) -> io::Result<Child> {
        match self.ran()? {
            Ran::Running(child) => Ok(child),
            Ran::Unborn(spawn) => spawn.spawn_forked(),
        }
    }

    /// Waits until the child has run its program or failed to, or died unborn.
    fn ran(self) -> io::Result<Ran> {
        let report = read_report(&self.report);
        self.conclude(&report)
    }

    /// What the child's report (everything it wrote before its pipe closed) says.
    fn conclude(self, report: &[u8]) -> io::Result<Ran> {
        let Started {
            spawn,
            mut child,
            forked,
            ..
        } = self;
        match report {
            [] => {
                child.wait();
                if forked {
                    Err(died_unborn())
                } else {
                    Ok(Ran::Unborn(spawn))
                }
            }
            [_, errno @ ..] if errno.len() == 4 => {
                child.wait();
                let errno: [u8; 4] = errno.try_into().expect("four bytes");
                Err(io::Error::from_raw_os_error(i32::from_ne_bytes(errno)))
            }
            _ => Ok(Ran::Running(child)),
        }
    }
}

/// How a child is made.
#[derive(Clone, Copy)]
enum How {
    /// `clone3` into the cgroup whose directory this is.
    Into(RawFd),
    /// `fork`; the child moves itself into the cgroup whose `cgroup.procs` this is.
    Fork(Option<RawFd>),
}

/// `clone3(CLONE_INTO_CGROUP)`: like `fork`, the child created in the cgroup whose
/// directory `dir` is. The child's PID, 0 in the child, or -1.
fn clone_into_cgroup(dir: RawFd) -> libc::c_long {
    // SAFETY: `clone_args` is plain data; all-zero is its documented default.
    let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
    args.flags = CLONE_INTO_CGROUP;
    args.exit_signal = libc::SIGCHLD as u64;
    args.cgroup = dir as u64;
    // SAFETY: without CLONE_VM the child gets a copy of this address space and returns
    // here on its own copy of the stack, as from `fork`; the caller runs only
    // `run_child` in it.
    unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const libc::clone_args,
            std::mem::size_of::<libc::clone_args>(),
        )
    }
}

/// `CLONE_INTO_CGROUP` from `linux/sched.h` (Linux 5.7).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Everything the child wrote before its exec (or its death) closed the pipe: one byte
/// once it runs, then a failed step's errno (four bytes); nothing when it died first.
fn read_report(pipe: &OwnedFd) -> Vec<u8> {
    let mut report = Vec::new();
    let mut buffer = [0u8; 8];
    loop {
        match nix::unistd::read(pipe, &mut buffer) {
            Ok(0) => return report,
            Ok(read) => report.extend_from_slice(&buffer[..read]),
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return report,
        }
    }
}

/// Everything the child needs, as C arrays, built before the clone.
struct Plan {
    /// Where to try the program, in order (one path when it has a `/`).
    candidates: Vec<CString>,
    argv: Vec<CString>,
    argv_pointers: Vec<*const libc::c_char>,
    /// For each candidate, `/bin/sh CANDIDATE ARGS…`: a program the kernel cannot run
    /// (ENOEXEC, a script without `#!`) is run by the shell, as `execvp` does.
    shell_argv: Vec<Vec<*const libc::c_char>>,
    shell: CString,
    env: Vec<CString>,
    env_pointers: Vec<*const libc::c_char>,
    cwd: Option<CString>,
    empty_mask: libc::sigset_t,
}

impl Plan {
    fn new(spawn: &Spawn) -> io::Result<Plan> {
        let mut env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
        for (name, value) in &spawn.env {
            match env.iter_mut().find(|(existing, _)| existing == name) {
                Some(entry) => entry.1 = value.clone(),
                None => env.push((name.clone(), value.clone())),
            }
        }
        let program = spawn.argv[0].as_bytes();
        let candidates = if program.contains(&b'/') {
            vec![spawn.argv[0].clone()]
        } else {
            let path = env.iter().find(|(name, _)| name == "PATH").map_or_else(
                || b"/usr/local/bin:/usr/bin:/bin".to_vec(),
                |(_, value)| value.as_bytes().to_vec(),
            );
            path.split(|byte| *byte == b':')
                .map(|dir| {
                    let dir = if dir.is_empty() { b".".as_slice() } else { dir };
                    c_string(&[dir, b"/", program].concat())
                })
                .collect::<io::Result<_>>()?
        };
        let env: Vec<CString> = env
            .iter()
            .map(|(name, value)| c_string(&[name.as_bytes(), b"=", value.as_bytes()].concat()))
            .collect::<io::Result<_>>()?;
        let argv = spawn.argv.clone();
        let shell = c_string(b"/bin/sh")?;
        let mut plan = Plan {
            candidates,
            argv,
            argv_pointers: Vec::new(),
            shell_argv: Vec::new(),
            shell,
            env,
            env_pointers: Vec::new(),
            cwd: spawn.cwd.clone(),
            // SAFETY: sigemptyset initialises the set it is given.
            empty_mask: unsafe {
                let mut mask = std::mem::zeroed();
                libc::sigemptyset(&mut mask);
                mask
            },
        };
        // The pointers go into the strings' heap buffers, which moving `plan` keeps.
        plan.argv_pointers = null_terminated(&plan.argv);
        plan.env_pointers = null_terminated(&plan.env);
        plan.shell_argv = plan
            .candidates
            .iter()
            .map(|candidate| {
                let mut pointers = vec![plan.shell.as_ptr(), candidate.as_ptr()];
                pointers.extend(plan.argv.iter().skip(1).map(|argument| argument.as_ptr()));
                pointers.push(std::ptr::null());
                pointers
            })
            .collect();
        Ok(plan)
    }
}

fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|string| string.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

struct ChildFds {
    /// What becomes its standard input, output and error (inherited when None).
    stdio: [Option<RawFd>; 3],
    report: RawFd,
}

struct ChildSettings {
    new_session: bool,
    death_signal: Option<libc::c_int>,
    close_from: Option<u32>,
}

/// The child's side: set up, exec, or report the errno and exit 127.
///
/// # Safety
/// Only in the child of a fork or clone (no other thread exists there), with every
/// pointer of `plan` valid.
unsafe fn run_child(
    plan: &Plan,
    fds: &ChildFds,
    settings: &ChildSettings,
    migrate: Option<RawFd>,
) -> ! {
    // SAFETY: each call below is async-signal-safe and works on this process's own
    // descriptors, signal state and memory prepared before the fork.
    unsafe {
        let fail = |errno: i32| -> ! {
            let bytes = errno.to_ne_bytes();
            libc::write(fds.report, bytes.as_ptr().cast(), bytes.len());
            libc::_exit(127)
        };
        let errno = || *libc::__errno_location();
        libc::write(fds.report, b"+".as_ptr().cast(), 1);
        if let Some(procs) = migrate {
            // Best effort: the session and the token still identify the process.
            libc::write(procs, b"0".as_ptr().cast(), 1);
        }
        // As the standard library does: nothing blocked, SIGPIPE back to its default
        // (Rust ignores it in its own processes).
        libc::sigprocmask(libc::SIG_SETMASK, &plan.empty_mask, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        for (target, source) in fds.stdio.iter().enumerate() {
            let (Some(source), target) = (*source, target as RawFd) else {
                continue;
            };
            let done = if source == target {
                libc::fcntl(target, libc::F_SETFD, 0)
            } else {
                libc::dup2(source, target)
            };
            if done < 0 {
                fail(errno());
            }
        }
        if let Some(cwd) = &plan.cwd
            && libc::chdir(cwd.as_ptr()) < 0
        {
            fail(errno());
        }
        if settings.new_session && libc::setsid() < 0 {
            fail(errno());
        }
        if let Some(signal) = settings.death_signal
            && libc::prctl(libc::PR_SET_PDEATHSIG, signal) != 0
        {
            fail(errno());
        }
        if let Some(first) = settings.close_from {
            crate::supervisor::close_inherited_on_exec(first);
        }
        // The lookup of `execvp`: on to the next directory when the file is not there,
        // EACCES only when no directory had a program to run.
        let mut denied = false;
        let mut last = libc::ENOENT;
        for (index, candidate) in plan.candidates.iter().enumerate() {
            libc::execve(
                candidate.as_ptr(),
                plan.argv_pointers.as_ptr(),
                plan.env_pointers.as_ptr(),
            );
            last = errno();
            match last {
                libc::ENOEXEC => {
                    libc::execve(
                        plan.shell.as_ptr(),
                        plan.shell_argv[index].as_ptr(),
                        plan.env_pointers.as_ptr(),
                    );
                    fail(errno());
                }
                libc::EACCES => denied = true,
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
                _ => fail(last),
            }
        }
        fail(if denied { libc::EACCES } else { last })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn output_of(spawn: Spawn) -> (Child, String) {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let copy = write.try_clone().unwrap();
        let mut child = spawn.stdout(write).stderr(copy).spawn().unwrap();
        child.wait();
        let mut text = String::new();
        std::fs::File::from(read).read_to_string(&mut text).unwrap();
        (child, text)
    }

    #[test]
    fn runs_a_program_from_path_with_its_arguments_environment_and_directory() {
        let dir = tempfile::tempdir().unwrap();
        let spawn = Spawn::new(&["sh", "-c", "echo \"$1 $GREETING\"; pwd", "sh", "hello"])
            .unwrap()
            .env("GREETING", "world")
            .current_dir(dir.path())
            .unwrap()
            .stdin_null()
            .unwrap();
        let (_, text) = output_of(spawn);
        let canonical = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(text, format!("hello world\n{}\n", canonical.display()));
    }

    #[test]
    fn a_missing_program_or_directory_is_an_error_with_its_errno() {
        let missing = Spawn::new(&["berth-no-such-program"]).unwrap().spawn();
        assert_eq!(missing.unwrap_err().raw_os_error(), Some(libc::ENOENT));
        let directory = Spawn::new(&["true"])
            .unwrap()
            .current_dir(Path::new("/nonexistent/berth"))
            .unwrap()
            .spawn();
        assert_eq!(directory.unwrap_err().raw_os_error(), Some(libc::ENOENT));
        let dir = tempfile::tempdir().unwrap();
        let not_executable = dir.path().join("script");
        std::fs::write(&not_executable, "echo hi\n").unwrap();
        let denied = Spawn::new(&[&not_executable]).unwrap().spawn();
        assert_eq!(denied.unwrap_err().raw_os_error(), Some(libc::EACCES));
    }

    #[test]
    fn a_script_without_a_shebang_runs_in_the_shell() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("script");
        std::fs::write(&script, "echo \"from the shell: $1\"\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let (_, text) = output_of(Spawn::new(&[script.as_os_str(), OsStr::new("x")]).unwrap());
        assert_eq!(text, "from the shell: x\n");
    }

    #[test]
    fn a_new_session_is_led_by_the_program() {
        // The sixth field of /proc/PID/stat is the session.
        let (child, text) = output_of(
            Spawn::new(&["sh", "-c", "echo $$; cut -d ' ' -f 6 /proc/$$/stat"])
                .unwrap()
                .new_session(),
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines, [child.id().to_string(), child.id().to_string()]);
    }

    #[test]
    fn the_program_starts_in_its_cgroup() {
        let Some(cgroup) = Cgroup::instance("spawn-test", &std::env::temp_dir()) else {
            eprintln!("no cgroup v2 here: nothing to check");
            return;
        };
        let leaf = cgroup.service("probe");
        if !leaf.create() {
            eprintln!("cannot create a cgroup here: nothing to check");
            return;
        }
        let (_, text) = output_of(
            Spawn::new(&["cat", "/proc/self/cgroup"])
                .unwrap()
                .cgroup(Some(&leaf)),
        );
        assert!(
            text.lines()
                .any(|line| line.starts_with("0::") && line.ends_with(leaf.path())),
            "{text}"
        );
        // Once killed, the kernel kills what is created in it (6.18): started anyway.
        leaf.kill_all();
        let (_, text) = output_of(Spawn::new(&["echo", "alive"]).unwrap().cgroup(Some(&leaf)));
        assert_eq!(text, "alive\n");
        leaf.remove();
        cgroup.remove();
    }
}
