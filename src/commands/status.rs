//! `berth status`: this instance's services, states, ports, PIDs or containers, restarts.

use crate::context::Context;
use crate::error::Result;
use crate::instance;
use crate::output::{Printer, views};

pub fn run(context: &Context, printer: &Printer) -> Result<()> {
    let status = instance::status(context, printer)?;
    Ok(printer.data(&status, views::status)?)
}
