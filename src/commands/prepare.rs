//! `berth prepare`: the instance's ports leased and its files written, nothing started.

use crate::cli::PrepareArgs;
use crate::context::Context;
use crate::error::Result;
use crate::instance::{UpOptions, up};
use crate::output::{Printer, views};

pub fn run(context: &Context, printer: &Printer, args: &PrepareArgs) -> Result<()> {
    let options = UpOptions {
        port_offset: args.port_offset,
        strict_ports: args.strict_ports,
        ..UpOptions::plain(Vec::new())
    };
    let status = up::prepare(context, &options, printer)?;
    Ok(printer.data(&status, views::status)?)
}
