//! `gc`: cleans up after instances that died or whose root is gone.
//! A live instance, or a stopped one whose root exists, is never touched; one whose
//! supervisor died keeps its ledger entry and ports, but loses what the supervisor left.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::Serialize;

use super::{Progress, lifecycle};
use crate::cleanup::{self, Removal};
use crate::compose::{LABEL_INSTANCE, LABEL_ROOT};
use crate::context::Context;
use crate::docker::Engine;
use crate::error::Result;
use crate::state::{FileLock, InstanceFile, InstancePaths};

/// What `gc` removed, or with `dry_run` would remove.
#[derive(Debug, Serialize)]
pub struct Collected {
    pub dry_run: bool,
    pub removed: Vec<Removal>,
}

/// Everything a forgotten instance left: its processes, its containers and networks,
/// the volumes berth named for its images' `VOLUME` paths (never a volume the user
/// named: that is data), and its ledger entry (removed by the caller).
fn forget(
    engine: Option<&Engine>,
    name: &str,
    root: &std::path::Path,
    reason: &str,
    dry_run: bool,
) -> Result<Vec<Removal>> {
    let mut removed = cleanup::stray_processes(name, root, dry_run);
    if let Some(engine) = engine {
        removed.extend(cleanup::engine_objects(engine, name, root, false, dry_run)?);
        removed.extend(cleanup::image_volumes(engine, name, root, dry_run)?);
    }
    removed.push(Removal::new(name, "ledger", reason));
    Ok(removed)
}

/// Cleans up after every instance that died or whose root is gone; with `dry_run`,
/// only says what it would remove.
pub fn gc(context: &Context, dry_run: bool, progress: &dyn Progress) -> Result<Collected> {
    let engine = Engine::from_env()
        .ok()
        .filter(|engine| engine.version().is_ok());
    let entries = context.ledger.read()?.instances;
    let mut removed: Vec<Removal> = Vec::new();
    let mut dropped: Vec<String> = Vec::new();
    for entry in &entries {
        let name = &entry.name;
        let paths = InstancePaths::new(&entry.root, name);
        if !entry.root.is_dir() {
            // The worktree was deleted: nothing of the instance is worth keeping.
            let reason = format!("root `{}` is gone", entry.root.display());
            removed.extend(forget(
                engine.as_ref(),
                name,
                &entry.root,
                &reason,
                dry_run,
            )?);
            dropped.push(name.clone());
            continue;
        }
        let file = match InstanceFile::read(&paths.instance_json()) {
            Ok(file) => file,
            Err(error) => {
                // A damaged state file is reported, never taken for a dead instance.
                progress.warning(&format!("skipped `{name}`: {error}"));
                continue;
            }
        };
        let Some(file) = file else {
            // No instance.json and nobody working on it: the state directory was deleted
            // by hand, or the `up` that reserved it was killed before writing it; either
            // way its ports must not stay leased forever.
            let busy = FileLock::is_held(&paths.supervisor_lock())
                || FileLock::is_held(&context.ledger.operation_lock(name)?);
            if !busy {
                let reason = "it never started (no instance.json)";
                removed.extend(forget(engine.as_ref(), name, &entry.root, reason, dry_run)?);
                dropped.push(name.clone());
            }
            continue;
        };
        if file.is_orphaned() {
            // The supervisor died: stop what it left, keep the instance (and its ports).
            removed.extend(cleanup::stray_processes(name, &entry.root, true));
            if let Some(engine) = &engine {
                removed.extend(cleanup::engine_objects(
                    engine,
                    name,
                    &entry.root,
                    false,
                    true,
                )?);
            }
            if !dry_run {
                let _operation =
                    FileLock::acquire(&context.ledger.operation_lock(name)?, context.lock_timeout)?;
                lifecycle::stop(&paths)?;
                if let Some(engine) = &engine {
                    cleanup::engine_objects(engine, name, &entry.root, false, false)?;
                }
                let mut ledger = context.ledger.lock()?;
                ledger.mark_stopped(name);
                ledger.save()?;
            }
        }
    }
    // Containers and networks labelled by berth for an instance the ledger does not know
    // (at that root) any more.
    if let Some(engine) = &engine {
        let known: HashSet<(String, PathBuf)> = entries
            .iter()
            .filter(|entry| !dropped.contains(&entry.name))
            .map(|entry| (entry.name.clone(), entry.root.clone()))
            .collect();
        let mut orphans: HashSet<(String, PathBuf)> = HashSet::new();
        let owner = |labels: &std::collections::BTreeMap<String, String>| {
            Some((
                labels.get(LABEL_INSTANCE)?.clone(),
                PathBuf::from(labels.get(LABEL_ROOT)?),
            ))
        };
        let containers = engine.containers(&[], true).unwrap_or_default();
        let networks = engine.networks(&[]).unwrap_or_default();
        for labels in containers
            .iter()
            .map(|c| &c.labels)
            .chain(networks.iter().map(|n| &n.labels))
        {
            // An instance of another ledger (another BERTH_HOME) may be alive: only a
            // root that is gone, or an instance with no live supervisor, is an orphan.
            if let Some(pair) = owner(labels)
                && !known.contains(&pair)
                && !dropped.contains(&pair.0)
                && !FileLock::is_held(&InstancePaths::new(&pair.1, &pair.0).supervisor_lock())
            {
                orphans.insert(pair);
            }
        }
        for (name, root) in orphans {
            removed.extend(cleanup::engine_objects(
                engine, &name, &root, false, dry_run,
            )?);
        }
    }
    if !dry_run && !dropped.is_empty() {
        let mut ledger = context.ledger.lock()?;
        for name in &dropped {
            ledger.forget(name);
        }
        ledger.save()?;
    }
    removed.extend(idle_shared(context, &entries, &dropped, dry_run)?);
    Ok(Collected { dry_run, removed })
}

/// Stops a running shared instance none of whose users is still in the ledger (they were
/// removed, or dropped by this gc, without a `down` to take them off).
fn idle_shared(
    context: &Context,
    entries: &[crate::ledger::LedgerEntry],
    dropped: &[String],
    dry_run: bool,
) -> Result<Vec<Removal>> {
    let mut removed = Vec::new();
    for entry in entries
        .iter()
        .filter(|entry| entry.shared && !dropped.contains(&entry.name))
    {
        let used = entry
            .users
            .iter()
            .any(|user| !dropped.contains(user) && entries.iter().any(|other| &other.name == user));
        let paths = InstancePaths::new(&entry.root, &entry.name);
        if used || !FileLock::is_held(&paths.supervisor_lock()) {
            continue;
        }
        removed.push(Removal::new(
            &entry.name,
            "process",
            "the shared instance's services (no instance uses them)",
        ));
        if !dry_run {
            let _operation = FileLock::acquire(
                &context.ledger.operation_lock(&entry.name)?,
                context.lock_timeout,
            )?;
            lifecycle::stop(&paths)?;
            let mut ledger = context.ledger.lock()?;
            ledger.clear_users(&entry.name);
            ledger.save()?;
        }
    }
    Ok(removed)
}
