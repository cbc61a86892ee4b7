//! Starting, stopping and waiting on an instance's supervisor, shared by the commands.

use std::time::{Duration, Instant};

use super::Progress;
use crate::cgroup::Cgroup;
use crate::compose::{ComposeError, LABEL_INSTANCE, LABEL_ROOT, Runner};
use crate::docker::Engine;
use crate::error::{Error, Result};
use crate::logs::{self, Scope};
use crate::process::ProcessIdentity;
use crate::state::{
    FileLock, InstanceFile, InstancePaths, InstanceState, LogLimits, ServiceRecord, ServiceState,
};
use crate::supervisor::{self, Request};

const POLL: Duration = Duration::from_millis(2);
/// The longest `wait_ready` waits for the supervisor's next write before it looks at
/// cancellation and its timeout again.
const WAIT_SLICE: Duration = Duration::from_millis(250);

/// A supervisor started before its instance's files are written, so that its own start
/// (exec, loading a binary of some megabytes) overlaps `up`'s last steps: the engine's
/// answer, the lease, the writes. It waits for [`supervisor::GO`] on its standard input
/// ([`PendingSupervisor::go`]), then starts the services while `up` writes
/// `instance.json`; dropped without it, the pipe closes and the supervisor
/// leaves having read nothing, and its cgroup is removed.
pub struct PendingSupervisor {
    go: Option<std::fs::File>,
    /// Until [`PendingSupervisor::go`]: its exec is not waited for, so that it overlaps
    /// `up`'s own steps too.
    started: Option<crate::spawn::Started>,
    cgroup: Option<Cgroup>,
    /// Told to go: from then on it is on its own.
    gone: bool,
}

impl PendingSupervisor {
    pub fn start(paths: &InstancePaths, name: &str) -> Result<PendingSupervisor> {
        // Created in its cgroup's supervisor leaf, made here first: a process created in
        // a cgroup costs nothing, one moved in waits for the kernel (see `crate::spawn`).
        let cgroup = Cgroup::instance(name, &paths.dir);
        let leaf = cgroup
            .as_ref()
            .map(Cgroup::supervisor)
            .filter(Cgroup::create);
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|error| cannot_start(error.into()))?;
        let started =
            supervisor::spawn_supervisor(paths, leaf.as_ref(), read).map_err(cannot_start)?;
        Ok(PendingSupervisor {
            go: Some(std::fs::File::from(write)),
            started: Some(started),
            cgroup,
            gone: false,
        })
    }

    /// Lets the supervisor start the services of `file` (the instance `up` is about to
    /// record): it starts them while `up` writes `instance.json`, and writes nothing
    /// itself until told that is done ([`Recording::recorded`]).
    pub fn go(mut self, paths: &InstancePaths, file: &InstanceFile) -> Result<Recording> {
        use std::io::Write;
        // Dropped on an error before `gone`, `self` waits for it and removes the cgroup.
        let mut message = supervisor::GO.to_vec();
        serde_json::to_writer(&mut message, file).map_err(|error| {
            Error::failed(format!("cannot serialize the instance: {error}"), None)
        })?;
        message.push(b'\n');
        let (Some(started), Some(mut orders)) = (self.started.take(), self.go.take()) else {
            unreachable!("`go` consumes the pending supervisor");
        };
        let mut child = started.finish().map_err(cannot_start)?;
        if let Err(error) = orders.write_all(&message) {
            drop(orders);
            child.wait();
            return Err(Error::failed(
                format!("the supervisor exited before it was told to start: {error}"),
                Some(format!("see `{}`", paths.supervisor_log().display())),
            ));
        }
        self.gone = true;
        Ok(Recording {
            orders: Some(orders),
            child: Some(child),
            cgroup: self.cgroup.take(),
        })
    }
}

/// A supervisor starting the services while `up` records the instance. Dropped before
/// [`Recording::recorded`] (`up` failed to write `instance.json`), its input closes: it
/// stops what it started (recording the instance stopped) and exits, and is waited for,
/// so that nothing runs once `up` has failed.
pub struct Recording {
    orders: Option<std::fs::File>,
    child: Option<crate::spawn::Child>,
    cgroup: Option<Cgroup>,
}

impl Recording {
    /// Tells the supervisor `instance.json` holds the instance, then waits until it holds
    /// its lock. It is deliberately not waited for: init collects its exit status once
    /// `berth up` exits.
    pub fn recorded(mut self, paths: &InstancePaths) -> Result<()> {
        use std::io::Write;
        let sent = self
            .orders
            .as_mut()
            .map_or(Ok(()), |orders| orders.write_all(supervisor::PUBLISHED));
        if let Err(error) = sent {
            return Err(Error::failed(
                format!("the supervisor exited while `up` recorded the instance: {error}"),
                Some(format!("see `{}`", paths.supervisor_log().display())),
            ));
        }
        self.orders = None;
        self.child = None;
        wait_for_lock(paths)
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        drop(self.orders.take());
        child.wait();
        if let Some(cgroup) = &self.cgroup {
            cgroup.remove();
        }
    }
}

fn cannot_start(error: std::io::Error) -> Error {
    Error::failed(format!("cannot start the supervisor: {error}"), None)
}

impl Drop for PendingSupervisor {
    fn drop(&mut self) {
        if self.gone {
            return;
        }
        // `up` failed first: the supervisor reads the end of its input and leaves.
        drop(self.go.take());
        if let Some(started) = self.started.take()
            && let Ok(mut child) = started.finish()
        {
            child.wait();
        }
        if let Some(cgroup) = &self.cgroup {
            cgroup.remove();
        }
    }
}

/// Waits until the supervisor that was just told to go holds its lock.
fn wait_for_lock(paths: &InstancePaths) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if FileLock::is_held(&paths.supervisor_lock()) {
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
    Err(Error::failed(
        "the supervisor did not start within 10 s",
        Some(format!("see `{}`", paths.supervisor_log().display())),
    ))
}

/// Stops the instance: asks the supervisor to stop everything and waits for it to exit;
/// if it does not answer, kills it (PID and start time checked). Then stops any process
/// left and records the instance as stopped. The caller holds the operation lock.
pub fn stop(paths: &InstancePaths) -> Result<Option<InstanceFile>> {
    let Some(mut file) = InstanceFile::read(&paths.instance_json())? else {
        return Ok(None);
    };
    // A supervisor spawned by an `up` killed a moment ago may take its lock only after
    // this found none, having read the state while it still said starting: it would
    // start the services after the sweep below. So once `Stopped` is written, a lock
    // still held means such a supervisor: stop it too, a bounded number of times.
    for _ in 0..RACING_SUPERVISORS {
        stop_supervisor(paths, &file);
        file = InstanceFile::read(&paths.instance_json())?.unwrap_or(file);
        supervisor::stop_processes(&file);
        supervisor::remove_cgroup(&file);
        remove_containers(&file, false)?;
        file.mark_stopped(InstanceState::Stopped);
        file.write(&paths.instance_json())?;
        if !file.supervisor_alive() {
            break;
        }
    }
    Ok(Some(file))
}

/// How many times `stop` goes after a supervisor that keeps appearing: one per `up`
/// that could have spawned one, and only a killed `up` leaves one behind.
const RACING_SUPERVISORS: usize = 3;

/// Asks the supervisor, if one runs, to stop everything and waits for it to exit;
/// kills it if it does not answer.
fn stop_supervisor(paths: &InstancePaths, file: &InstanceFile) {
    if !file.supervisor_alive() {
        return;
    }
    // One already stopping was asked before (by a command that may have died since):
    // wait for it as for one asked now. One that has just taken its lock binds its
    // control socket a moment later: keep asking for a while.
    let ask_until = Instant::now() + Duration::from_secs(2);
    let asked = loop {
        if file.state == InstanceState::Stopping
            || supervisor::send(&paths.dir, &Request::Stop).is_ok()
        {
            break true;
        }
        if !file.supervisor_alive() || Instant::now() >= ask_until {
            break false;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let grace: u64 = file
        .services
        .values()
        .map(|record| record.stop_grace_ms())
        .sum();
    let deadline = Instant::now() + Duration::from_millis(grace) + Duration::from_secs(10);
    while file.supervisor_alive() && asked && Instant::now() < deadline {
        std::thread::sleep(POLL);
    }
    if file.supervisor_alive() {
        // Its identity as it recorded it, if it got that far.
        let recorded = InstanceFile::read(&paths.instance_json())
            .ok()
            .flatten()
            .and_then(|file| file.supervisor);
        kill_supervisor(recorded.or(file.supervisor), &paths.dir);
    }
}

/// Removes what is left of the instance on the Docker engine (its supervisor normally
/// did, unless it died): containers and networks; with `volumes` also the volumes that
/// carry the instance's labels, which external and shared volumes never do.
pub fn remove_containers(file: &InstanceFile, volumes: bool) -> Result<()> {
    let Some(backend) = &file.compose else {
        return Ok(());
    };
    let engine = Engine::from_env().map_err(ComposeError::from)?;
    let root = file.root.display().to_string();
    let labels = [
        (LABEL_INSTANCE, file.name.as_str()),
        (LABEL_ROOT, root.as_str()),
    ];
    let left = engine
        .containers(&labels, true)
        .map_err(ComposeError::from)?;
    let networks = engine.networks(&labels).map_err(ComposeError::from)?;
    if !left.is_empty() || !networks.is_empty() {
        Runner {
            backend,
            project: &file.name,
        }
        .down(false)?;
    }
    if volumes {
        // Its labelled volumes, and anything `down` left behind.
        crate::cleanup::engine_objects(&engine, &file.name, &file.root, true, false)?;
    }
    Ok(())
}

/// SIGKILLs the supervisor that does not answer. The PID comes from `instance.json`, a
/// file in the work tree: it is signalled only if that process really is the supervisor
/// of this state directory (its command line says so), never an unrelated one a copied
/// or edited file names.
fn kill_supervisor(identity: Option<ProcessIdentity>, dir: &std::path::Path) {
    let is_supervisor = |identity: &ProcessIdentity| {
        crate::process::command_line(identity.pid)
            .is_some_and(|command| command.ends_with(&format!("__supervise {}", dir.display())))
    };
    if let Some(identity) = identity.filter(is_supervisor) {
        identity.signal(nix::sys::signal::Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(5);
        while identity.is_alive() && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
    }
}

/// Waits until every service in `services` (every active one when empty) is ready or
/// done. A failed service, or the timeout, is an error carrying its last log lines; so is
/// a caller that gave up ([`Progress::cancelled`]): the services go on starting.
pub fn wait_ready(
    paths: &InstancePaths,
    services: &[String],
    timeout: Duration,
    progress: &dyn Progress,
) -> Result<InstanceFile> {
    let started = Instant::now();
    // The version of `instance.json` read last, as the supervisor numbers its writes.
    let mut seen = 0;
    loop {
        let read_started = Instant::now();
        let file = InstanceFile::read(&paths.instance_json())?.ok_or_else(|| {
            Error::failed(
                format!("`{}` disappeared", paths.instance_json().display()),
                None,
            )
        })?;
        let targets: Vec<(&String, &crate::state::ServiceRecord)> =
            file.targets(services).collect();
        if targets.iter().all(|(_, record)| record.state.is_up()) {
            return Ok(file);
        }
        if let Some((name, record)) = targets
            .iter()
            .find(|(_, record)| record.state == ServiceState::Failed)
        {
            return Err(service_failed(
                &file,
                name,
                record,
                record.message.as_deref().unwrap_or("failed"),
            ));
        }
        if let Some((name, record)) = targets.iter().find(|(_, record)| {
            record
                .message
                .as_deref()
                .is_some_and(|message| message.starts_with("dependency "))
        }) {
            let message = record.message.as_deref().unwrap_or_default();
            // Name the dependency that failed, with its own last lines: the dependant
            // never ran and has nothing to show.
            let failed = message
                .strip_prefix("dependency `")
                .and_then(|rest| rest.split('`').next())
                .and_then(|dependency| Some((dependency, file.services.get(dependency)?)));
            return Err(match failed {
                Some((dependency, failed)) => service_failed(
                    &file,
                    dependency,
                    failed,
                    &format!(
                        "{} (so `{name}` cannot start)",
                        failed.message.as_deref().unwrap_or("failed")
                    ),
                ),
                None => service_failed(&file, name, record, message),
            });
        }
        if !file.supervisor_alive() {
            return Err(Error::ServiceFailed {
                message: format!(
                    "the supervisor of `{}` exited before the services were ready",
                    file.name
                ),
                details: logs::tail_lines(
                    &paths.supervisor_log(),
                    20,
                    Scope::All,
                    LogLimits::default(),
                ),
                hint: Some("run `berth up` again; the log above says why it stopped".to_string()),
            });
        }
        if progress.cancelled() {
            return Err(Error::failed(
                format!("stopped waiting for `{}` to be ready: the call was cancelled", file.name),
                Some(
                    "its services go on starting: `berth status` shows them, `berth down` stops them"
                        .to_string(),
                ),
            ));
        }
        if started.elapsed() >= timeout {
            let (name, record) = targets
                .iter()
                .find(|(_, record)| !record.state.is_up())
                .copied()
                .unwrap_or_else(|| targets[0]);
            let reason = format!(
                "not ready after {} s (state {}{})",
                timeout.as_secs(),
                record.state.as_str(),
                record
                    .message
                    .as_deref()
                    .map(|message| format!(": {message}"))
                    .unwrap_or_default()
            );
            return Err(service_failed(&file, name, record, &reason));
        }
        // The supervisor answers once it has written a change: nothing is read while
        // nothing happens. The slice bounds how late a cancellation or the timeout is
        // seen. Only while it cannot be asked yet (its socket is bound a moment after
        // it starts) is the file polled, less often when it is large (a thousand
        // services), so the wait does not compete with the supervisor for the CPU.
        let slice = WAIT_SLICE.min(timeout.saturating_sub(started.elapsed()));
        match supervisor::wait_for_write(&paths.dir, seen, slice) {
            Ok(written) => seen = written,
            Err(_) => std::thread::sleep(POLL.max(read_started.elapsed() * 4)),
        }
    }
}

/// The error for a service that failed, with the last lines of its current run (those
/// of earlier runs, above the last separator in its log, say nothing about this failure).
fn service_failed(file: &InstanceFile, name: &str, record: &ServiceRecord, reason: &str) -> Error {
    let log = file.paths().log(name);
    let mut details = vec![format!("last lines of this run in `{}`:", log.display())];
    details.extend(
        logs::tail_lines(&log, 20, Scope::CurrentRun, record.log_limits())
            .into_iter()
            .map(|line| format!("  {name} | {line}")),
    );
    Error::ServiceFailed {
        message: format!("service `{name}` of `{}` failed: {reason}", file.name),
        details,
        hint: Some(format!(
            "`berth logs {name}` shows more; `berth down` stops the instance"
        )),
    }
}
