//! `berth init`: write a commented berth.toml from what the directory holds.

use crate::cli::InitArgs;
use crate::context::Context;
use crate::error::Result;
use crate::instance;
use crate::output::Printer;

pub fn run(context: &Context, printer: &Printer, args: &InitArgs) -> Result<()> {
    let written = instance::init(context, args.procfile.as_deref())?;
    if printer.json() {
        return Ok(printer.json_value(&written)?);
    }
    printer.text(&written.config)?;
    let path = written.written.display();
    printer.result(&format!("wrote `{path}`; `berth up` starts it"));
    Ok(())
}
