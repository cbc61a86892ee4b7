//! One service's life in the supervisor: wait for dependencies, setup, start, readiness,
//! restarts with backoff and a burst limit, and a clean stop of its process group.
//!
//! Each service is a task on the supervisor's one event loop, not a thread: it sleeps
//! until a command comes, its process exits (a pidfd), a dependency changes, or, while
//! it starts, the next readiness probe is due. A settled service costs nothing.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};

use super::children;
use super::readiness::{Probe, Readiness};
use super::shared::Shared;
use super::unix::{ExitInfo, ProcessWatch, Ticker, spawn_process};
use super::{BACKOFF_INITIAL, BACKOFF_MAX, BURST_LIMIT, BURST_WINDOW, LOG_FLUSH_WAIT};
use crate::cgroup::Cgroup;
use crate::logs::{self, LogCursor, LogHandle, LogSink};
use crate::membership::ServiceScope;
use crate::process::ProcessIdentity;
use crate::spawn::Child;
use crate::state::{ProcessSpec, RestartPolicy, ServiceState};

/// What the supervisor's main task asks of a service task.
pub enum Command {
    /// Become active (for `up SERVICE…` on a running instance).
    Start,
    Restart,
    /// Stop the process group and end the task; the sender is dropped when done.
    Stop(oneshot::Sender<()>),
}

/// The wait between readiness probes for the first [`FAST_PROBE_WINDOW`] of a start,
/// when most services become ready (a refused connection costs microseconds, so a
/// service is seen within 1 ms of listening, as by a script polling its port every
/// millisecond); then it doubles up to [`PROBE_TICK_MAX`], so a slow one costs little.
const PROBE_TICK_MIN: Duration = Duration::from_millis(1);
const PROBE_TICK_MAX: Duration = Duration::from_millis(100);
const FAST_PROBE_WINDOW: Duration = Duration::from_secs(1);
/// How often the processes of a daemonized service are counted when the kernel gives
/// no pidfd to wait on.
const DAEMON_TICK: Duration = Duration::from_secs(1);

pub struct ServiceTask {
    pub name: String,
    pub shared: Arc<Shared>,
    pub commands: mpsc::UnboundedReceiver<Command>,
    pub token: String,
    pub setup_marker: std::path::PathBuf,
    /// The service's cgroup leaf, when the instance has a cgroup.
    pub cgroup: Option<Cgroup>,
    pub logs: LogSink,
    /// How many times the process was started by this supervisor (for the separator
    /// written into the log at each start).
    pub runs: u32,
}

/// How waiting ended.
enum Interrupt {
    Stop(oneshot::Sender<()>),
    Restart,
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

impl ServiceTask {
    pub async fn run(mut self) {
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
            interrupt = Some(self.lifecycle().await);
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

    /// Handles one command: `Start` only marks the service active; the others
    /// interrupt what it does.
    fn take(&self, command: Option<Command>) -> Option<Interrupt> {
        match command {
            Some(Command::Stop(done)) => Some(Interrupt::Stop(done)),
            Some(Command::Restart) => Some(Interrupt::Restart),
            Some(Command::Start) => {
                self.shared.update_service(&self.name, |record| {
                    if !record.active {
                        record.active = true;
                        record.state = ServiceState::Waiting;
                    }
                });
                None
            }
            // The main task is gone: behave as if asked to stop.
            None => Some(Interrupt::Stop(oneshot::channel().0)),
        }
    }

    /// Waits for a command for up to `timeout`.
    async fn poll_command(&mut self, timeout: Duration) -> Option<Interrupt> {
        match tokio::time::timeout(timeout, self.commands.recv()).await {
            Ok(command) => self.take(command),
            Err(_) => None,
        }
    }

    /// Runs the service until something interrupts it; returns what did.
    async fn lifecycle(&mut self) -> Interrupt {
        if let Some(interrupt) = self.wait_until_startable().await {
            return interrupt;
        }
        let Some(spec) = self.spec() else {
            return self
                .idle(
                    ServiceState::Failed,
                    Some("service missing from instance.json".to_string()),
                )
                .await;
        };
        if let Some(setup) = &spec.setup
            && !self.setup_marker.exists()
        {
            self.set_state(ServiceState::Setup, None);
            match self.run_to_completion(setup, &spec).await {
                Err(interrupt) => return interrupt,
                Ok(exit) if exit.success() => {
                    if let Some(dir) = self.setup_marker.parent() {
                        let _ = fs_err::create_dir_all(dir);
                    }
                    let _ = crate::state::write_atomic(&self.setup_marker, b"done\n");
                }
                Ok(exit) => {
                    return self
                        .idle(
                            ServiceState::Failed,
                            Some(format!("setup {}", exit.describe())),
                        )
                        .await;
                }
            }
        }
        let mut recent_restarts: VecDeque<Instant> = VecDeque::new();
        loop {
            let exit = match self.run_once(&spec).await {
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
                return self.idle(state, Some(exit.describe())).await;
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
                return self.idle(ServiceState::Failed, Some(message)).await;
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
            if let Some(interrupt) = self.poll_command(backoff).await {
                return interrupt;
            }
            self.shared
                .update_service(&self.name, |record| record.restarts += 1);
        }
    }

    /// Settles in a final state until told to restart or stop.
    async fn idle(&mut self, state: ServiceState, message: Option<String>) -> Interrupt {
        self.set_state(state, message);
        loop {
            let command = self.commands.recv().await;
            if let Some(interrupt) = self.take(command) {
                return interrupt;
            }
        }
    }

    /// Waits while inactive or while a dependency is not up. A failed dependency fails
    /// this service too (it would never start).
    async fn wait_until_startable(&mut self) -> Option<Interrupt> {
        let mut changes = self.shared.dependency_changes(&self.name);
        loop {
            // Marked seen before looking, so a change made while looking rings again.
            changes.borrow_and_update();
            let record = self.shared.service(&self.name)?;
            if record.active {
                let dependencies = self.shared.dependency_states(&self.name);
                if let Some((failed, _, _)) = dependencies
                    .iter()
                    .find(|(_, state, _)| *state == ServiceState::Failed)
                {
                    let message = Some(format!("dependency `{failed}` failed"));
                    if record.state != ServiceState::Waiting || record.message != message {
                        self.set_state(ServiceState::Waiting, message);
                    }
                } else if dependencies.iter().all(|(_, _, done)| *done) {
                    return None;
                } else if record.state != ServiceState::Waiting {
                    self.set_state(ServiceState::Waiting, None);
                }
            }
            tokio::select! {
                command = self.commands.recv() => {
                    if let Some(interrupt) = self.take(command) {
                        return Some(interrupt);
                    }
                }
                // The sender lives as long as the supervisor's shared state.
                _ = changes.changed() => {}
            }
        }
    }

    /// The scope of a process this task started as the service's leader.
    fn scope(&self, leader: u32) -> ServiceScope {
        ServiceScope::new(
            self.cgroup.clone(),
            ProcessIdentity::of(leader),
            &self.token,
        )
    }

    /// Runs a command (setup) to completion in the service's environment; whatever it
    /// leaves running is killed.
    async fn run_to_completion(
        &mut self,
        argv: &[String],
        spec: &ProcessSpec,
    ) -> Result<ExitInfo, Interrupt> {
        let log = self.log(spec);
        let _ = log.remark(&logs::setup_started(SystemTime::now()));
        let mut child = match self.spawn(argv, spec, &log) {
            Ok(child) => child,
            Err(error) => return Ok(self.spawn_failure(&log, &error)),
        };
        let mut scope = self.scope(child.id());
        let watch = ProcessWatch::new(child.id());
        loop {
            tokio::select! {
                exit = watch.exit() => {
                    scope.kill_all();
                    children::wait_leader(&mut child);
                    log.flush(LOG_FLUSH_WAIT);
                    return Ok(exit);
                }
                command = self.commands.recv() => {
                    if let Some(interrupt) = self.take(command) {
                        stop(&mut scope, Some((&mut child, &watch)), spec).await;
                        log.flush(LOG_FLUSH_WAIT);
                        return Err(interrupt);
                    }
                }
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
    async fn run_once(&mut self, spec: &ProcessSpec) -> Result<ExitInfo, Interrupt> {
        let log = self.log(spec);
        self.runs += 1;
        let _ = log.remark(&logs::run_started(self.runs, SystemTime::now()));
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
        let mut watch = ProcessWatch::new(child.id());
        let mut leader = Some(child);
        let mut readiness = Readiness::new(spec, log_start);
        // A one-shot task (`restart = "never"`) is done when it exits 0, never merely
        // ready: dependants and `up` wait for its outcome.
        let mut ready = spec.restart == RestartPolicy::Never;
        let mut foreign_reported = false;
        let mut tick = PROBE_TICK_MIN;
        let probing_since = std::time::Instant::now();
        let ticker = Ticker::new();
        loop {
            // Ticks count from the start of a probe, so a probe's own time (an HTTP
            // exchange) does not stretch them.
            let probe_started = std::time::Instant::now();
            if !ready {
                match readiness.probe(spec, &scope).await {
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
            // Without a pidfd to wait on, a daemon's processes are counted now and then.
            let next_probe = if !ready {
                tick.saturating_sub(probe_started.elapsed())
            } else if leader.is_none() && !watch.has_pidfd() {
                DAEMON_TICK
            } else {
                Duration::MAX
            };
            tokio::select! {
                // An exit is handled before a command that came at the same time, so a
                // stop knows of what the exit made the service's.
                biased;
                exit = watch.exit(), if leader.is_some() => {
                    let child = leader.as_mut().expect("guarded by the branch");
                    // Without a cgroup, a daemon that left its session is found only so.
                    scope.adopt(children::adopted_since(scope.leader));
                    // A one-shot task is done when its process exits: what it left
                    // behind is killed below, never taken for a daemon.
                    if exit.success()
                        && spec.restart != RestartPolicy::Never
                        && let Some(main) = scope.main_member()
                    {
                        children::wait_leader(child);
                        leader = None;
                        watch = ProcessWatch::new(main.pid);
                        self.shared.update_service(&self.name, |record| {
                            record.pid = Some(main);
                            record.message =
                                Some(format!("daemonized: runs as PID {}", main.pid));
                        });
                    } else {
                        scope.kill_all();
                        children::wait_leader(child);
                        // Its last lines are in the log before anyone is told it exited.
                        log.flush(LOG_FLUSH_WAIT);
                        return Ok(exit);
                    }
                }
                _ = watch.ended(), if leader.is_none() => {
                    // The daemon's main process ended: the service goes on while any
                    // of its processes is left.
                    match scope.main_member() {
                        Some(main) => watch = ProcessWatch::new(main.pid),
                        None => {
                            log.flush(LOG_FLUSH_WAIT);
                            return Ok(ExitInfo { code: None, signal: None });
                        }
                    }
                }
                command = self.commands.recv() => {
                    if let Some(interrupt) = self.take(command) {
                        self.set_state(ServiceState::Stopping, None);
                        let leader = leader.as_mut().map(|child| (child, &watch));
                        stop(&mut scope, leader, spec).await;
                        // Its last lines land before a restart's separator.
                        log.flush(LOG_FLUSH_WAIT);
                        self.shared.update_service(&self.name, |record| {
                            record.pid = None;
                            record.state = ServiceState::Stopped;
                        });
                        return Err(interrupt);
                    }
                }
                _ = sleep(ticker.as_ref(), next_probe), if next_probe != Duration::MAX => {
                    if probing_since.elapsed() >= FAST_PROBE_WINDOW {
                        tick = (tick * 2).min(PROBE_TICK_MAX);
                    }
                    if leader.is_none() && scope.members().is_empty() {
                        log.flush(LOG_FLUSH_WAIT);
                        return Ok(ExitInfo { code: None, signal: None });
                    }
                }
            }
        }
    }
}

/// Sleeps `duration` on `ticker`, or on tokio's timers where there is none.
async fn sleep(ticker: Option<&Ticker>, duration: Duration) {
    match ticker {
        Some(ticker) => ticker.sleep(duration).await,
        None => tokio::time::sleep(duration).await,
    }
}

/// Stops every process of the service: its stop signal to all of them, the grace
/// period, then SIGKILL to what is left; then reaps the leader. The grace period ends
/// early once the leader has exited and no other process of the service is left.
async fn stop(
    scope: &mut ServiceScope,
    leader: Option<(&mut Child, &ProcessWatch)>,
    spec: &ProcessSpec,
) {
    // A daemon may have left the leader's session as the leader exited, an exit not
    // handled yet: take its orphans first, and again before the last SIGKILL. Only once
    // the leader has exited, so another service's daemon is never taken for this one's.
    let adopt_if_leader_exited = |scope: &mut ServiceScope| {
        if leader.is_some() && scope.leader.is_some_and(|leader| !leader.is_alive()) {
            scope.adopt(children::adopted_since(scope.leader));
        }
    };
    adopt_if_leader_exited(scope);
    scope.signal(spec.stop_signal());
    let grace = Duration::from_millis(spec.stop_grace_ms);
    let deadline = tokio::time::Instant::now() + grace;
    let gone = async {
        if let Some((_, watch)) = &leader {
            watch.ended().await;
        }
        let mut tick = PROBE_TICK_MIN;
        while !scope.members().is_empty() {
            tokio::time::sleep(tick).await;
            tick = (tick * 2).min(PROBE_TICK_MAX);
        }
    };
    let _ = tokio::time::timeout_at(deadline, gone).await;
    adopt_if_leader_exited(scope);
    scope.kill_all();
    if let Some((child, _)) = leader {
        children::wait_leader(child);
    }
}
