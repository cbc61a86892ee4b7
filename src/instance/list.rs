//! `ls`: every instance the ledger knows, with liveness and stale marks; an instance
//! whose supervisor died is reaped on the way, so the listing is true.

use super::reap_if_orphaned;
use super::{GitView, LsRow, Progress};
use crate::context::Context;
use crate::error::Result;
use crate::ledger::LedgerEntry;
use crate::state::{FileLock, InstanceFile, InstancePaths, InstanceState};

/// Every instance on this machine.
pub fn list(context: &Context, progress: &dyn Progress) -> Result<Vec<LsRow>> {
    let ledger = context.ledger.read()?;
    Ok(ledger
        .instances
        .iter()
        .map(|entry| row(context, entry, progress))
        .collect())
}

fn row(context: &Context, entry: &LedgerEntry, progress: &dyn Progress) -> LsRow {
    let root_exists = entry.root.is_dir();
    // The supervisor holds its lock for as long as it lives: no PID to trust.
    let running = root_exists
        && FileLock::is_held(&InstancePaths::new(&entry.root, &entry.name).supervisor_lock());
    let state = match (root_exists, running) {
        (false, _) => "stale: root gone",
        (true, true) => "running",
        // The supervisor died: reap what it left now, so the listing is true and the
        // instance's ports are free for its next `up`.
        (true, false) if entry.started_at.is_some() => match reap(context, entry, progress) {
            Ok(true) => "crashed",
            Ok(false) => "stopped",
            Err(error) => {
                progress.warning(&format!("cannot clean up after `{}`: {error}", entry.name));
                "stale: supervisor dead"
            }
        },
        (true, false) => "stopped",
    };
    LsRow {
        name: entry.name.clone(),
        project: entry.project.clone(),
        index: entry.index,
        root: entry.root.clone(),
        state: state.to_string(),
        stale: state.starts_with("stale"),
        port_offset: entry.port_offset,
        ports: entry.leases.iter().map(|lease| lease.port).collect(),
        started_at: entry.started_at.clone(),
        git: root_exists
            .then(|| GitView::of(entry.git.as_ref(), &entry.root))
            .flatten(),
        shared: entry.shared,
        users: entry.users.clone(),
    }
}

/// Reaps an instance whose supervisor died; true when it had crashed.
fn reap(context: &Context, entry: &LedgerEntry, progress: &dyn Progress) -> Result<bool> {
    let paths = InstancePaths::new(&entry.root, &entry.name);
    let Some(mut file) = InstanceFile::read(&paths.instance_json())? else {
        return Ok(false);
    };
    reap_if_orphaned(context, &paths, &mut file, progress)?;
    Ok(file.state == InstanceState::Crashed)
}
