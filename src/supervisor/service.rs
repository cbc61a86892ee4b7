//! One service's life in the supervisor: wait for dependencies, setup, start, readiness,
//! restarts with backoff and a burst limit, and a clean stop of its process group.

use std::cell::Cell;
use std::collections::VecDeque;
use std::process::Child;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime};

use super::children;
use super::readiness::{Probe, Readiness};
use super::shared::Shared;
use super::unix::{ExitInfo, peek_exit, spawn_process};
use super::{BACKOFF_INITIAL, BACKOFF_MAX, BURST_LIMIT, BURST_WINDOW, LOG_FLUSH_WAIT};
use crate::cgroup::Cgroup;
use crate::logs::{self, LogCursor, LogHandle, LogSink};
use crate::membership::ServiceScope;
use crate::process::ProcessIdentity;
use crate::state::{ProcessSpec, RestartPolicy, ServiceState};

/// What the supervisor's main thread asks of a service thread.
pub enum Command {
    /// Become active (for `up SERVICE…` on a running instance).
    Start,
    Restart,
    /// Stop the process group and end the thread; the sender is dropped when done.
    Stop(Sender<()>),
}

/// Poll interval while something is about to change (starting, waiting).
const FAST_TICK: Duration = Duration::from_millis(5);
/// Poll interval while the service is settled (ready, failed, inactive).
const SLOW_TICK: Duration = Duration::from_millis(100);

pub struct ServiceThread {
    pub name: String,
    pub shared: Arc<Shared>,
    pub commands: Receiver<Command>,
    pub token: String,
    pub setup_marker: std::path::PathBuf,
    /// The service's cgroup leaf, when the instance has a cgroup.
    pub cgroup: Option<Cgroup>,
    pub logs: LogSink,
    /// How many times the process was started by this supervisor (for the separator
    /// written into the log at each start).
    pub runs: Cell<u32>,
}

/// How waiting ended.
enum Interrupt {
    Stop(Sender<()>),
    Restart,
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

impl ServiceThread {
    pub fn run(self) {
        let mut interrupt = None;
        loop {
            match interrupt.take() {
                Some(Interrupt::Stop(done)) => {
                    self.set_state(ServiceState::Stopped, None);
                    drop(done);
                    return;
                }
                Some(Interrupt::Restart) => {
                    self.shared.update_service(&self.name, |record| {
                        record.active = true;
                        record.restarts = 0;
                    });
                }
                None => {}
            }
            interrupt = Some(self.lifecycle());
        }
    }

    fn spec(&self) -> Option<ProcessSpec> {
        self.shared
            .service(&self.name)
            .and_then(|record| record.process().cloned())
    }

    fn log(&self, spec: &ProcessSpec) -> LogHandle {
        self.logs.open(&spec.log, spec.log_limits)
    }

    /// Starts `argv` with its output going into the service's log.
    fn spawn(
        &self,
        argv: &[String],
        spec: &ProcessSpec,
        log: &LogHandle,
    ) -> std::io::Result<Child> {
        spawn_process(argv, spec, &self.token, self.cgroup.as_ref(), log.attach()?)
    }

    fn set_state(&self, state: ServiceState, message: Option<String>) {
        self.shared.update_service(&self.name, |record| {
            record.state = state;
            record.message = message;
        });
    }

    /// Waits for a command for up to `timeout`; `Start` only marks the service active.
    fn poll_command(&self, timeout: Duration) -> Option<Interrupt> {
        match self.commands.recv_timeout(timeout) {
            Ok(Command::Stop(done)) => Some(Interrupt::Stop(done)),
            Ok(Command::Restart) => Some(Interrupt::Restart),
            Ok(Command::Start) => {
                self.shared.update_service(&self.name, |record| {
                    if !record.active {
                        record.active = true;
                        record.state = ServiceState::Waiting;
                    }
                });
                None
            }
            Err(RecvTimeoutError::Timeout) => None,
            // The main thread is gone: behave as if asked to stop.
            Err(RecvTimeoutError::Disconnected) => {
                Some(Interrupt::Stop(std::sync::mpsc::channel().0))
            }
        }
    }

    /// Runs the service until something interrupts it; returns what did.
    fn lifecycle(&self) -> Interrupt {
        if let Some(interrupt) = self.wait_until_startable() {
            return interrupt;
        }
        let Some(spec) = self.spec() else {
            return self.idle(
                ServiceState::Failed,
                Some("service missing from instance.json".to_string()),
            );
        };
        if let Some(setup) = &spec.setup
            && !self.setup_marker.exists()
        {
            self.set_state(ServiceState::Setup, None);
            match self.run_to_completion(setup, &spec) {
                Err(interrupt) => return interrupt,
                Ok(exit) if exit.success() => {
                    if let Some(dir) = self.setup_marker.parent() {
                        let _ = fs_err::create_dir_all(dir);
                    }
                    let _ = crate::state::write_atomic(&self.setup_marker, b"done\n");
                }
                Ok(exit) => {
                    return self.idle(
                        ServiceState::Failed,
                        Some(format!("setup {}", exit.describe())),
                    );
                }
            }
        }
        let mut recent_restarts: VecDeque<Instant> = VecDeque::new();
        loop {
            let exit = match self.run_once(&spec) {
                Ok(exit) => exit,
                Err(interrupt) => return interrupt,
            };
            let restart = match spec.restart {
                RestartPolicy::Always => true,
                RestartPolicy::OnFailure => !exit.success(),
                RestartPolicy::Never => false,
            };
            self.shared.update_service(&self.name, |record| {
                record.pid = None;
                record.exit_code = exit.code;
            });
            if !restart {
                let state = if exit.success() {
                    ServiceState::Exited
                } else {
                    ServiceState::Failed
                };
                return self.idle(state, Some(exit.describe()));
            }
            while recent_restarts
                .front()
                .is_some_and(|at| at.elapsed() > BURST_WINDOW)
            {
                recent_restarts.pop_front();
            }
            if recent_restarts.len() >= BURST_LIMIT {
                let message = format!(
                    "{}; gave up after {BURST_LIMIT} restarts within {}s",
                    exit.describe(),
                    BURST_WINDOW.as_secs()
                );
                return self.idle(ServiceState::Failed, Some(message));
            }
            let backoff =
                (BACKOFF_INITIAL * 2u32.pow(recent_restarts.len() as u32)).min(BACKOFF_MAX);
            recent_restarts.push_back(Instant::now());
            self.set_state(
                ServiceState::Backoff,
                Some(format!(
                    "{}; restarting in {} ms",
                    exit.describe(),
                    backoff.as_millis()
                )),
            );
            if let Some(interrupt) = self.poll_command(backoff) {
                return interrupt;
            }
            self.shared
                .update_service(&self.name, |record| record.restarts += 1);
        }
    }

    /// Settles in a final state until told to restart or stop.
    fn idle(&self, state: ServiceState, message: Option<String>) -> Interrupt {
        self.set_state(state, message);
        loop {
            if let Some(interrupt) = self.poll_command(SLOW_TICK) {
                return interrupt;
            }
        }
    }

    /// Waits while inactive or while a dependency is not up. A failed dependency fails
    /// this service too (it would never start).
    fn wait_until_startable(&self) -> Option<Interrupt> {
        loop {
            let record = self.shared.service(&self.name)?;
            if record.active {
                let dependencies = self.shared.dependency_states(&self.name);
                if let Some((failed, _, _)) = dependencies
                    .iter()
                    .find(|(_, state, _)| *state == ServiceState::Failed)
                {
                    self.set_state(
                        ServiceState::Waiting,
                        Some(format!("dependency `{failed}` failed")),
                    );
                } else if dependencies.iter().all(|(_, _, done)| *done) {
                    return None;
                } else if record.state != ServiceState::Waiting {
                    self.set_state(ServiceState::Waiting, None);
                }
            }
            let tick = if record.active { FAST_TICK } else { SLOW_TICK };
            if let Some(interrupt) = self.poll_command(tick) {
                return Some(interrupt);
            }
        }
    }

    /// The scope of a process this thread started as the service's leader.
    fn scope(&self, leader: u32) -> ServiceScope {
        ServiceScope::new(
            self.cgroup.clone(),
            ProcessIdentity::of(leader),
            &self.token,
        )
    }

    /// Runs a command (setup) to completion in the service's environment; whatever it
    /// leaves running is killed.
    fn run_to_completion(
        &self,
        argv: &[String],
        spec: &ProcessSpec,
    ) -> Result<ExitInfo, Interrupt> {
        let log = self.log(spec);
        let _ = log.remark(&logs::setup_started(SystemTime::now()));
        let mut child = match self.spawn(argv, spec, &log) {
            Ok(child) => child,
            Err(error) => return Ok(self.spawn_failure(&log, &error)),
        };
        let scope = self.scope(child.id());
        loop {
            if let Some(exit) = peek_exit(&child) {
                scope.kill_all();
                children::wait_leader(&mut child);
                log.flush(LOG_FLUSH_WAIT);
                return Ok(exit);
            }
            if let Some(interrupt) = self.poll_command(FAST_TICK) {
                stop(&scope, Some(&mut child), spec);
                log.flush(LOG_FLUSH_WAIT);
                return Err(interrupt);
            }
        }
    }

    fn spawn_failure(&self, log: &LogHandle, error: &std::io::Error) -> ExitInfo {
        let _ = log.remark(&format!("berth: {error}"));
        self.set_state(ServiceState::Failed, Some(error.to_string()));
        ExitInfo {
            code: Some(127),
            signal: None,
        }
    }

    /// Starts the process, waits for readiness, then watches it until it exits. A first
    /// process that exits 0 while others of the service keep running has daemonized:
    /// the service then lives as long as they do.
    fn run_once(&self, spec: &ProcessSpec) -> Result<ExitInfo, Interrupt> {
        let log = self.log(spec);
        let run = self.runs.get() + 1;
        self.runs.set(run);
        let _ = log.remark(&logs::run_started(run, SystemTime::now()));
        // A `log` readiness check looks only at what this run writes.
        let log_start = LogCursor::at_end(&spec.log);
        let child = match self.spawn(&spec.argv, spec, &log) {
            Ok(child) => child,
            Err(error) => return Ok(self.spawn_failure(&log, &error)),
        };
        let mut scope = self.scope(child.id());
        self.shared.update_service(&self.name, |record| {
            record.state = ServiceState::Starting;
            record.pid = scope.leader;
            record.started_at = Some(now());
            record.ready_at = None;
            record.exit_code = None;
            record.message = None;
        });
        let mut leader = Some(child);
        let mut readiness = Readiness::new(spec, log_start);
        let mut ready = false;
        let mut foreign_reported = false;
        loop {
            if let Some(child) = leader.as_mut()
                && let Some(exit) = peek_exit(child)
            {
                // Without a cgroup, a daemon that left its session is found only so.
                scope.adopt(children::adopted_since(scope.leader));
                // A one-shot task is done when its process exits: what it left behind
                // is killed below, never taken for a daemon.
                if exit.success()
                    && spec.restart != RestartPolicy::Never
                    && let Some(main) = scope.main_member()
                {
                    children::wait_leader(child);
                    leader = None;
                    self.shared.update_service(&self.name, |record| {
                        record.pid = Some(main);
                        record.message = Some(format!("daemonized: runs as PID {}", main.pid));
                    });
                } else {
                    scope.kill_all();
                    children::wait_leader(child);
                    // Its last lines are in the log before anyone is told it exited.
                    log.flush(LOG_FLUSH_WAIT);
                    return Ok(exit);
                }
            }
            if leader.is_none() && scope.members().is_empty() {
                log.flush(LOG_FLUSH_WAIT);
                return Ok(ExitInfo {
                    code: None,
                    signal: None,
                });
            }
            // A one-shot task (`restart = "never"`) is done when it exits 0, never
            // merely ready: dependants and `up` wait for its outcome.
            if !ready && spec.restart != RestartPolicy::Never {
                match readiness.probe(spec, &scope) {
                    Probe::Ready => {
                        ready = true;
                        self.shared.update_service(&self.name, |record| {
                            record.state = ServiceState::Ready;
                            record.ready_at = Some(now());
                            if leader.is_some() {
                                record.message = None;
                            }
                        });
                    }
                    Probe::Foreign(message) if !foreign_reported => {
                        foreign_reported = true;
                        self.set_state(ServiceState::Starting, Some(message));
                    }
                    Probe::Foreign(_) | Probe::NotYet => {}
                }
            }
            let tick = if ready { SLOW_TICK } else { FAST_TICK };
            if let Some(interrupt) = self.poll_command(tick) {
                self.set_state(ServiceState::Stopping, None);
                stop(&scope, leader.as_mut(), spec);
                // Its last lines land before a restart's separator.
                log.flush(LOG_FLUSH_WAIT);
                self.shared.update_service(&self.name, |record| {
                    record.pid = None;
                    record.state = ServiceState::Stopped;
                });
                return Err(interrupt);
            }
        }
    }
}

/// Stops every process of the service: its stop signal to all of them, the grace
/// period, then SIGKILL to what is left; then reaps the leader.
fn stop(scope: &ServiceScope, leader: Option<&mut Child>, spec: &ProcessSpec) {
    scope.stop(
        spec.stop_signal(),
        Duration::from_millis(spec.stop_grace_ms),
    );
    if let Some(child) = leader {
        children::wait_leader(child);
    }
}
