//! `berth down`: stop every process and container of the instance (of every instance of
//! the project with --all); keep data (volumes too, unless --volumes), and leases unless
//! --release.

use crate::cli::DownArgs;
use crate::context::Context;
use crate::error::Result;
use crate::instance::{self, DownOptions, Stopped};
use crate::output::Printer;

pub fn run(context: &Context, printer: &Printer, args: &DownArgs) -> Result<()> {
    let options = DownOptions {
        volumes: args.volumes,
        release: args.release,
    };
    if args.all {
        let stopped = instance::down::down_all(context, &options, printer)?;
        if printer.json() {
            return Ok(printer.json_value(&stopped)?);
        }
        for one in &stopped {
            printer.result(&describe(one));
        }
        return Ok(());
    }
    let stopped = instance::down(context, &options, printer)?;
    match printer.json() {
        true => printer.json_value(&stopped)?,
        false => printer.result(&describe(&stopped)),
    }
    Ok(())
}

fn describe(stopped: &Stopped) -> String {
    let released = if stopped.released {
        "; ports released"
    } else {
        ""
    };
    format!("stopped `{}`{released}", stopped.name)
}
