//! `berth logs`: service logs prefixed with the service name (and the instance's with
//! `--all`); `-f` follows them.

use std::sync::atomic::AtomicBool;

use crate::cli::LogsArgs;
use crate::context::Context;
use crate::error::Result;
use crate::instance::logs::{self, LogsOptions};
use crate::output::{LineFormat, Printer};

pub fn run(context: &Context, printer: &Printer, args: &LogsArgs) -> Result<()> {
    let options = LogsOptions {
        services: args.services.clone(),
        lines: args.lines,
        since_start: args.since_start,
    };
    let stream = match args.all {
        true => logs::logs_all(context, &options, printer)?,
        false => logs::logs(context, &options, printer)?,
    };
    let format = LineFormat {
        json: printer.json(),
        with_instance: args.all,
        width: stream.width(args.all),
    };
    let mut stdout = std::io::stdout();
    let mut sink = |instance: &str, service: &str, line: &[u8], seen| {
        format.write(&mut stdout, instance, service, line, seen)
    };
    let follower = stream.tail(&mut sink, printer)?;
    if args.follow && !follower.closed {
        follower.follow(&AtomicBool::new(false), &mut sink)?;
    }
    Ok(())
}
