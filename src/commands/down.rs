//! `berth down`: stop every process and container of the instance; keep data (volumes
//! too, unless --volumes), and leases unless --release.

use crate::cli::DownArgs;
use crate::context::Context;
use crate::error::Result;
use crate::instance::{self, DownOptions};
use crate::output::Printer;

pub fn run(context: &Context, printer: &Printer, args: &DownArgs) -> Result<()> {
    let options = DownOptions {
        volumes: args.volumes,
        release: args.release,
    };
    let stopped = instance::down(context, &options, printer)?;
    if printer.json() {
        printer.json_value(&stopped)?;
    } else {
        let released = if stopped.released {
            "; ports released"
        } else {
            ""
        };
        printer.result(&format!("stopped `{}`{released}", stopped.name));
    }
    Ok(())
}
