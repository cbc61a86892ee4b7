//! Where `up --from` copies a new instance's data from: another instance of the
//! project, or a snapshot.

use std::path::Path;

use super::Progress;
use super::copy::{apply, capture};
use super::snapshot::{COPYING, no_snapshot, with_stopped};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::ledger::LedgerEntry;
use crate::snapshot::Store;
use crate::snapshot::store::validate_name;
use crate::state::{InstanceFile, InstancePaths};

/// Where `up --from` copies from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    Instance(Box<LedgerEntry>),
    Snapshot(String),
}

/// Resolves `--from`: `instance:NAME`, `snapshot:NAME`, or a bare name that is one of the
/// two (an error when it is both, or neither).
pub(super) fn resolve_source(context: &Context, project: &str, text: &str) -> Result<Source> {
    let store = Store::new(context.ledger.dir(), project);
    let ledger = context.ledger.read()?;
    let instance = |name: &str| -> Result<Option<Source>> {
        match ledger.find(name) {
            Some(entry) if entry.project == project => {
                Ok(Some(Source::Instance(Box::new(entry.clone()))))
            }
            Some(entry) => Err(Error::usage(
                format!(
                    "instance `{name}` belongs to project `{}`, not `{project}`",
                    entry.project
                ),
                Some("copy only between instances of one project".to_string()),
            )),
            None => Ok(None),
        }
    };
    let snapshot = |name: &str| -> Result<Option<Source>> {
        validate_name(name)?;
        Ok(store
            .get(name)?
            .map(|manifest| Source::Snapshot(manifest.name)))
    };
    let found = if let Some(name) = text.strip_prefix("instance:") {
        instance(name)?
    } else if let Some(name) = text.strip_prefix("snapshot:") {
        snapshot(name)?
    } else {
        match (instance(text)?, snapshot(text).ok().flatten()) {
            (Some(_), Some(_)) => {
                return Err(Error::usage(
                    format!("`{text}` is both an instance and a snapshot of `{project}`"),
                    Some(format!("say `instance:{text}` or `snapshot:{text}`")),
                ));
            }
            (found, None) | (None, found) => found,
        }
    };
    found.ok_or_else(|| {
        Error::usage(
            format!("no instance or snapshot named `{text}` in project `{project}`"),
            Some("`berth ls` lists instances, `berth snapshot ls` snapshots".to_string()),
        )
    })
}

/// Copies `source`'s data into the new instance `file` (stopped, never run): straight
/// from a snapshot, or from another instance through a temporary snapshot (that
/// instance is stopped for the copy if it runs, and started again).
pub(super) fn seed(
    context: &Context,
    source: &Source,
    file: &InstanceFile,
    progress: &dyn Progress,
) -> Result<()> {
    let store = Store::new(context.ledger.dir(), &file.project);
    let restored = match source {
        Source::Snapshot(name) => {
            let _lock = store.lock(context.lock_timeout)?;
            let manifest = store.get(name)?.ok_or_else(|| no_snapshot(name, &store))?;
            apply(&store.path(name), &manifest, file, progress)?
        }
        Source::Instance(entry) => {
            let staging = store.begin(&format!("clone-of-{}", entry.name))?;
            let manifest = with_stopped(context, entry, COPYING, progress, |source| {
                capture(source, &[], staging.name(), &staging.dir, progress)
            })?;
            apply(&staging.dir, &manifest, file, progress)?
        }
    };
    let from = match source {
        Source::Snapshot(name) => format!("snapshot `{name}`"),
        Source::Instance(entry) => format!("instance `{}`", entry.name),
    };
    let what = if restored.is_empty() {
        "nothing to copy".to_string()
    } else {
        restored.join(", ")
    };
    progress.note(&format!("`{}` starts from {from}: {what}", file.name));
    Ok(())
}

/// Whether the instance already has data of its own: files in its data directory, or
/// named volumes carrying its labels.
pub(super) fn has_data(paths: &InstancePaths, name: &str, root: &Path) -> Result<bool> {
    let files = std::fs::read_dir(paths.data())
        .map(|mut entries| entries.next().is_some())
        .unwrap_or(false);
    if files {
        return Ok(true);
    }
    let Ok(engine) = crate::docker::Engine::from_env() else {
        return Ok(false);
    };
    let root = root.display().to_string();
    let labels = [
        (crate::compose::LABEL_INSTANCE, name),
        (crate::compose::LABEL_ROOT, root.as_str()),
    ];
    Ok(engine
        .volumes(&labels)
        .map(|found| !found.is_empty())
        .unwrap_or(false))
}
