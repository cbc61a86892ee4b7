//! `exec` and `shell`: the command that runs in the right instance's container (found by
//! label, never by name), or with a process service's environment.

use std::io::IsTerminal;
use std::process::Command;

use super::{Progress, select};
use crate::compose::{ComposeError, LABEL_INSTANCE, LABEL_ROOT};
use crate::context::Context;
use crate::docker::Engine;
use crate::error::{Error, Result};
use crate::state::InstanceFile;

/// The command that runs `argv` for `service` of the selected instance: `docker exec`
/// into its container, or `argv` itself with the process service's environment and
/// directory. The caller runs it, attached to its terminal.
pub fn exec(
    context: &Context,
    service: &str,
    argv: &[String],
    progress: &dyn Progress,
) -> Result<Command> {
    let selected = select(context, progress)?;
    let file = selected.started_with(&[service.to_string()])?;
    command_for(file, service, argv)
}

/// The command that opens `shell` for `service` (`sh` in a compose service's container),
/// or in the instance's root with its variables when `service` is `None`.
pub fn shell(
    context: &Context,
    service: Option<&str>,
    shell: &str,
    progress: &dyn Progress,
) -> Result<Command> {
    let selected = select(context, progress)?;
    let file = match service {
        Some(service) => selected.started_with(&[service.to_string()])?,
        None => selected.started()?,
    };
    match service {
        Some(service) if file.services[service].is_compose() => {
            command_for(file, service, &["sh".to_string()])
        }
        Some(service) => command_for(file, service, &[shell.to_string()]),
        None => {
            let mut command = Command::new(shell);
            command.envs(&file.env).current_dir(&file.root);
            Ok(command)
        }
    }
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
