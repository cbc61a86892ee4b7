//! The supervisor's main thread: lock, control socket, signals, service threads, stop.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use indexmap::IndexMap;

use super::control::{self, Reply, Request};
use super::reap::stop_processes;
use super::service::{Command, ServiceThread};
use super::shared::Shared;
use crate::error::{Error, Result};
use crate::graph;
use crate::process::ProcessIdentity;
use crate::state::{FileLock, InstanceFile, InstancePaths, InstanceState};

struct Worker {
    commands: Sender<Command>,
    handle: JoinHandle<()>,
}

/// Runs the supervisor of the instance whose state directory is `dir`, until it is
/// asked to stop (control socket, SIGTERM, SIGINT).
pub fn run(dir: &Path) -> Result<()> {
    let dir = fs_err::canonicalize(dir)?;
    let instance_json = dir.join("instance.json");
    let Some(file) = InstanceFile::read(&instance_json)? else {
        return Err(Error::failed(
            format!("no instance.json in `{}`", dir.display()),
            None,
        ));
    };
    let paths = InstancePaths { dir: dir.clone() };
    // Exactly one supervisor per instance: a second one started by a racing `up` finds
    // the lock held and leaves.
    let Some(_lock) = FileLock::try_acquire(&paths.supervisor_lock())? else {
        eprintln!(
            "berth supervisor: another supervisor already runs `{}`",
            file.name
        );
        return Ok(());
    };
    std::env::set_current_dir(&dir)?;
    let listener = control::bind()?;

    let stop_requested = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, Arc::clone(&stop_requested))?;
    }

    let token = file.token.clone();
    let shared = Arc::new(Shared::new(file, instance_json));
    shared.update(|file| {
        file.supervisor = ProcessIdentity::current();
        file.state = InstanceState::Starting;
        file.started_at =
            Some(humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string());
    });

    let names: Vec<String> = shared.snapshot().services.keys().cloned().collect();
    let mut workers: IndexMap<String, Worker> = IndexMap::new();
    for name in names {
        let (sender, receiver) = mpsc::channel();
        let thread = ServiceThread {
            name: name.clone(),
            shared: Arc::clone(&shared),
            commands: receiver,
            token: token.clone(),
            setup_marker: paths.setup_marker(&name),
        };
        let handle = std::thread::Builder::new()
            .name(format!("service-{name}"))
            .spawn(move || thread.run())?;
        workers.insert(
            name,
            Worker {
                commands: sender,
                handle,
            },
        );
    }

    loop {
        if stop_requested.load(Ordering::Relaxed) {
            break;
        }
        match listener.accept() {
            Ok((stream, _)) => {
                let request = control::read_request(&stream);
                let (reply, stop) = match request {
                    Ok(Request::Stop) => (
                        Reply {
                            ok: true,
                            error: None,
                        },
                        true,
                    ),
                    Ok(request) => (dispatch(&workers, &request), false),
                    Err(error) => (
                        Reply {
                            ok: false,
                            error: Some(format!("bad request: {error}")),
                        },
                        false,
                    ),
                };
                let _ = control::write_reply(&stream, &reply);
                if stop {
                    break;
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(25));
            }
            Err(error) => eprintln!("berth supervisor: control socket: {error}"),
        }
    }

    shared.update(|file| file.state = InstanceState::Stopping);
    stop_all(&shared, workers);
    let _ = std::fs::remove_file(control::SOCKET_NAME);
    Ok(())
}

fn dispatch(workers: &IndexMap<String, Worker>, request: &Request) -> Reply {
    let (services, make): (&Vec<String>, fn() -> Command) = match request {
        Request::Start { services } => (services, || Command::Start),
        Request::Restart { services } => (services, || Command::Restart),
        Request::Stop => {
            return Reply {
                ok: true,
                error: None,
            };
        }
    };
    if let Some(unknown) = services.iter().find(|name| !workers.contains_key(*name)) {
        return Reply {
            ok: false,
            error: Some(format!("no service `{unknown}`")),
        };
    }
    for (name, worker) in workers {
        if services.is_empty() || services.contains(name) {
            let _ = worker.commands.send(make());
        }
    }
    Reply {
        ok: true,
        error: None,
    }
}

/// Stops services in reverse dependency order (dependants first), each wave in
/// parallel, then sweeps any process left with the instance's token.
fn stop_all(shared: &Shared, mut workers: IndexMap<String, Worker>) {
    let file = shared.snapshot();
    let graph: IndexMap<String, Vec<String>> = file
        .services
        .iter()
        .map(|(name, record)| (name.clone(), record.spec.depends_on.clone()))
        .collect();
    let mut waves =
        graph::start_order(&graph).unwrap_or_else(|_| vec![graph.keys().cloned().collect()]);
    waves.reverse();
    for wave in waves {
        let mut pending = Vec::new();
        for name in wave {
            if let Some(worker) = workers.shift_remove(&name) {
                let (done, finished) = mpsc::channel();
                let _ = worker.commands.send(Command::Stop(done));
                pending.push((worker, finished));
            }
        }
        for (worker, finished) in pending {
            // The thread drops `done` when its process group is gone.
            let _ = finished.recv();
            let _ = worker.handle.join();
        }
    }
    stop_processes(&shared.snapshot());
    shared.update(|file| file.mark_stopped(InstanceState::Stopped));
}
