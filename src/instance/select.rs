//! Choosing the instance a command acts on, and stopping what a dead supervisor left
//! behind ("the next berth command reaps it") before anything else looks at it.

use super::Progress;
use crate::context::{Context, Selector};
use crate::error::{Error, Result};
use crate::ledger::{Ledger, LedgerEntry};
use crate::state::{FileLock, InstanceFile, InstancePaths};
use crate::supervisor;

/// An existing instance: its ledger entry and, once it has been started, its state file.
pub struct Selected {
    pub entry: LedgerEntry,
    pub paths: InstancePaths,
    pub file: Option<InstanceFile>,
}

impl Selected {
    /// The instance's state file, or a usage error when it has never been started.
    pub fn started(&self) -> Result<&InstanceFile> {
        self.file.as_ref().ok_or_else(|| {
            Error::usage(
                format!("`{}` has never been started", self.entry.name),
                Some("run `berth up`".to_string()),
            )
        })
    }

    /// Like [`Selected::started`], and every name in `services` must be one of its services.
    pub fn started_with(&self, services: &[String]) -> Result<&InstanceFile> {
        let file = self.started()?;
        match services
            .iter()
            .find(|name| !file.services.contains_key(*name))
        {
            Some(unknown) => Err(Error::usage(
                format!("`{unknown}` is not a service of `{}`", file.name),
                Some(format!(
                    "services: {}",
                    file.services.keys().cloned().collect::<Vec<_>>().join(", ")
                )),
            )),
            None => Ok(file),
        }
    }
}

/// The instance the command acts on, as the selector says. If its supervisor died
/// and left processes behind, they are stopped first.
pub fn select(context: &Context, progress: &dyn Progress) -> Result<Selected> {
    let ledger = context.ledger.read()?;
    let entry = match &context.selector {
        Selector::Name(name) => ledger.find(name).cloned().ok_or_else(|| {
            Error::usage(
                format!("no instance named `{name}`"),
                Some("`berth ls` lists every instance".to_string()),
            )
        })?,
        selector => {
            let root = context.project_root()?;
            let here: Vec<&LedgerEntry> = ledger.at_root(&root).collect();
            let chosen = match selector {
                Selector::Index(index) => here.iter().find(|entry| entry.index == *index),
                _ if here.len() == 1 => here.first(),
                _ => None,
            };
            match (chosen, here.len()) {
                (Some(entry), _) => (*entry).clone(),
                (None, 0) => {
                    return Err(Error::usage(
                        format!("no instance of `{}` yet", root.display()),
                        Some("run `berth up` first".to_string()),
                    ));
                }
                (None, _) => {
                    let names: Vec<String> = here
                        .iter()
                        .map(|entry| format!("{} (index {})", entry.name, entry.index))
                        .collect();
                    return Err(Error::usage(
                        format!(
                            "`{}` has several instances: {}",
                            root.display(),
                            names.join(", ")
                        ),
                        Some("pick one with --name NAME or --instance N".to_string()),
                    ));
                }
            }
        }
    };
    let paths = InstancePaths::new(&entry.root, &entry.name);
    let mut file = InstanceFile::read(&paths.instance_json())?;
    if let Some(current) = &mut file {
        reap_if_orphaned(context, &paths, current, progress)?;
    }
    Ok(Selected { entry, paths, file })
}

/// The project of the selected instance, else the project in the current directory
/// (snapshots, dumps and `--all` reach instances the directory has none of).
pub(super) fn project_name(context: &Context, progress: &dyn Progress) -> Result<String> {
    match select(context, progress) {
        Ok(selected) => Ok(selected.entry.project),
        Err(error) if context.selector != Selector::Only => Err(error),
        Err(_) => {
            let root = context.project_root()?;
            Ok(crate::compose::load_project(&root)?.0.project)
        }
    }
}

/// Every instance of the project (see [`project_name`]), the ones that use a shared
/// instance before it, so stopping them in order never stops what another still uses.
pub(super) fn project_instances(
    context: &Context,
    progress: &dyn Progress,
) -> Result<Vec<LedgerEntry>> {
    let project = project_name(context, progress)?;
    let mut entries: Vec<LedgerEntry> = context
        .ledger
        .read()?
        .instances
        .into_iter()
        .filter(|entry| entry.project == project)
        .collect();
    entries.sort_by(|a, b| (a.shared, a.index, &a.name).cmp(&(b.shared, b.index, &b.name)));
    if entries.is_empty() {
        return Err(Error::usage(
            format!("project `{project}` has no instances"),
            Some("`berth ls` lists every instance".to_string()),
        ));
    }
    Ok(entries)
}

/// Runs `operation` on every entry (an `--all` operation): each is tried, a failure is a
/// warning naming the instance, and the first error is returned once all were tried.
pub(super) fn for_each_instance<T>(
    entries: Vec<LedgerEntry>,
    progress: &dyn Progress,
    mut operation: impl FnMut(&LedgerEntry) -> Result<T>,
) -> Result<Vec<T>> {
    let mut done = Vec::new();
    let mut first_error = None;
    for entry in entries {
        match operation(&entry) {
            Ok(one) => done.push(one),
            Err(error) => {
                progress.warning(&format!("`{}`: {error}", entry.name));
                first_error.get_or_insert(error);
            }
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(done),
    }
}

/// Stops processes and containers left by a dead supervisor ("the next berth command
/// reaps it"), under the instance's operation lock.
pub fn reap_if_orphaned(
    context: &Context,
    paths: &InstancePaths,
    file: &mut InstanceFile,
    progress: &dyn Progress,
) -> Result<()> {
    if !file.is_orphaned() {
        return Ok(());
    }
    let _lock = FileLock::acquire(
        &context.ledger.operation_lock(&file.name)?,
        context.lock_timeout,
    )?;
    reap_orphaned_locked(&context.ledger, paths, file, progress)
}

/// Like [`reap_if_orphaned`], for a caller that already holds the instance's
/// operation lock (taking it again would wait on itself).
pub fn reap_orphaned_locked(
    ledger: &Ledger,
    paths: &InstancePaths,
    file: &mut InstanceFile,
    progress: &dyn Progress,
) -> Result<()> {
    if !file.is_orphaned() {
        return Ok(());
    }
    let Some(mut fresh) = InstanceFile::read(&paths.instance_json())? else {
        return Ok(());
    };
    let ignored_pids = fresh.services.values().any(|record| record.pid.is_some())
        && !fresh.pids_trusted()
        && supervisor::instance_cgroup(&fresh).is_none();
    if supervisor::reap_orphans(&mut fresh) {
        if ignored_pids {
            progress.warning(&format!(
                "`{}` was not written by berth under this BERTH_HOME (its seal does \
             not match): the process IDs in it were ignored",
                paths.instance_json().display()
            ));
        }
        fresh.write(&paths.instance_json())?;
        let mut locked = ledger.lock()?;
        if locked.mark_stopped(&fresh.name) {
            locked.save()?;
        }
        drop(locked);
        // Its containers outlived it too: the supervisor would have taken them down.
        let containers = super::lifecycle::remove_containers(&fresh, false).or_else(|error| {
            // The Compose tool failed (a busy engine, say): remove them by their labels,
            // which needs no Compose tool, and say why.
            progress.note(&format!(
                "`compose down` failed ({error}); removing the containers by their labels"
            ));
            let engine =
                crate::docker::Engine::from_env().map_err(crate::compose::ComposeError::from)?;
            crate::cleanup::engine_objects(&engine, &fresh.name, &fresh.root, false, false)
                .map(drop)
                .map_err(crate::Error::from)
        });
        progress.note(&format!(
            "the supervisor of `{}` had died; stopped the processes{} it left",
            fresh.name,
            if fresh.compose.is_some() {
                " and containers"
            } else {
                ""
            }
        ));
        containers?;
        *file = fresh;
    }
    Ok(())
}
