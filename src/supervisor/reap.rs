//! Stopping an instance's processes from outside the supervisor: after the supervisor
//! died, or as a last sweep after it stopped.

use std::time::{Duration, Instant};

use crate::cgroup::Cgroup;
use crate::env_vars;
use crate::membership::ServiceScope;
use crate::process::{self, ProcessIdentity};
use crate::state::{InstanceFile, InstanceState, ServiceState};

/// The instance's cgroup, when it has one.
pub fn instance_cgroup(file: &InstanceFile) -> Option<Cgroup> {
    Cgroup::instance(&file.name, &file.paths().dir).filter(Cgroup::exists)
}

/// Stops every process of the instance's services: each service's stop signal to all
/// its processes (its cgroup where there is one; else its session, tree and run
/// token), the longest grace period, then SIGKILL to what is left. The supervisor's own
/// processes are not touched (it calls this itself as a last sweep). Returns the number
/// of processes that had to be signalled.
pub fn stop_processes(file: &InstanceFile) -> usize {
    stop_processes_as(file, file.pids_trusted())
}

/// [`stop_processes`] for the supervisor's own view of the instance, which it trusts.
pub fn stop_own_processes(file: &InstanceFile) -> usize {
    stop_processes_as(file, true)
}

/// `trusted`: whether the recorded PIDs and token may find processes (see
/// [`InstanceFile::pids_trusted`]).
fn stop_processes_as(file: &InstanceFile, trusted: bool) -> usize {
    let cgroup = instance_cgroup(file);
    // Without a cgroup, recorded PIDs find the processes: only those berth wrote.
    let scopes: Vec<(ServiceScope, nix::sys::signal::Signal, u64)> = file
        .services
        .iter()
        .filter_map(|(name, record)| {
            let spec = record.process()?;
            let scope = match &cgroup {
                Some(cgroup) => ServiceScope::new(Some(cgroup.service(name)), None, ""),
                None => ServiceScope::new(None, record.pid.filter(|_| trusted), ""),
            };
            Some((scope, spec.stop_signal(), spec.stop_grace_ms))
        })
        .collect();
    let mut signalled = 0;
    for (scope, signal, _) in &scopes {
        signalled += scope.signal(*signal);
    }
    let grace = scopes.iter().map(|(_, _, grace)| *grace).max().unwrap_or(0);
    let deadline = Instant::now() + Duration::from_millis(grace);
    while scopes
        .iter()
        .any(|(scope, _, _)| !scope.members().is_empty())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    for (scope, _, _) in &scopes {
        scope.kill_all();
    }
    // The token, too, counts only from a file berth sealed.
    if cgroup.is_none() && trusted {
        signalled += kill_by_token(&file.token);
    }
    signalled
}

/// Kills whatever is left in the instance's cgroup (the supervisor's helpers, once the
/// supervisor is gone) and removes the cgroup.
pub fn remove_cgroup(file: &InstanceFile) {
    if let Some(cgroup) = instance_cgroup(file) {
        cgroup.kill_all();
        cgroup.remove();
    }
}

/// SIGKILLs every process whose environment carries the run token: on a machine without
/// cgroups, the last resort for a process that left its service's session. The token is
/// random per instance start, so a match can only be a process this instance started.
fn kill_by_token(token: &str) -> usize {
    if token.is_empty() {
        return 0;
    }
    let mut killed = 0;
    // Repeat: a process may fork between the scan and the kill.
    for _ in 0..5 {
        let pids = process::pids_with_env(env_vars::BERTH_RUN_TOKEN, token);
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            if let Some(identity) = ProcessIdentity::of(pid)
                && identity.signal(nix::sys::signal::Signal::SIGKILL)
            {
                killed += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    killed
}

/// If the instance's supervisor died without stopping its services, stop them now and
/// mark the instance crashed. Returns true when something was reaped. The caller holds
/// the instance's operation lock.
pub fn reap_orphans(file: &mut InstanceFile) -> bool {
    if !file.is_orphaned() {
        return false;
    }
    stop_processes(file);
    remove_cgroup(file);
    file.state = InstanceState::Crashed;
    file.supervisor = None;
    // Unlike a clean stop, a service that had already failed or finished keeps that
    // state, so `status` still shows what happened before the supervisor died.
    for record in file.services.values_mut() {
        if record.pid.take().is_some()
            || !matches!(
                record.state,
                ServiceState::Inactive | ServiceState::Failed | ServiceState::Exited
            )
        {
            record.state = ServiceState::Stopped;
            record.message = Some("stopped after the supervisor died".to_string());
        }
    }
    true
}
