//! Running the Compose tool on an instance's own file: `up`, `stop`, `restart`, `down`,
//! each within the Compose deadline (see [`crate::external`]).

use std::process::{Command, Stdio};

use super::ComposeError;
use crate::docker::Endpoint;
use crate::external::{Call, CallKind};
use crate::state::ComposeBackend;

/// The Compose tool bound to one instance's project name and file.
pub struct Runner<'a> {
    pub backend: &'a ComposeBackend,
    pub project: &'a str,
}

impl Runner<'_> {
    /// The tool's command for this project, against the engine at `endpoint`.
    pub fn command(&self, endpoint: &Endpoint) -> Command {
        let program = &self.backend.program;
        let mut command = endpoint.command(&program[0]);
        command
            .args(&program[1..])
            .arg("-p")
            .arg(self.project)
            .arg("--project-directory")
            .arg(&self.backend.project_dir)
            .arg("-f")
            .arg(&self.backend.file)
            .current_dir(&self.backend.project_dir)
            .stdin(Stdio::null());
        command
    }

    /// `up -d` for `services` (and the compose services they depend on).
    pub fn up(&self, services: &[String]) -> Result<(), ComposeError> {
        self.run(&["up", "-d", "--remove-orphans"], services)
    }

    pub fn stop(&self, services: &[String]) -> Result<(), ComposeError> {
        self.run(&["stop"], services)
    }

    pub fn restart(&self, services: &[String]) -> Result<(), ComposeError> {
        self.run(&["restart"], services)
    }

    /// Removes the instance's containers and networks, and with `volumes` its own volumes
    /// (never an external or shared one: those are `external` in the instance's file).
    pub fn down(&self, volumes: bool) -> Result<(), ComposeError> {
        let mut args = vec!["down", "--remove-orphans"];
        if volumes {
            args.push("--volumes");
        }
        self.run(&args, &[])
    }

    fn run(&self, args: &[&str], services: &[String]) -> Result<(), ComposeError> {
        let endpoint = Endpoint::from_env()?;
        let mut command = self.command(&endpoint);
        command.args(args).args(services);
        let display = format!("{} {}", self.backend.program.join(" "), args.join(" "));
        let finished = Call::new(command, &display, CallKind::Compose).run()?;
        if finished.status.success() {
            return Ok(());
        }
        Err(ComposeError::Command {
            command: display,
            status: finished.status.to_string(),
            stderr: super::tail(&finished.stderr, 20),
        })
    }
}
