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
mod port;
mod restart;
mod rm;
mod shared;
mod snapshot;
mod status;
mod up;

use crate::cli::{Cli, CommandKind};
use crate::context::Context;
use crate::error::Result;

pub fn dispatch(cli: Cli) -> Result<()> {
    match &cli.command {
        CommandKind::Supervise { dir } => return crate::supervisor::run(dir),
        CommandKind::Completions(args) => return completions::run(args.shell),
        CommandKind::Man => return completions::man(),
        _ => {}
    }
    let context = Context::from_args(&cli.global)?;
    match cli.command {
        CommandKind::Up(args) => up::run(&context, &args),
        CommandKind::Down(args) => down::run(&context, &args),
        CommandKind::Restart(args) => restart::run(&context, &args),
        CommandKind::Status => status::run(&context),
        CommandKind::Ls => ls::run(&context),
        CommandKind::Port(args) => port::run_port(&context, &args),
        CommandKind::Url(args) => port::run_url(&context, &args),
        CommandKind::Env(args) => env::run(&context, &args),
        CommandKind::Logs(args) => logs::run(&context, &args),
        CommandKind::Exec(args) => exec::run_exec(&context, &args),
        CommandKind::Rm(args) => rm::run(&context, &args),
        CommandKind::Snapshot(args) => snapshot::run(&context, &args),
        CommandKind::Db(args) => db::run(&context, &args),
        CommandKind::Doctor => doctor::run(&context),
        CommandKind::Init(args) => init::run(&context, &args),
        CommandKind::Gc(args) => gc::run(&context, &args),
        CommandKind::Shell(args) => exec::run_shell(&context, &args),
        CommandKind::Supervise { .. } | CommandKind::Completions(_) | CommandKind::Man => Ok(()),
    }
}
