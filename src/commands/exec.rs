//! `berth exec SERVICE -- CMD…` and `berth shell [SERVICE]`: into the right instance's
//! container (found by label, never by name), or with a process service's environment.

use std::io::IsTerminal;
use std::process::Command;

use crate::cli::{ExecArgs, ShellArgs};
use crate::compose::{ComposeError, LABEL_INSTANCE, LABEL_ROOT};
use crate::context::Context;
use crate::docker::Engine;
use crate::error::{Error, Result};
use crate::state::InstanceFile;

pub fn run_exec(context: &Context, args: &ExecArgs) -> Result<()> {
    let selected = context.select()?;
    let file = selected.started_with(std::slice::from_ref(&args.service))?;
    let command = command_for(file, &args.service, &args.command)?;
    run_to_exit(command, &args.command[0])
}

pub fn run_shell(context: &Context, args: &ShellArgs) -> Result<()> {
    let selected = context.select()?;
    let file = match &args.service {
        Some(service) => selected.started_with(std::slice::from_ref(service))?,
        None => selected.started()?,
    };
    let shell = std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".to_string());
    let command = match &args.service {
        Some(service) if file.services[service].is_compose() => {
            command_for(file, service, &["sh".to_string()])?
        }
        Some(service) => command_for(file, service, std::slice::from_ref(&shell))?,
        None => {
            let mut command = Command::new(&shell);
            command.envs(&file.env).current_dir(&file.root);
            command
        }
    };
    run_to_exit(command, "shell")
}

/// The command to run `argv` for `service`: `docker exec` into its container, or
/// `argv` itself with the process service's environment and directory.
fn command_for(file: &InstanceFile, service: &str, argv: &[String]) -> Result<Command> {
    let record = &file.services[service];
    if let Some(spec) = record.process() {
        // The service's own environment, `PATH` included, so its tools (a virtualenv's,
        // say) are found as the service finds them.
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .envs(super::env::service_environment(file, service)?)
            .current_dir(&spec.cwd);
        return Ok(command);
    }
    let engine = Engine::from_env().map_err(ComposeError::from)?;
    let root = file.root.display().to_string();
    let containers = engine
        .containers(
            &[
                (LABEL_INSTANCE, &file.name),
                (LABEL_ROOT, &root),
                ("com.docker.compose.project", &file.name),
                ("com.docker.compose.service", service),
            ],
            false,
        )
        .map_err(ComposeError::from)?;
    // Labels can be copied by anyone: the container must also be the one the supervisor
    // recorded for the service (by name), in the instance's own Compose project.
    let recorded = record.container.as_deref();
    let Some(container) = containers
        .iter()
        .find(|container| recorded.is_none_or(|name| container.name == name))
    else {
        return Err(Error::usage(
            format!(
                "service `{service}` of `{}` has no running container",
                file.name
            ),
            Some("start it with `berth up`; `berth status` shows its state".to_string()),
        ));
    };
    let mut command = engine.endpoint().command("docker");
    command.arg("exec");
    if std::io::stdin().is_terminal() {
        command.arg("-it");
    } else {
        command.arg("-i");
    }
    command.arg(&container.id).args(argv);
    Ok(command)
}

/// Runs the command with this terminal (no deadline: it is interactive) and exits with
/// its status; it ends if berth is killed.
fn run_to_exit(mut command: Command, what: &str) -> Result<()> {
    crate::external::die_with_berth(&mut command);
    let status = command
        .status()
        .map_err(|error| Error::failed(format!("cannot run `{what}`: {error}"), None))?;
    exit_like(status)
}

/// Returns on success; otherwise exits berth with the command's status (1 for a signal).
pub(super) fn exit_like(status: std::process::ExitStatus) -> Result<()> {
    match status.code().unwrap_or(1) {
        0 => Ok(()),
        code => std::process::exit(code),
    }
}
