//! `berth ls`: every instance the ledger knows, with liveness and stale marks.

use crate::context::Context;
use crate::error::Result;
use crate::ledger::LedgerEntry;
use crate::output::{self, GitView, LsRow};
use crate::state::{FileLock, InstanceFile, InstancePaths, InstanceState};

pub fn run(context: &Context) -> Result<()> {
    let ledger = context.ledger.read()?;
    let rows: Vec<LsRow> = ledger
        .instances
        .iter()
        .map(|entry| {
            let root_exists = entry.root.is_dir();
            // The supervisor holds its lock for as long as it lives: no PID to trust.
            let running = root_exists
                && FileLock::is_held(
                    &InstancePaths::new(&entry.root, &entry.name).supervisor_lock(),
                );
            let state = match (root_exists, running) {
                (false, _) => "stale: root gone",
                (true, true) => "running",
                // The supervisor died: reap what it left now, so the listing is true
                // and the instance's ports are free for its next `up`.
                (true, false) if entry.started_at.is_some() => match reap(context, entry) {
                    Ok(true) => "crashed",
                    Ok(false) => "stopped",
                    Err(error) => {
                        output::note(&format!(
                            "warning: cannot clean up after `{}`: {error}",
                            entry.name
                        ));
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
        })
        .collect();
    output::emit(context.json, &rows, |rows| LsRow::render(rows))
}

/// Reaps an instance whose supervisor died; true when it had crashed.
fn reap(context: &Context, entry: &LedgerEntry) -> Result<bool> {
    let paths = InstancePaths::new(&entry.root, &entry.name);
    let Some(mut file) = InstanceFile::read(&paths.instance_json())? else {
        return Ok(false);
    };
    context.reap_if_orphaned(&paths, &mut file)?;
    Ok(file.state == InstanceState::Crashed)
}
