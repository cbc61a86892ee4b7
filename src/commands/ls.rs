//! `berth ls`: every instance the ledger knows, with liveness and stale marks.

use crate::context::Context;
use crate::error::Result;
use crate::output::{self, GitView, LsRow};
use crate::state::{FileLock, InstancePaths};

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
                (true, false) if entry.started_at.is_some() => "stale: supervisor dead",
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
