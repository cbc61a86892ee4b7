//! `berth router start|stop|status|trust|hosts`.

use crate::cli::{RouterArgs, RouterCommand};
use crate::context::Context;
use crate::error::Result;
use crate::instance::router::{self, HostsAction, StartOptions};
use crate::output::{Printer, router as views};

pub fn run(context: &Context, printer: &Printer, args: &RouterArgs) -> Result<()> {
    match &args.command {
        RouterCommand::Start(start) => {
            let status = router::start(
                context,
                StartOptions {
                    port: start.port,
                    https: start.https,
                },
            )?;
            printer.data(&status, views::status)?;
            if let (false, Some(port)) = (printer.json(), status.port) {
                printer.result(&format!(
                    "router on port {port}: `berth url SERVICE` prints a service's name"
                ));
            }
            Ok(())
        }
        RouterCommand::Stop => {
            let running = router::status(context)?.running;
            let status = router::stop(context)?;
            printer.data(&status, |_| String::new())?;
            printer.result(if running {
                "router stopped"
            } else {
                "no router was running"
            });
            Ok(())
        }
        RouterCommand::Status => {
            let status = router::status(context)?;
            Ok(printer.data(&status, views::status)?)
        }
        RouterCommand::Trust => {
            let trust = router::trust(context)?;
            Ok(printer.data(&trust, views::trust)?)
        }
        RouterCommand::Hosts(hosts) => {
            let action = match (hosts.write, hosts.remove) {
                (true, _) => HostsAction::Write,
                (_, true) => HostsAction::Remove,
                _ => HostsAction::Print,
            };
            let view = router::hosts(context, action)?;
            printer.data(&view, views::hosts)?;
            if let Some(file) = &view.file {
                let what = match (action, view.changed) {
                    (_, false) => "already up to date",
                    (HostsAction::Remove, true) => "berth's block removed",
                    _ => "berth's block written; the router keeps it in sync",
                };
                printer.result(&format!("{}: {what}", file.display()));
            }
            Ok(())
        }
    }
}
