//! Which processes belong to a service: those in its cgroup (where the machine allows
//! one), in the session its first process leads, below that process in the tree, or
//! carrying the run token in their environment. None of these depends on a program
//! keeping its title or environment intact (Redis, nginx, gunicorn and PostgreSQL rewrite
//! them), and none of them can match a user's own shell that merely carries the
//! instance's variables.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use crate::cgroup::Cgroup;
use crate::env_vars;
use crate::process::{self, ProcessIdentity};

/// How to find one service's processes.
#[derive(Debug, Clone)]
pub struct ServiceScope {
    /// The service's cgroup, when it exists: then it alone decides membership.
    pub cgroup: Option<Cgroup>,
    /// The service's first process, the leader of its own session and process group.
    pub leader: Option<ProcessIdentity>,
    /// The run token of the supervisor that started it (empty for none).
    pub token: String,
    /// Processes the service left in no session of its own: a daemon that forked away,
    /// called `setsid` and rewrote its environment (nginx with `daemon on`), attributed
    /// to it when its leader exited. Each counts with its session, group and tree.
    pub adopted: Vec<ProcessIdentity>,
}

impl ServiceScope {
    /// A scope whose cgroup is used only if it exists.
    pub fn new(cgroup: Option<Cgroup>, leader: Option<ProcessIdentity>, token: &str) -> Self {
        ServiceScope {
            cgroup: cgroup.filter(Cgroup::exists),
            leader,
            token: token.to_string(),
            adopted: Vec::new(),
        }
    }

    /// Takes `orphans` (see `adopted`) as the service's own too; a cgroup, where there is
    /// one, still decides alone.
    pub fn adopt(&mut self, orphans: Vec<ProcessIdentity>) {
        for orphan in orphans {
            if !self.adopted.contains(&orphan) && Some(orphan) != self.leader {
                self.adopted.push(orphan);
            }
        }
    }

    /// Whether `pid` is one of the service's processes.
    pub fn contains(&self, pid: u32) -> bool {
        if let Some(cgroup) = &self.cgroup {
            return cgroup.contains(pid);
        }
        self.leader
            .into_iter()
            .chain(self.adopted.iter().copied())
            .any(|root| by_session_or_tree(root, pid))
            || self.by_token(pid)
    }

    fn by_token(&self, pid: u32) -> bool {
        !self.token.is_empty() && process::has_env(pid, env_vars::BERTH_RUN_TOKEN, &self.token)
    }

    /// The service's live processes (zombies excluded), leader first when it runs.
    pub fn members(&self) -> Vec<u32> {
        let own = std::process::id();
        let mut pids: Vec<u32> = match &self.cgroup {
            Some(cgroup) => cgroup.procs(),
            None => process::all_pids()
                .into_iter()
                .filter(|pid| *pid != own && self.contains(*pid))
                .collect(),
        };
        pids.retain(|pid| *pid != own && process::is_running(*pid));
        if let Some(leader) = self.leader
            && let Some(position) = pids.iter().position(|pid| *pid == leader.pid)
        {
            pids.swap(0, position);
        }
        pids
    }

    /// The member that stands for the service once its first process is gone (a daemon
    /// that forked away): the oldest one left.
    pub fn main_member(&self) -> Option<ProcessIdentity> {
        self.members()
            .into_iter()
            .filter_map(ProcessIdentity::of)
            .min_by_key(|identity| (identity.start_time, identity.pid))
    }

    /// Sends `signal` to every member, and to the leader's process group.
    pub fn signal(&self, signal: Signal) -> usize {
        let mut signalled = 0;
        if let Some(leader) = self.leader
            && leader.is_alive()
            && killpg(Pid::from_raw(leader.pid as i32), signal).is_ok()
        {
            signalled += 1;
        }
        for pid in self.members() {
            if kill(Pid::from_raw(pid as i32), signal).is_ok() {
                signalled += 1;
            }
        }
        signalled
    }

    /// Stops the service: `signal` to every member, up to `grace` for all of them to
    /// exit, then SIGKILL to whatever is left (the whole cgroup when there is one).
    /// `leader_exited` tells whether the leader has exited (a zombie not yet reaped by
    /// the caller counts as exited). Returns how many processes were signalled.
    pub fn stop(&self, signal: Signal, grace: Duration) -> usize {
        let signalled = self.signal(signal);
        let deadline = Instant::now() + grace;
        while !self.members().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.kill_all();
        signalled
    }

    /// SIGKILLs every member, repeatedly, until none is left (at most a few rounds: a
    /// process may fork between a scan and a kill).
    pub fn kill_all(&self) {
        if let Some(cgroup) = &self.cgroup {
            cgroup.kill_all();
        }
        for _ in 0..10 {
            if self.signal(Signal::SIGKILL) == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Parses a signal name as configured: `SIGINT`, `INT`, `sigint` or a number.
pub fn parse_signal(text: &str) -> Option<Signal> {
    let upper = text.trim().to_ascii_uppercase();
    if let Ok(number) = upper.parse::<i32>() {
        return Signal::try_from(number).ok();
    }
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse().ok()
}

/// Whether `pid` is `root`, in the session or process group `root` started, or below it
/// in the tree.
fn by_session_or_tree(root: ProcessIdentity, pid: u32) -> bool {
    if pid == root.pid {
        return root.is_alive();
    }
    // A session or group ID stays reserved by the kernel while any process is in it, so a
    // match is the root's session even after the root itself exited.
    if process::stat(pid)
        .is_some_and(|stat| stat.session == root.pid || stat.process_group == root.pid)
    {
        return true;
    }
    root.is_alive() && process::descends_from(pid, root.pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_signal_names_as_configured() {
        assert_eq!(parse_signal("SIGINT"), Some(Signal::SIGINT));
        assert_eq!(parse_signal("int"), Some(Signal::SIGINT));
        assert_eq!(parse_signal("QUIT"), Some(Signal::SIGQUIT));
        assert_eq!(parse_signal("15"), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("SIGNOPE"), None);
        assert_eq!(parse_signal(""), None);
    }

    #[test]
    fn a_process_in_the_leaders_group_is_a_member_and_one_outside_is_not() {
        use std::os::unix::process::CommandExt;
        let mut leader = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let mut outsider = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let scope = ServiceScope::new(None, ProcessIdentity::of(leader.id()), "");
        assert!(scope.contains(leader.id()));
        assert!(!scope.contains(outsider.id()));
        assert_eq!(scope.members(), vec![leader.id()]);
        scope.stop(Signal::SIGTERM, Duration::from_secs(5));
        let _ = leader.wait();
        assert!(scope.members().is_empty());
        assert!(
            process::is_running(outsider.id()),
            "the outsider is untouched"
        );
        let _ = outsider.kill();
        let _ = outsider.wait();
    }

    #[test]
    fn an_adopted_process_in_a_session_of_its_own_is_a_member_with_its_session() {
        use std::os::unix::process::CommandExt;
        let mut leader = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        // SAFETY: setsid is async-signal-safe.
        let mut daemon = unsafe {
            std::process::Command::new("sh")
                .args(["-c", "sleep 30 & wait"])
                .pre_exec(|| {
                    libc::setsid();
                    Ok(())
                })
                .spawn()
                .unwrap()
        };
        let mut scope = ServiceScope::new(None, ProcessIdentity::of(leader.id()), "");
        assert!(!scope.contains(daemon.id()), "not a member before adoption");
        scope.adopt(vec![ProcessIdentity::of(daemon.id()).unwrap()]);
        assert!(scope.contains(daemon.id()));
        let deadline = Instant::now() + Duration::from_secs(5);
        while scope.members().len() < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(scope.members().len(), 3, "leader, daemon and its child");
        scope.stop(Signal::SIGTERM, Duration::from_secs(5));
        let _ = leader.wait();
        let _ = daemon.wait();
        assert!(scope.members().is_empty());
    }
}
