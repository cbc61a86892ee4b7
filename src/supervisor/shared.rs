//! The supervisor's view of the instance, shared by its threads and persisted on change.
//!
//! Writes are coalesced: a change marks the model dirty and a writer thread persists it,
//! at once when the file is small, paced by its size when it is large, so a thousand
//! services changing state write `instance.json` a few times, not two thousand times.
//! Whoever must know a change is on disk before going on (a reply to `up`, the final
//! state) calls [`Shared::flush`].
//!
//! Nothing is written until `up` has written `instance.json` itself (it starts the
//! supervisor first, see [`super::Orders`]): the writer thread waits for its word. When
//! `up` fails before, the main loop is told to stop, and the file then records the
//! instance stopping, then stopped.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::state::{
    InstanceFile, InstanceState, Published, RestartPolicy, ServiceRecord, ServiceState,
};

/// How fast the writer may write `instance.json` while changes keep coming: a file of up
/// to [`UNPACED_BYTES`] (a few dozen services) is written as soon as it changes, a 1 MiB
/// one about twice a second.
const WRITE_BUDGET_BYTES_PER_SECOND: u64 = 2 * 1024 * 1024;
const UNPACED_BYTES: u64 = 64 * 1024;
const LONGEST_PAUSE: Duration = Duration::from_millis(500);

pub struct Shared {
    file: Mutex<InstanceFile>,
    path: PathBuf,
    /// Bumped by every change, under the `file` lock.
    version: AtomicU64,
    /// The version on disk.
    written: AtomicU64,
    /// The version on disk, for those waiting for the next write (`Request::Wait`).
    written_changes: watch::Sender<u64>,
    /// Held while writing, so writes never interleave.
    writing: Mutex<()>,
    /// What the writer waits on; held only to wait and to notify.
    signal: Mutex<()>,
    changed: Condvar,
    closed: AtomicBool,
    /// Whether `up` has written `instance.json`: until then nothing is written.
    recorded: AtomicBool,
    /// Notified when `up` failed before it recorded the instance.
    abandoned: tokio::sync::Notify,
    /// Per service, rung when one of its dependencies changes, so a service waiting for
    /// them sleeps until then instead of looking again and again.
    wakers: HashMap<String, watch::Sender<()>>,
    /// Per service, the services that depend on it.
    dependants: HashMap<String, Vec<String>>,
}

impl Shared {
    pub fn new(file: InstanceFile, path: PathBuf) -> Self {
        let wakers = file
            .services
            .keys()
            .map(|name| (name.clone(), watch::Sender::new(())))
            .collect();
        let mut dependants: HashMap<String, Vec<String>> = HashMap::new();
        for (name, record) in &file.services {
            for dependency in record.depends_on() {
                dependants
                    .entry(dependency.clone())
                    .or_default()
                    .push(name.clone());
            }
        }
        Shared {
            wakers,
            dependants,
            file: Mutex::new(file),
            path,
            version: AtomicU64::new(0),
            written: AtomicU64::new(0),
            written_changes: watch::Sender::new(0),
            writing: Mutex::new(()),
            signal: Mutex::new(()),
            changed: Condvar::new(),
            closed: AtomicBool::new(false),
            recorded: AtomicBool::new(false),
            abandoned: tokio::sync::Notify::new(),
        }
    }

    /// Starts the writer thread. It first waits until `up` has recorded the instance
    /// (`orders`); if `up` fails first, [`Shared::abandoned`] completes.
    pub fn start_writer(
        shared: &Arc<Shared>,
        orders: super::Orders,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let shared = Arc::clone(shared);
        std::thread::Builder::new()
            .name("state-writer".to_string())
            .spawn(move || {
                let recorded = orders.published();
                // Written from now on either way: when `up` failed, the file then says
                // the instance is stopping, so that the next command waits for this
                // supervisor to finish instead of taking it for a running one.
                shared.recorded.store(true, Ordering::Release);
                if !recorded {
                    shared.abandoned.notify_one();
                }
                shared.write_loop();
            })
    }

    /// Completes when `up` failed before it recorded the instance: the supervisor
    /// must stop what it started.
    pub async fn abandoned(&self) {
        self.abandoned.notified().await;
    }

    fn write_loop(&self) {
        loop {
            {
                let signal = self
                    .signal
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let _signal = self
                    .changed
                    .wait_while(signal, |_| {
                        self.written.load(Ordering::Acquire) >= self.version.load(Ordering::Acquire)
                            && !self.closed.load(Ordering::Acquire)
                    })
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            if self.closed.load(Ordering::Acquire) {
                self.flush();
                return;
            }
            let started = Instant::now();
            let bytes = self.flush();
            if bytes <= UNPACED_BYTES {
                continue;
            }
            let pace = Duration::from_secs_f64(bytes as f64 / WRITE_BUDGET_BYTES_PER_SECOND as f64)
                .min(LONGEST_PAUSE);
            if let Some(rest) = pace.checked_sub(started.elapsed()) {
                std::thread::sleep(rest);
            }
        }
    }

    /// Writes the current model if it changed since the last write; returns the size
    /// written (0 when nothing was due).
    pub fn flush(&self) -> u64 {
        let _writing = self
            .writing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !self.recorded.load(Ordering::Acquire) {
            return 0;
        }
        let (file, version) = {
            let file = self.lock();
            (file.clone(), self.version.load(Ordering::Acquire))
        };
        if self.written.load(Ordering::Acquire) >= version {
            return 0;
        }
        let published = file.publish(&self.path);
        // Waiters are told as soon as every reader sees the change; the rename is made
        // durable after (a crash meanwhile leaves the previous file, whole).
        self.written.store(version, Ordering::Release);
        self.written_changes.send_replace(version);
        if let Err(error) = published.and_then(Published::sync) {
            crate::daemon_log!("berth supervisor: {error}");
        }
        std::fs::metadata(&self.path).map_or(0, |meta| meta.len())
    }

    /// The version of `instance.json` on disk, as it changes.
    pub fn written_changes(&self) -> watch::Receiver<u64> {
        self.written_changes.subscribe()
    }

    /// Writes what is left and stops the writer thread.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        drop(
            self.signal
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        self.changed.notify_all();
        self.flush();
    }

    fn lock(&self) -> MutexGuard<'_, InstanceFile> {
        // A panicking service thread must not take the whole supervisor down with it:
        // the data is still consistent because every update is a single assignment.
        self.file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn snapshot(&self) -> InstanceFile {
        self.lock().clone()
    }

    /// Applies `change`; the writer thread persists it (see the module's comment).
    pub fn update(&self, change: impl FnOnce(&mut InstanceFile)) {
        let mut file = self.lock();
        change(&mut file);
        self.version.fetch_add(1, Ordering::AcqRel);
        drop(file);
        // Taking the signal's lock orders this notification after the writer's check.
        drop(
            self.signal
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        self.changed.notify_all();
    }

    /// Changes one service and, in the same write, the instance's state: running once
    /// every active service is up, starting otherwise (unless it is stopping).
    pub fn update_service(&self, name: &str, change: impl FnOnce(&mut ServiceRecord)) {
        self.update(|file| {
            if let Some(record) = file.services.get_mut(name) {
                change(record);
            }
            if matches!(file.state, InstanceState::Starting | InstanceState::Running) {
                let all_up = file
                    .services
                    .values()
                    .filter(|record| record.active)
                    .all(|record| record.state.is_up());
                let state = if all_up {
                    InstanceState::Running
                } else {
                    InstanceState::Starting
                };
                file.state = state;
            }
        });
        for dependant in self.dependants.get(name).into_iter().flatten() {
            if let Some(waker) = self.wakers.get(dependant) {
                waker.send_modify(|_| ());
            }
        }
    }

    /// What rings when a dependency of `name` changes (see [`Shared::update_service`]).
    pub fn dependency_changes(&self, name: &str) -> watch::Receiver<()> {
        match self.wakers.get(name) {
            Some(waker) => waker.subscribe(),
            None => watch::Sender::new(()).subscribe(),
        }
    }

    pub fn service(&self, name: &str) -> Option<ServiceRecord> {
        self.lock().services.get(name).cloned()
    }

    /// The state of each dependency of `name`, and whether it has done what its
    /// dependants wait for: ready, or for a one-shot task (`restart = "never"`), exited
    /// with status 0.
    pub fn dependency_states(&self, name: &str) -> Vec<(String, ServiceState, bool)> {
        let file = self.lock();
        let Some(record) = file.services.get(name) else {
            return Vec::new();
        };
        record
            .depends_on()
            .iter()
            .filter_map(|dependency| {
                let record = file.services.get(dependency)?;
                let one_shot = record
                    .process()
                    .is_some_and(|spec| spec.restart == RestartPolicy::Never);
                let done = if one_shot {
                    record.state == ServiceState::Exited
                } else {
                    record.state.is_up()
                };
                Some((dependency.clone(), record.state, done))
            })
            .collect()
    }
}
