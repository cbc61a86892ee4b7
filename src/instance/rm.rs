//! `rm`: everything of the instance (processes, containers, networks, its own volumes,
//! state directory, port leases) and nothing else.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::select::{for_each_instance, project_instances};
use super::{Progress, lifecycle, select, shared};
use crate::cleanup::{self, Removal};
use crate::context::Context;
use crate::docker::Engine;
use crate::envfiles;
use crate::error::{Error, Result};
use crate::ledger::LedgerEntry;
use crate::state::FileLock;

/// What `rm` removed.
#[derive(Debug, Serialize)]
pub struct RemovedInstance {
    pub name: String,
    pub removed: Vec<Removal>,
}

/// Asked once the instance is chosen, before anything is removed: may it go? (`berth rm`
/// asks on a terminal.)
pub type Confirm<'a> = &'a dyn Fn(&str, &Path) -> Result<bool>;

/// Asked once for every instance of `rm --all`, with their names and roots.
pub type ConfirmAll<'a> = &'a dyn Fn(&[(String, PathBuf)]) -> Result<bool>;

/// Removes every instance of the project (`rm --all`), once `confirm` agrees to the
/// list, the users of a shared instance before it. Each is tried; the first error is
/// returned once all were.
pub fn rm_all(
    context: &Context,
    confirm: ConfirmAll,
    progress: &dyn Progress,
) -> Result<Vec<RemovedInstance>> {
    let entries = project_instances(context, progress)?;
    let listed: Vec<(String, PathBuf)> = entries
        .iter()
        .map(|entry| (entry.name.clone(), entry.root.clone()))
        .collect();
    if !confirm(&listed)? {
        return Err(Error::usage(
            format!("kept {} instances", listed.len()),
            Some("pass --yes to remove without asking".to_string()),
        ));
    }
    for_each_instance(entries, progress, |entry| {
        let one = context.for_instance(&entry.name, &entry.root);
        rm(&one, &|_, _| Ok(true), progress)
    })
}

/// Removes the selected instance, once `confirm` agrees.
pub fn rm(context: &Context, confirm: Confirm, progress: &dyn Progress) -> Result<RemovedInstance> {
    let selected = select(context, progress)?;
    let name = selected.entry.name.clone();
    let root = selected.entry.root.clone();
    if !confirm(&name, &root)? {
        return Err(Error::usage(
            format!("kept `{name}`"),
            Some("pass --yes to remove without asking".to_string()),
        ));
    }
    if selected.entry.shared {
        let users = shared::users(context, &selected.entry)?;
        if !users.is_empty() {
            return Err(Error::usage(
                format!(
                    "the shared instance `{name}` is used by {}",
                    users.join(", ")
                ),
                Some("`berth rm` or `berth down` those instances first".to_string()),
            ));
        }
    }
    let mut removed: Vec<Removal> = Vec::new();
    // From the ledger, never from the work tree's instance.json.
    let env_targets: Vec<std::path::PathBuf> = selected.entry.env_files.clone();
    // Held until the ledger forgets the instance: an `up` racing this `rm` waits, then
    // finds the instance gone and reserves it afresh.
    let _operation =
        FileLock::acquire(&context.ledger.operation_lock(&name)?, context.lock_timeout)?;
    if root.is_dir() {
        let stopped = lifecycle::stop(&selected.paths)?;
        if let Some(file) = &stopped {
            shared::drop_resources(context, file, progress)?;
            shared::release(context, file, progress)?;
        }
        if let Some(file) = stopped {
            for (service, record) in &file.services {
                if record.active {
                    removed.push(Removal::new(&name, "service", service.clone()));
                }
            }
        }
        removed.extend(remove_env_files(context, &selected.entry, progress)?);
    }
    removed.extend(cleanup::stray_processes(&name, &root, false));
    // The engine is needed only if the instance ever had containers.
    let had_compose = selected
        .file
        .as_ref()
        .is_some_and(|file| file.compose.is_some());
    match Engine::from_env() {
        Ok(engine) => match cleanup::engine_objects(&engine, &name, &root, true, false) {
            Ok(objects) => removed.extend(objects),
            Err(error) if had_compose => return Err(error.into()),
            Err(_) => {}
        },
        Err(error) if had_compose => return Err(crate::compose::ComposeError::from(error).into()),
        Err(_) => {}
    }
    if root.is_dir() {
        removed.extend(cleanup::state_dir(&name, &root, false)?);
    }
    let mut ledger = context.ledger.lock()?;
    if let Some(entry) = ledger.forget(&name) {
        for lease in &entry.leases {
            removed.push(Removal::new(
                &name,
                "lease",
                format!("{} ({}.{})", lease.port, lease.service, lease.port_name),
            ));
        }
        ledger.save()?;
        removed.push(Removal::new(&name, "ledger", name.clone()));
    }
    // Nothing of the instance stays in the work tree: the `.berth/` it leaves empty, and
    // the exclude lines berth added for it, unless another instance in the same
    // repository still needs them (git reads one exclude file for every worktree).
    if root.is_dir() {
        let berth_dir = root.join(".berth");
        if ledger.data().at_root(&root).next().is_none() {
            // The Compose resolution cache is the root's, not the instance's.
            let _ = std::fs::remove_file(crate::compose::cache_path(&root));
        }
        // Fails, as it should, while another instance's directory is still inside.
        let _ = std::fs::remove_dir(&berth_dir);
        let exclude = crate::git::exclude_file(&root);
        let shared = ledger
            .data()
            .instances
            .iter()
            .any(|other| exclude.is_some() && crate::git::exclude_file(&other.root) == exclude);
        if !shared {
            let patterns = std::iter::once(".berth/".to_string()).chain(
                env_targets
                    .iter()
                    .filter_map(|target| crate::git::exclude_pattern(target)),
            );
            for pattern in patterns {
                crate::git::unexclude(&root, &pattern)?;
            }
        }
    }
    drop(ledger);
    Ok(RemovedInstance { name, removed })
}

/// The env files the ledger records berth wrote for this instance, unless another
/// instance of the root records one too (it shares a fixed `target`). A file there that
/// no longer starts with berth's header, or that is reached through a symlink, is kept.
fn remove_env_files(
    context: &Context,
    entry: &LedgerEntry,
    progress: &dyn Progress,
) -> Result<Vec<Removal>> {
    let ledger = context.ledger.read()?;
    let shared: Vec<&std::path::PathBuf> = ledger
        .at_root(&entry.root)
        .filter(|other| other.name != entry.name)
        .flat_map(|other| &other.env_files)
        .collect();
    let mut removed = Vec::new();
    for path in entry.env_files.iter().filter(|path| !shared.contains(path)) {
        match envfiles::remove(&entry.root, path) {
            Ok(true) => removed.push(Removal::new(
                &entry.name,
                "env file",
                path.display().to_string(),
            )),
            Ok(false) => {}
            Err(reason) => progress.note(&format!("kept `{}`: {reason}", path.display())),
        }
    }
    Ok(removed)
}
