//! `berth down`: stop every process and container of the instance; keep data (volumes
//! too, unless --volumes), and leases unless --release.

use crate::cli::DownArgs;
use crate::context::Context;
use crate::error::Result;
use crate::lifecycle;
use crate::output;
use crate::state::FileLock;

pub fn run(context: &Context, args: &DownArgs) -> Result<()> {
    let selected = context.select()?;
    let name = selected.entry.name.clone();
    let stopped = {
        let _operation = FileLock::acquire(
            &context.ledger.operation_lock(&selected.entry.name)?,
            context.lock_timeout,
        )?;
        let stopped = lifecycle::stop(&selected.paths)?;
        if let Some(file) = &stopped
            && args.volumes
        {
            lifecycle::remove_containers(file, true)?;
        }
        stopped
    };
    if let Some(file) = &stopped {
        super::shared::release(context, file)?;
    }
    let mut ledger = context.ledger.lock()?;
    if let Some(entry) = ledger.data.find_mut(&name) {
        entry.started_at = None;
        if args.release {
            entry.leases.clear();
        }
        ledger.save()?;
    }
    drop(ledger);
    let released = if args.release { "; ports released" } else { "" };
    if context.json {
        output::print_json(
            &serde_json::json!({ "name": name, "state": "stopped", "released": args.release }),
        )?;
    } else {
        output::note(&format!("stopped `{name}`{released}"));
    }
    Ok(())
}
