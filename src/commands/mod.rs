//! One module per subcommand: arguments → resolved settings → domain calls → render.

mod completions;
mod db;
mod doctor;
mod down;
mod env;
mod exec;
mod gc;
mod init;
mod logs;
mod ls;
mod mcp;
mod new;
mod port;
mod prepare;
mod restart;
mod rm;
mod router;
mod snapshot;
mod status;
mod up;

use crate::cli::{Cli, CommandKind};
use crate::context::Context;
use crate::error::Result;
use crate::output::Printer;

/// `berth __supervise DIR`: the supervisor of the instance whose state directory is
/// `DIR`, as `up` starts it. `main` calls it without parsing the rest of the command
/// line, which `up` waits for.
pub fn supervise(dir: &std::path::Path) -> Result<()> {
    // It inherits `BERTH_HOME` (made absolute) from the `berth up` that started it.
    let ledger_dir = crate::context::ledger_dir()?;
    Ok(crate::supervisor::run(dir, &ledger_dir)?)
}

pub fn dispatch(cli: Cli, printer: &Printer) -> Result<()> {
    match &cli.command {
        CommandKind::Supervise { dir } => return supervise(dir),
        CommandKind::Route {
            port,
            https,
            listeners,
        } => {
            let ledger_dir = crate::context::ledger_dir()?;
            let address = crate::router::RouterAddress {
                port: *port,
                https: *https,
            };
            return Ok(crate::router::serve::run(&ledger_dir, address, *listeners)?);
        }
        CommandKind::Completions(args) => return completions::run(args.shell),
        CommandKind::Man => return completions::man(),
        _ => {}
    }
    let context = Context::from_args(&cli.global)?;
    match cli.command {
        CommandKind::New(args) => new::run(&context, printer, &args),
        CommandKind::Prepare(args) => prepare::run(&context, printer, &args),
        CommandKind::Up(args) => up::run(&context, printer, &args),
        CommandKind::Down(args) => down::run(&context, printer, &args),
        CommandKind::Restart(args) => restart::run(&context, printer, &args),
        CommandKind::Status => status::run(&context, printer),
        CommandKind::Ls => ls::run(&context, printer),
        CommandKind::Port(args) => port::run_port(&context, printer, &args),
        CommandKind::Url(args) => port::run_url(&context, printer, &args),
        CommandKind::Env(args) => env::run(&context, printer, &args),
        CommandKind::Logs(args) => logs::run(&context, printer, &args),
        CommandKind::Exec(args) => exec::run_exec(&context, printer, &args),
        CommandKind::Rm(args) => rm::run(&context, printer, &args),
        CommandKind::Snapshot(args) => snapshot::run(&context, printer, &args),
        CommandKind::Db(args) => db::run(&context, printer, &args),
        CommandKind::Doctor => doctor::run(&context, printer),
        CommandKind::Init(args) => init::run(&context, printer, &args),
        CommandKind::Gc(args) => gc::run(&context, printer, &args),
        CommandKind::Shell(args) => exec::run_shell(&context, printer, &args),
        CommandKind::Mcp => mcp::run(context),
        CommandKind::Router(args) => router::run(&context, printer, &args),
        CommandKind::Supervise { .. }
        | CommandKind::Route { .. }
        | CommandKind::Completions(_)
        | CommandKind::Man => Ok(()),
    }
}
