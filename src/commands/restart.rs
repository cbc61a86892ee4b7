//! `berth restart [SERVICE…]`: restart services and wait until they are ready.

use std::time::Duration;

use crate::cli::RestartArgs;
use crate::context::Context;
use crate::error::Result;
use crate::instance;
use crate::output::{Printer, views};

pub fn run(context: &Context, printer: &Printer, args: &RestartArgs) -> Result<()> {
    let timeout = Duration::from_secs(args.timeout);
    let status = instance::restart(context, &args.services, timeout, printer)?;
    Ok(printer.data(&status, views::status)?)
}
