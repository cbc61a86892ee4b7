//! `berth port SERVICE [NAME]` and `berth url SERVICE [NAME] [--direct]`: one value, for
//! scripts.

use crate::cli::{PortArgs, UrlArgs};
use crate::context::Context;
use crate::error::Result;
use crate::instance::address;
use crate::output::Printer;

pub fn run_port(context: &Context, printer: &Printer, args: &PortArgs) -> Result<()> {
    let port = address::port(context, &args.service, args.port_name.as_deref(), printer)?;
    Ok(printer.data(&port, |port| format!("{}\n", port.port))?)
}

pub fn run_url(context: &Context, printer: &Printer, args: &UrlArgs) -> Result<()> {
    let url = address::url(
        context,
        &args.target.service,
        args.target.port_name.as_deref(),
        args.direct,
        printer,
    )?;
    Ok(printer.data(&url, |url| format!("{}\n", url.url))?)
}
