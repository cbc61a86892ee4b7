//! `berth exec SERVICE -- CMD…` and `berth shell [SERVICE]`: run attached to this
//! terminal; berth exits with the command's status.

use std::process::Command;

use crate::cli::{ExecArgs, ShellArgs};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::instance;
use crate::output::Printer;

pub fn run_exec(context: &Context, printer: &Printer, args: &ExecArgs) -> Result<()> {
    let command = instance::exec(context, &args.service, &args.command, printer)?;
    run_to_exit(command, &args.command[0])
}

pub fn run_shell(context: &Context, printer: &Printer, args: &ShellArgs) -> Result<()> {
    let shell = std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".to_string());
    let command = instance::shell(context, args.service.as_deref(), &shell, printer)?;
    run_to_exit(command, "shell")
}

/// Runs the command with this terminal (no deadline: it is interactive); it ends if
/// berth is killed. A failure becomes berth's own exit status.
fn run_to_exit(mut command: Command, what: &str) -> Result<()> {
    crate::external::die_with_berth(&mut command);
    let status = command
        .status()
        .map_err(|error| Error::failed(format!("cannot run `{what}`: {error}"), None))?;
    Error::exited(status)
}
