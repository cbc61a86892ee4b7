//! `berth logs`: service logs prefixed with the service name; `-f` follows them.

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
    let stream = logs::logs(context, &options, printer)?;
    let instance = stream.instance.clone();
    let format = LineFormat {
        json: printer.json(),
        instance: &instance,
        width: stream.width(),
    };
    let mut stdout = std::io::stdout();
    let mut sink =
        |service: &str, line: &[u8], seen| format.write(&mut stdout, service, line, seen);
    let follower = stream.tail(&mut sink, printer)?;
    if args.follow && !follower.closed {
        follower.follow(&AtomicBool::new(false), &mut sink)?;
    }
    Ok(())
}
