//! The snapshot operations: save, restore, list and remove the data of an instance.
//!
//! A copy is consistent because the instance is stopped while it is taken: a running
//! instance is brought down (its volumes and data kept), copied, and brought up again
//! with the services it had active.

use schemars::JsonSchema;
use serde::Serialize;

use super::Progress;
use super::copy::{apply, capture};
use super::select::{project_name, select};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::ledger::LedgerEntry;
use crate::snapshot::store::validate_name;
use crate::snapshot::{Manifest, SnapshotError, Store};
use crate::state::{FileLock, InstanceFile, InstancePaths};

pub(super) const COPYING: &str = "for a consistent copy";

/// What `snapshot save` is asked to do.
#[derive(Debug, Clone)]
pub struct SaveOptions {
    pub name: String,
    /// Only these services' data; all when empty.
    pub services: Vec<String>,
    /// Replace a snapshot of that name.
    pub force: bool,
}

/// Saves the selected instance's data as a snapshot.
pub fn save(context: &Context, options: &SaveOptions, progress: &dyn Progress) -> Result<Manifest> {
    let (name, services, force) = (&options.name, &options.services, options.force);
    validate_name(name)?;
    let selected = select(context, progress)?;
    selected.started_with(services)?;
    let store = Store::new(context.ledger.dir(), &selected.entry.project);
    let _lock = store.lock(context.lock_timeout)?;
    if !force && store.get(name)?.is_some() {
        return Err(SnapshotError::Exists {
            name: name.to_string(),
        }
        .into());
    }
    let staging = store.begin(name)?;
    let manifest = with_stopped(context, &selected.entry, COPYING, progress, |file| {
        capture(file, services, name, &staging.dir, progress)
    })?;
    store.commit(staging, &manifest, force)?;
    Ok(manifest)
}

/// Replaces the selected instance's data with a snapshot's; a running instance only
/// with `force` (it is stopped, restored and started again).
pub fn restore(
    context: &Context,
    name: &str,
    force: bool,
    progress: &dyn Progress,
) -> Result<Restored> {
    validate_name(name)?;
    let selected = select(context, progress)?;
    let file = selected.started()?;
    let store = Store::new(context.ledger.dir(), &selected.entry.project);
    let _lock = store.lock(context.lock_timeout)?;
    let manifest = store.get(name)?.ok_or_else(|| no_snapshot(name, &store))?;
    if file.supervisor_alive() && !force {
        return Err(Error::usage(
            format!(
                "`{}` is running; restoring would replace the data under its services",
                file.name
            ),
            Some(
                "pass --force to stop it, restore and start it again, or run `berth down` first"
                    .to_string(),
            ),
        ));
    }
    let restored = with_stopped(
        context,
        &selected.entry,
        "to restore its data",
        progress,
        |file| apply(&store.path(name), &manifest, file, progress),
    )?;
    Ok(Restored {
        snapshot: manifest.name.clone(),
        instance: selected.entry.name.clone(),
        restored,
    })
}

/// The snapshots of a project.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Snapshots {
    pub project: String,
    pub snapshots: Vec<Manifest>,
}

/// Lists the snapshots of the selected instance's project (else the current directory's).
pub fn list(context: &Context, progress: &dyn Progress) -> Result<Snapshots> {
    let project = project_name(context, progress)?;
    let snapshots = Store::new(context.ledger.dir(), &project).list()?;
    Ok(Snapshots { project, snapshots })
}

/// What `snapshot rm` reports.
#[derive(Debug, Serialize)]
pub struct Removed {
    pub removed: String,
    pub project: String,
}

/// Removes one snapshot of the project.
pub fn remove(context: &Context, name: &str, progress: &dyn Progress) -> Result<Removed> {
    validate_name(name)?;
    let project = project_name(context, progress)?;
    let store = Store::new(context.ledger.dir(), &project);
    let _lock = store.lock(context.lock_timeout)?;
    if !store.remove(name)? {
        return Err(no_snapshot(name, &store));
    }
    Ok(Removed {
        removed: name.to_string(),
        project,
    })
}

/// What `snapshot restore` reports.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Restored {
    pub snapshot: String,
    pub instance: String,
    pub restored: Vec<String>,
}

pub(super) fn no_snapshot(name: &str, store: &Store) -> Error {
    Error::usage(
        format!("no snapshot named `{name}` in `{}`", store.dir().display()),
        Some("`berth snapshot ls` lists them".to_string()),
    )
}

/// Runs `work` on the instance while it is stopped: a running instance is stopped first
/// (under its operation lock) and started again afterwards with the services it had
/// active, whether or not `work` succeeded.
pub(super) fn with_stopped<T>(
    context: &Context,
    entry: &LedgerEntry,
    purpose: &str,
    progress: &dyn Progress,
    work: impl FnOnce(&InstanceFile) -> Result<T>,
) -> Result<T> {
    let paths = InstancePaths::new(&entry.root, &entry.name);
    let operation = FileLock::acquire(
        &context.ledger.operation_lock(&entry.name)?,
        context.lock_timeout,
    )?;
    let file = InstanceFile::read(&paths.instance_json())?.ok_or_else(|| {
        Error::usage(
            format!("`{}` has never been started", entry.name),
            Some(format!(
                "run `berth up` in `{}` first",
                entry.root.display()
            )),
        )
    })?;
    let running = file.supervisor_alive();
    let file = if running {
        progress.note(&format!(
            "stopping `{}` {purpose}; it starts again afterwards",
            entry.name
        ));
        super::lifecycle::stop(&paths)?.unwrap_or(file)
    } else {
        file
    };
    let result = work(&file);
    drop(operation);
    if running {
        let all_active = file.services.values().all(|record| record.active);
        let services = if all_active {
            Vec::new()
        } else {
            file.targets(&[]).map(|(name, _)| name.clone()).collect()
        };
        let restarted = super::up::start_again(context, entry, services, progress);
        if let (Ok(_), Err(error)) = (&result, restarted) {
            return Err(error);
        }
    }
    result
}
