//! `down`: stop every process and container of the instance; keep its data (volumes
//! too, unless asked), and its leases unless asked.

use schemars::JsonSchema;
use serde::Serialize;

use super::Progress;
use super::select::{for_each_instance, project_instances};
use super::{lifecycle, select, shared};
use crate::context::Context;
use crate::error::Result;
use crate::state::FileLock;

/// What `down` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct DownOptions {
    /// Also delete the instance's own volumes.
    pub volumes: bool,
    /// Also give up the instance's port leases.
    pub release: bool,
}

/// What `down` did.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Stopped {
    pub name: String,
    pub state: &'static str,
    pub released: bool,
}

/// Stops the selected instance.
pub fn down(context: &Context, options: &DownOptions, progress: &dyn Progress) -> Result<Stopped> {
    let selected = select(context, progress)?;
    let name = selected.entry.name.clone();
    let stopped = {
        let _operation =
            FileLock::acquire(&context.ledger.operation_lock(&name)?, context.lock_timeout)?;
        let stopped = lifecycle::stop(&selected.paths)?;
        if let Some(file) = &stopped
            && options.volumes
        {
            lifecycle::remove_containers(file, true)?;
        }
        stopped
    };
    if let Some(file) = &stopped {
        shared::release(context, file, progress)?;
    }
    let mut ledger = context.ledger.lock()?;
    if ledger.mark_stopped(&name) {
        if options.release {
            ledger.release_leases(&name);
        }
        ledger.save()?;
    }
    Ok(Stopped {
        name,
        state: "stopped",
        released: options.release,
    })
}

/// Stops every instance of the project (`down --all`), the users of a shared instance
/// before it. Each is tried; the first error is returned once all were.
pub fn down_all(
    context: &Context,
    options: &DownOptions,
    progress: &dyn Progress,
) -> Result<Vec<Stopped>> {
    for_each_instance(project_instances(context, progress)?, progress, |entry| {
        down(
            &context.for_instance(&entry.name, &entry.root),
            options,
            progress,
        )
    })
}
