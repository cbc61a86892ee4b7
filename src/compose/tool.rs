//! Which Compose tool to run: `BERTH_COMPOSE`, else `docker compose` (v2), else
//! `docker-compose` (v1). Found by looking at files, without running anything.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::ComposeError;
use crate::docker::Endpoint;
use crate::env_vars;

/// A Compose command line prefix, such as `["docker", "compose"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeTool {
    pub program: Vec<String>,
}

impl ComposeTool {
    /// Detects the tool in SPEC order.
    pub fn detect() -> Result<Self, ComposeError> {
        if let Some(command) = std::env::var(env_vars::BERTH_COMPOSE)
            .ok()
            .filter(|value| !value.trim().is_empty())
        {
            let program = shlex::split(&command)
                .filter(|words| !words.is_empty())
                .ok_or_else(|| ComposeError::ToolNotFound {
                    command: command.clone(),
                })?;
            if find_executable(&program[0]).is_none() {
                return Err(ComposeError::ToolNotFound { command });
            }
            return Ok(Self { program });
        }
        if find_executable("docker").is_some() && v2_plugin().is_some() {
            return Ok(Self {
                program: vec!["docker".into(), "compose".into()],
            });
        }
        if find_executable("docker-compose").is_some() {
            return Ok(Self {
                program: vec!["docker-compose".into()],
            });
        }
        Err(ComposeError::ToolMissing)
    }

    /// The executables that make up the tool (the docker CLI and its plugin, or one
    /// program), for the resolution cache's key.
    pub fn executables(&self) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = find_executable(&self.program[0]).into_iter().collect();
        if self.program.len() > 1 && self.program[0] == "docker" && self.program[1] == "compose" {
            found.extend(v2_plugin());
        }
        found
    }

    /// The command as a user would type it, for messages.
    pub fn display(&self) -> String {
        self.program.join(" ")
    }

    /// A command for this instance's project, against the engine at `endpoint`:
    /// `<tool> -p NAME --project-directory ROOT -f FILE…`.
    pub fn command(
        &self,
        endpoint: &Endpoint,
        project: &str,
        root: &Path,
        files: &[PathBuf],
    ) -> Command {
        let mut command = endpoint.command(&self.program[0]);
        command.args(&self.program[1..]);
        command.arg("-p").arg(project);
        command.arg("--project-directory").arg(root);
        for file in files {
            command.arg("-f").arg(file);
        }
        command.current_dir(root);
        command
    }
}

/// The Compose v2 CLI plugin, where the docker CLI looks for it.
fn v2_plugin() -> Option<PathBuf> {
    let config_dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker")));
    let mut dirs: Vec<PathBuf> = config_dir
        .map(|dir| dir.join("cli-plugins"))
        .into_iter()
        .collect();
    dirs.extend(
        [
            "/usr/local/lib/docker/cli-plugins",
            "/usr/local/libexec/docker/cli-plugins",
            "/usr/lib/docker/cli-plugins",
            "/usr/libexec/docker/cli-plugins",
        ]
        .map(PathBuf::from),
    );
    dirs.into_iter()
        .map(|dir| dir.join("docker-compose"))
        .find(|path| is_executable(path))
}

/// `name` itself when it holds a slash, else the first match on PATH.
fn find_executable(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let path = PathBuf::from(name);
        return is_executable(&path).then_some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}
