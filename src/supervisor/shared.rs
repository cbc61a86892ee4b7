//! The supervisor's view of the instance, shared by its threads and persisted on change.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use crate::state::{InstanceFile, InstanceState, RestartPolicy, ServiceRecord, ServiceState};

pub struct Shared {
    file: Mutex<InstanceFile>,
    path: PathBuf,
}

impl Shared {
    pub fn new(file: InstanceFile, path: PathBuf) -> Self {
        Shared {
            file: Mutex::new(file),
            path,
        }
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

    /// Applies `change` and writes instance.json atomically, under the mutex so that
    /// writes from different threads never interleave.
    pub fn update(&self, change: impl FnOnce(&mut InstanceFile)) {
        let mut file = self.lock();
        change(&mut file);
        if let Err(error) = file.write(&self.path) {
            eprintln!("berth supervisor: {error}");
        }
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
                file.state = if all_up {
                    InstanceState::Running
                } else {
                    InstanceState::Starting
                };
            }
        });
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
