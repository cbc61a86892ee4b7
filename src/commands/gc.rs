//! `berth gc [--dry-run]`: clean up after instances that died or whose root is gone.

use crate::cleanup;
use crate::cli::GcArgs;
use crate::context::Context;
use crate::error::Result;
use crate::instance;
use crate::output::Printer;

pub fn run(context: &Context, printer: &Printer, args: &GcArgs) -> Result<()> {
    let collected = instance::gc(context, args.dry_run, printer)?;
    if printer.json() {
        return Ok(printer.json_value(&collected)?);
    }
    let verb = if collected.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let mut lines = String::new();
    for removal in &collected.removed {
        lines += &format!(
            "{verb} {} of `{}`: {}\n",
            removal.kind, removal.instance, removal.what
        );
    }
    printer.text(&lines)?;
    let summary = cleanup::summary(&collected.removed);
    printer.result(&format!("gc {verb} {summary}"));
    Ok(())
}
