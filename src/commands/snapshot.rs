//! `berth snapshot save|restore|ls|rm`.

use crate::cli::{SnapshotArgs, SnapshotCommand};
use crate::context::Context;
use crate::error::Result;
use crate::instance::snapshot::{self, SaveOptions};
use crate::output::{Printer, snapshots};

pub fn run(context: &Context, printer: &Printer, args: &SnapshotArgs) -> Result<()> {
    match &args.command {
        SnapshotCommand::Save {
            snapshot: name,
            services,
            force,
        } => {
            let options = SaveOptions {
                name: name.clone(),
                services: services.clone(),
                force: *force,
            };
            let manifest = snapshot::save(context, &options, printer)?;
            printer.data(&manifest, snapshots::saved)?;
        }
        SnapshotCommand::Restore {
            snapshot: name,
            force,
        } => {
            let restored = snapshot::restore(context, name, *force, printer)?;
            printer.data(&restored, snapshots::restored)?;
        }
        SnapshotCommand::Ls => {
            let list = snapshot::list(context, printer)?;
            printer.data(&list.snapshots, |found| {
                snapshots::list(&list.project, found)
            })?;
        }
        SnapshotCommand::Rm { snapshot: name } => {
            let removed = snapshot::remove(context, name, printer)?;
            if printer.json() {
                printer.json_value(&removed)?;
            } else {
                printer.result(&format!(
                    "removed snapshot `{}` of `{}`",
                    removed.removed, removed.project
                ));
            }
        }
    }
    Ok(())
}
