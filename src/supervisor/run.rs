//! The supervisor's main thread: lock, control socket, signals, service threads, stop.

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use indexmap::IndexMap;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};

use super::SupervisorError;
use super::children;
use super::compose::{ComposeCommand, ComposeThread};
use super::control::{self, Reply, Request};
use super::reap::stop_own_processes;
use super::service::{Command, ServiceTask};
use super::shared::Shared;
use crate::cgroup::Cgroup;
use crate::graph;
use crate::logs::LogSink;
use crate::process::ProcessIdentity;
use crate::state::{FileLock, InstanceFile, InstancePaths, InstanceState, ServiceState};

type Result<T, E = SupervisorError> = std::result::Result<T, E>;

/// The error for a step of starting up that failed.
fn start(action: &'static str) -> impl FnOnce(std::io::Error) -> SupervisorError {
    move |source| SupervisorError::Start { action, source }
}

/// Longer than any liveness probe holds the supervisor lock.
const PROBE_WINDOW: Duration = Duration::from_millis(500);
/// How long the log sink may take, once everything is stopped, to write what the pipes
/// still hold (a stray process may keep one open forever).
const LOG_DRAIN: Duration = Duration::from_secs(2);

struct Worker {
    commands: mpsc::UnboundedSender<Command>,
    task: tokio::task::JoinHandle<()>,
}

/// The one thread that runs every compose service of the instance.
struct ComposeWorker {
    commands: std::sync::mpsc::Sender<ComposeCommand>,
    handle: JoinHandle<()>,
    names: Vec<String>,
}

/// Runs the supervisor of the instance whose state directory is `dir`, until it is
/// asked to stop (control socket, SIGTERM, SIGINT). `ledger_dir` is where the ledger (and
/// the key that seals `instance.json`) lives.
pub fn run(dir: &Path, ledger_dir: &Path) -> Result<()> {
    crate::state::seal::init(ledger_dir);
    // `up` starts the supervisor before it writes the instance's files, so this start
    // overlaps them (see `crate::instance::lifecycle::PendingSupervisor`): what needs
    // neither the files nor the lock is done before the word to go.
    let dir = fs_err::canonicalize(dir).map_err(start("find its state directory"))?;
    std::env::set_current_dir(&dir).map_err(start("enter its state directory"))?;
    // One thread runs every service: each is a task on this event loop.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(start("start its event loop"))?;
    // Every service's output goes through this sink into its rotating log.
    let logs = LogSink::start().map_err(start("start its log sink"))?;
    let Some((file, orders)) = super::await_go() else {
        crate::daemon_log!(
            "berth supervisor: `berth up` stopped before the instance's files were written, or sent what this supervisor cannot read: nothing to do"
        );
        return Ok(());
    };
    let paths = InstancePaths { dir: dir.clone() };
    // Exactly one supervisor per instance: a second one started by a racing `up` finds
    // the lock held and leaves.
    // `is_held` probes (by `up`, `status`, `ls`) take the lock shared for an instant, so
    // a refusal is only another supervisor if it lasts: retry for a moment first.
    let Some(_lock) = FileLock::try_acquire_within(&paths.supervisor_lock(), PROBE_WINDOW)? else {
        crate::daemon_log!(
            "berth supervisor: another supervisor already runs `{}`",
            dir.display()
        );
        return Ok(());
    };
    let listener = control::bind().map_err(start("listen on its control socket"))?;
    // Daemons that fork away from a service come back to this process, not to init.
    if let Err(error) = children::become_subreaper() {
        crate::daemon_log!("berth supervisor: cannot become a subreaper: {error}");
    }
    let cgroups = InstanceCgroups::enter(&file.name, &dir);
    let local = tokio::task::LocalSet::new();
    let result = local.block_on(
        &runtime,
        supervise(paths, file, orders, listener, logs, cgroups.as_ref()),
    );
    if let Some(cgroups) = cgroups {
        cgroups.leave();
    }
    let _ = std::fs::remove_file(control::SOCKET_NAME);
    result
}

async fn supervise(
    paths: InstancePaths,
    file: InstanceFile,
    orders: super::Orders,
    listener: std::os::unix::net::UnixListener,
    logs: LogSink,
    cgroups: Option<&InstanceCgroups>,
) -> Result<()> {
    let listener =
        UnixListener::from_std(listener).map_err(start("listen on its control socket"))?;
    let watch = || start("watch for signals");
    let mut terminate = signal(SignalKind::terminate()).map_err(watch())?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(watch())?;
    let mut hangup = signal(SignalKind::hangup()).map_err(watch())?;
    // A child exited: maybe an adopted orphan to reap.
    let mut child_exited = signal(SignalKind::child()).map_err(watch())?;

    let token = file.token.clone();
    let shared = Arc::new(Shared::new(file, paths.dir.join("instance.json")));
    shared.update(|file| {
        file.supervisor = ProcessIdentity::current();
        file.state = InstanceState::Starting;
        file.started_at =
            Some(humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string());
    });
    // Written by the writer thread while the services start: the lock, not this
    // write, tells that the supervisor runs.
    let writer = Shared::start_writer(&shared, orders).map_err(start("start its state writer"))?;

    let snapshot = shared.snapshot();
    let compose = match snapshot.compose.clone() {
        Some(backend) => {
            let (sender, receiver) = std::sync::mpsc::channel();
            let thread = ComposeThread {
                shared: Arc::clone(&shared),
                commands: receiver,
                backend,
                project: snapshot.name.clone(),
                token: token.clone(),
                logs: logs.clone(),
                changes: sender.clone(),
            };
            let handle = std::thread::Builder::new()
                .name("compose".to_string())
                .spawn(move || thread.run())
                .map_err(start("start its compose thread"))?;
            Some(ComposeWorker {
                commands: sender,
                handle,
                names: snapshot
                    .services
                    .iter()
                    .filter(|(_, record)| record.is_compose())
                    .map(|(name, _)| name.clone())
                    .collect(),
            })
        }
        None => None,
    };
    let mut workers: IndexMap<String, Worker> = IndexMap::new();
    for (name, _) in snapshot
        .services
        .iter()
        .filter(|(_, record)| !record.is_compose())
    {
        let (sender, receiver) = mpsc::unbounded_channel();
        let service = ServiceTask {
            name: name.clone(),
            shared: Arc::clone(&shared),
            commands: receiver,
            token: token.clone(),
            setup_marker: paths.setup_marker(name),
            cgroup: cgroups.and_then(|cgroups| cgroups.service(name)),
            logs: logs.clone(),
            runs: 0,
        };
        let task = tokio::task::spawn_local(service.run());
        workers.insert(
            name.clone(),
            Worker {
                commands: sender,
                task,
            },
        );
    }
    drop(snapshot);

    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = hangup.recv() => break,
            () = shared.abandoned() => {
                crate::daemon_log!(
                    "berth supervisor: `berth up` failed before it recorded the instance: stopping what it started"
                );
                break;
            }
            _ = child_exited.recv() => {
                children::reap_adopted();
            }
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        crate::daemon_log!("berth supervisor: control socket: {error}");
                        continue;
                    }
                };
                if answer(stream, &shared, &workers, compose.as_ref()).await {
                    break;
                }
            }
        }
    }

    shared.update(|file| file.state = InstanceState::Stopping);
    shared.flush();
    stop_all(&shared, workers, compose).await;
    logs.finish(LOG_DRAIN);
    shared.close();
    let _ = writer.join();
    Ok(())
}

/// How long a client of the control socket may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Reads one request from a control connection, carries it out and replies. Returns
/// whether the supervisor was asked to stop.
async fn answer(
    stream: UnixStream,
    shared: &Shared,
    workers: &IndexMap<String, Worker>,
    compose: Option<&ComposeWorker>,
) -> bool {
    let mut stream = BufReader::new(stream);
    let mut line = String::new();
    let read = tokio::time::timeout(REQUEST_TIMEOUT, stream.read_line(&mut line)).await;
    let request = match read {
        Ok(Ok(_)) => serde_json::from_str::<Request>(&line).map_err(|error| error.to_string()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("no request within 2 s".to_string()),
    };
    let (reply, stop) = match request {
        Ok(Request::Wait { after, timeout_ms }) => {
            // Held apart from the loop, which goes on answering and supervising.
            let changes = shared.written_changes();
            let timeout = Duration::from_millis(timeout_ms).min(control::MAX_WAIT);
            tokio::task::spawn_local(answer_wait(stream, changes, after, timeout));
            return false;
        }
        Ok(Request::Stop) => (Reply::ok(), true),
        Ok(request) => {
            let reply = dispatch(shared, workers, compose, &request);
            // The caller reads instance.json next: it must see the change.
            shared.flush();
            (reply, false)
        }
        Err(error) => (Reply::failed(format!("bad request: {error}")), false),
    };
    if let Ok(mut bytes) = serde_json::to_vec(&reply) {
        bytes.push(b'\n');
        let _ = stream.get_mut().write_all(&bytes).await;
    }
    stop
}

/// Answers a [`Request::Wait`] once `instance.json` is written past `after`, or when
/// `timeout` has passed.
async fn answer_wait(
    mut stream: BufReader<UnixStream>,
    mut changes: tokio::sync::watch::Receiver<u64>,
    after: u64,
    timeout: Duration,
) {
    let _ = tokio::time::timeout(timeout, changes.wait_for(|written| *written > after)).await;
    let reply = Reply {
        written: Some(*changes.borrow()),
        ..Reply::ok()
    };
    if let Ok(mut bytes) = serde_json::to_vec(&reply) {
        bytes.push(b'\n');
        let _ = stream.get_mut().write_all(&bytes).await;
    }
}

/// The instance's cgroup as the supervisor sets it up: itself in the `supervisor` leaf,
/// one leaf per service. `None` where the machine does not allow cgroups.
struct InstanceCgroups {
    instance: Cgroup,
    /// Where the supervisor was before, to go back there when it is done.
    origin: Option<Cgroup>,
}

impl InstanceCgroups {
    fn enter(name: &str, dir: &Path) -> Option<Self> {
        let instance = Cgroup::instance(name, dir)?;
        let supervisor = instance.supervisor();
        // `up` starts the supervisor in its leaf (see `crate::spawn`); one started by
        // an older berth, or where the kernel refused, moves itself in. To leave at the
        // end, it goes where `up` runs.
        if supervisor.contains(std::process::id()) {
            let origin = Cgroup::of_process(nix::unistd::getppid().as_raw() as u32)
                .filter(|origin| !instance.holds(origin.path()));
            return Some(InstanceCgroups { instance, origin });
        }
        let origin = Cgroup::of_process(std::process::id());
        if !supervisor.create() || !supervisor.enter() {
            instance.remove();
            return None;
        }
        Some(InstanceCgroups { instance, origin })
    }

    /// The leaf of a service, created if needed.
    fn service(&self, name: &str) -> Option<Cgroup> {
        let leaf = self.instance.service(name);
        leaf.create().then_some(leaf)
    }

    /// Goes back to the original cgroup and removes the instance's, once every service
    /// has stopped; what is still inside is killed first (a helper left behind).
    fn leave(self) {
        if let Some(origin) = &self.origin {
            origin.enter();
        }
        if !self.instance.supervisor().contains(std::process::id()) {
            self.instance.kill_all();
            self.instance.remove();
        }
    }
}

fn dispatch(
    shared: &Shared,
    workers: &IndexMap<String, Worker>,
    compose: Option<&ComposeWorker>,
    request: &Request,
) -> Reply {
    let (services, make): (&Vec<String>, fn() -> Command) = match request {
        Request::Start { services } => (services, || Command::Start),
        Request::Restart { services } => (services, || Command::Restart),
        Request::Stop | Request::Wait { .. } => return Reply::ok(),
    };
    let is_compose = |name: &String| compose.is_some_and(|compose| compose.names.contains(name));
    if let Some(unknown) = services
        .iter()
        .find(|name| !workers.contains_key(*name) && !is_compose(name))
    {
        return Reply::failed(format!("no service `{unknown}`"));
    }
    for (name, worker) in workers {
        if !(services.is_empty() || services.contains(name)) {
            continue;
        }
        // A service that failed is tried again: `up` and `restart` report the outcome
        // of this attempt, never the last one's. Its state changes before the reply, so
        // the caller's wait cannot read the old failure.
        let record = shared.service(name);
        let failed = record
            .as_ref()
            .is_some_and(|record| record.state == ServiceState::Failed);
        let blocked = record.as_ref().is_some_and(|record| {
            record
                .message
                .as_deref()
                .is_some_and(|message| message.starts_with("dependency "))
        });
        if blocked {
            // Its failed dependency is tried again below: wait for that outcome.
            shared.update_service(name, |record| record.message = None);
        }
        if failed || matches!(request, Request::Restart { .. }) {
            shared.update_service(name, |record| {
                record.active = true;
                record.state = ServiceState::Waiting;
                record.message = None;
            });
            let _ = worker.commands.send(Command::Restart);
        } else {
            let _ = worker.commands.send(make());
        }
    }
    if let Some(compose) = compose {
        let chosen: Vec<String> = compose
            .names
            .iter()
            .filter(|name| services.is_empty() || services.contains(name))
            .cloned()
            .collect();
        if !chosen.is_empty() {
            let command = match request {
                Request::Restart { .. } => ComposeCommand::Restart(chosen),
                _ => ComposeCommand::Start(chosen),
            };
            let _ = compose.commands.send(command);
        }
    }
    Reply::ok()
}

/// Stops services in reverse dependency order (dependants first), each wave in
/// parallel, then removes the instance's containers and sweeps any process left with the
/// instance's token. A compose service is stopped early only when a process service it
/// depends on must outlive it; the others go with the final `down`.
async fn stop_all(
    shared: &Shared,
    mut workers: IndexMap<String, Worker>,
    compose: Option<ComposeWorker>,
) {
    let file = shared.snapshot();
    let graph: IndexMap<String, Vec<String>> = file
        .services
        .iter()
        .map(|(name, record)| (name.clone(), record.depends_on().to_vec()))
        .collect();
    drop(file);
    let mut waves =
        graph::start_order(&graph).unwrap_or_else(|_| vec![graph.keys().cloned().collect()]);
    waves.reverse();
    for (position, wave) in waves.iter().enumerate() {
        let processes_later = waves[position + 1..]
            .iter()
            .flatten()
            .any(|name| workers.contains_key(name));
        let mut compose_wait = None;
        if let Some(compose) = &compose
            && processes_later
        {
            let in_wave: Vec<String> = wave
                .iter()
                .filter(|name| compose.names.contains(name))
                .cloned()
                .collect();
            if !in_wave.is_empty() {
                let (done, finished) = std::sync::mpsc::channel();
                let _ = compose.commands.send(ComposeCommand::Stop(in_wave, done));
                compose_wait = Some(finished);
            }
        }
        let mut pending = Vec::new();
        for name in wave {
            if let Some(worker) = workers.shift_remove(name) {
                let (done, finished) = oneshot::channel();
                let _ = worker.commands.send(Command::Stop(done));
                pending.push((worker, finished));
            }
        }
        for (worker, finished) in pending {
            // The task drops `done` when its processes are gone.
            let _ = finished.await;
            let _ = worker.task.await;
        }
        if let Some(finished) = compose_wait {
            // The compose thread answers on its own; nothing else runs meanwhile.
            let _ = finished.recv();
        }
    }
    if let Some(compose) = compose {
        let (done, finished) = std::sync::mpsc::channel();
        let _ = compose.commands.send(ComposeCommand::Down(done));
        let _ = finished.recv();
        let _ = compose.handle.join();
    }
    stop_own_processes(&shared.snapshot());
    shared.update(|file| file.mark_stopped(InstanceState::Stopped));
}
