//! Stopping an instance's processes from outside the supervisor: after the supervisor
//! died, or as a last sweep after it stopped.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::env_vars;
use crate::process::{self, ProcessIdentity};
use crate::state::{InstanceFile, InstanceState, ServiceState};

/// Stops every process recorded for the instance (each group: SIGTERM, grace, SIGKILL,
/// only while the PID still has its recorded start time), then kills any process that
/// still carries the instance's run token, such as a grandchild that left its group.
/// Returns the number of processes that had to be signalled.
pub fn stop_processes(file: &InstanceFile) -> usize {
    let mut signalled = 0;
    let leaders: Vec<(ProcessIdentity, u64)> = file
        .services
        .values()
        .filter_map(|record| Some((record.pid?, record.stop_grace_ms())))
        .filter(|(identity, _)| identity.is_alive())
        .collect();
    for (identity, _) in &leaders {
        if identity.signal_group(Signal::SIGTERM) {
            signalled += 1;
        }
    }
    let grace = leaders.iter().map(|(_, grace)| *grace).max().unwrap_or(0);
    let deadline = Instant::now() + Duration::from_millis(grace);
    while leaders.iter().any(|(identity, _)| identity.is_alive()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    for (identity, _) in &leaders {
        identity.signal_group(Signal::SIGKILL);
    }
    signalled + kill_by_token(&file.token)
}

/// SIGKILLs every process whose environment carries the run token. The token is random
/// per instance start, so a match can only be a process this instance started.
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
                && identity.signal(Signal::SIGKILL)
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
