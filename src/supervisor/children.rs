//! The supervisor as a child subreaper: a daemon that forks away from its service (nginx
//! with `daemon on`, a double-forking script) is reparented to the supervisor instead of
//! init, so it stays in reach, and its zombie is reaped here.
//!
//! Reaping must never take the exit status of a process a thread is waiting for. Those
//! are the service processes (leaders of their own sessions, registered here while they
//! are spawned, under the same lock the reaper takes) and the supervisor's helper
//! commands (Compose, `docker logs`, readiness commands), which stay in the supervisor's
//! session. An adopted orphan is neither: it is in a service's session, or in a session
//! of its own that is not a registered leader's.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};

use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::{Pid, getsid};

use crate::process::{self, ProcessIdentity};
use crate::spawn::{Child, Spawn};

static LEADERS: Mutex<Option<HashSet<u32>>> = Mutex::new(None);

fn leaders() -> MutexGuard<'static, Option<HashSet<u32>>> {
    // The set is only ever inserted into or removed from: still valid after a panic.
    LEADERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Makes this process the subreaper of its descendants.
pub fn become_subreaper() -> std::io::Result<()> {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER only changes this process's attribute.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Spawns a service's process (one that starts its own session) and registers it, so
/// the reaper leaves its exit status to the thread that waits for it.
pub fn spawn_leader(spawn: Spawn) -> std::io::Result<Child> {
    let mut set = leaders();
    let child = spawn.spawn()?;
    set.get_or_insert_with(HashSet::new).insert(child.id());
    Ok(child)
}

/// Reaps a registered leader (killing nothing) and forgets it.
pub fn wait_leader(child: &mut Child) {
    child.wait();
    if let Some(set) = leaders().as_mut() {
        set.remove(&child.id());
    }
}

/// Reaps every adopted orphan that has exited. Returns how many.
pub fn reap_adopted() -> usize {
    let set = leaders();
    let own_session = getsid(None).map(|pid| pid.as_raw() as u32).ok();
    let mut reaped = 0;
    // Registered leaders are most of the children: skipped before reading anything.
    let adopted = process::own_children()
        .into_iter()
        .filter(|pid| !set.as_ref().is_some_and(|set| set.contains(pid)));
    for pid in adopted {
        let Some(stat) = process::stat(pid) else {
            continue;
        };
        if stat.state == 'Z'
            && Some(stat.session) != own_session
            && waitpid(Pid::from_raw(pid as i32), Some(WaitPidFlag::WNOHANG)).is_ok()
        {
            reaped += 1;
        }
    }
    reaped
}

/// The orphans adopted by the supervisor (its children that are neither registered
/// leaders nor its helpers, in its own session) that started no earlier than `leader`,
/// alive, and not in a running leader's session other than `leader`'s (another
/// service's). Without a cgroup, these are what a service whose leader just exited left
/// in no session of its own: a daemon that called `setsid` and rewrote its environment.
pub fn adopted_since(leader: Option<ProcessIdentity>) -> Vec<ProcessIdentity> {
    let Some(leader) = leader else {
        return Vec::new();
    };
    let set = leaders();
    let own_session = getsid(None).map(|pid| pid.as_raw() as u32).ok();
    let other_leader = |session: u32| {
        session != leader.pid && set.as_ref().is_some_and(|set| set.contains(&session))
    };
    process::own_children()
        .into_iter()
        .filter(|pid| *pid != leader.pid && !set.as_ref().is_some_and(|set| set.contains(pid)))
        .filter_map(|pid| {
            let stat = process::stat(pid)?;
            let adopted = stat.state != 'Z'
                && Some(stat.session) != own_session
                && !other_leader(stat.session)
                && stat.start_time >= leader.start_time;
            adopted.then_some(ProcessIdentity {
                pid,
                start_time: stat.start_time,
            })
        })
        .collect()
}
