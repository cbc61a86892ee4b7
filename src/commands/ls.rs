//! `berth ls`: every instance the ledger knows, with liveness and stale marks.

use crate::context::Context;
use crate::error::Result;
use crate::instance;
use crate::output::{Printer, views};

pub fn run(context: &Context, printer: &Printer) -> Result<()> {
    let rows = instance::list(context, printer)?;
    Ok(printer.data(&rows, |rows| views::instances(rows))?)
}
