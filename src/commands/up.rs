//! `berth up`: bring the instance up, print it; with `--attach`, follow its logs until
//! Ctrl-C, then bring it down.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::cli::UpArgs;
use crate::context::Context;
use crate::error::Result;
use crate::instance::{self, UpOptions};
use crate::output::{LineFormat, Printer, views};

pub fn run(context: &Context, printer: &Printer, args: &UpArgs) -> Result<()> {
    // With --attach, Ctrl-C at any moment (even while starting) brings the instance down,
    // so the handler is installed before anything starts.
    let interrupted = if args.attach {
        Some(interrupt_flag()?)
    } else {
        None
    };
    let options = UpOptions {
        services: args.services.clone(),
        port_offset: args.port_offset,
        strict_ports: args.strict_ports,
        timeout: Duration::from_secs(args.timeout),
        from: args.from.clone(),
    };
    let status = instance::up(context, &options, printer)?;
    printer.data(&status, views::status)?;
    let Some(stop) = interrupted else {
        return Ok(());
    };
    printer.result("attached; press Ctrl-C to stop the instance");
    let file = instance::select(context, printer)?;
    let file = file.started()?;
    let width = file.services.keys().map(String::len).max().unwrap_or(0);
    let format = LineFormat {
        json: printer.json(),
        with_instance: false,
        width,
    };
    let mut stdout = std::io::stdout();
    instance::logs::attach(
        context,
        file,
        &stop,
        &mut |instance, service, line, seen| {
            format.write(&mut stdout, instance, service, line, seen)
        },
    )?;
    printer.result(&format!("stopped `{}`", file.name));
    Ok(())
}

/// A flag set by SIGINT or SIGTERM (instead of the default of dying at once).
fn interrupt_flag() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&flag))?;
    }
    Ok(flag)
}
