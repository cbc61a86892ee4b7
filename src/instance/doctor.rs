//! `doctor`: the Docker engine and Compose tool (versions), the ledger's health, the
//! state directory's permissions, and for the current project who holds each planned port.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use serde::Serialize;

use super::{Silent, select};
use crate::compose::{self, ComposeTool};
use crate::context::Context;
use crate::docker::Engine;
use crate::error::Result;
use crate::external::{Call, CallKind};
use crate::ports::PortProbe;
use crate::probe::{SystemProbe, published_ports};

/// One thing `doctor` checked.
#[derive(Debug, Serialize)]
pub struct Check {
    pub check: String,
    /// `ok`, `warn` or `fail`.
    pub status: &'static str,
    pub detail: String,
}

/// `1 instance`, `2 instances`.
fn counted(count: usize, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

fn check(name: impl Into<String>, status: &'static str, detail: impl Into<String>) -> Check {
    Check {
        check: name.into(),
        status,
        detail: detail.into(),
    }
}

/// Checks the machine and the current project; never fails itself (a failed check is
/// a row of the result).
pub fn doctor(context: &Context) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    let project = context
        .project_root()
        .ok()
        .map(|root| (root.clone(), compose::load_project(&root)));
    let needs_docker = matches!(&project, Some((_, Ok((config, _)))) if config.compose.is_some());
    let missing = if needs_docker { "fail" } else { "warn" };

    let engine = Engine::from_env();
    match engine.as_ref().map(|engine| (engine, engine.version())) {
        Ok((engine, Ok(version))) => checks.push(check(
            "docker engine",
            "ok",
            format!("{version} at {}", engine.endpoint()),
        )),
        Ok((_, Err(error))) => checks.push(check("docker engine", missing, error.to_string())),
        Err(error) => checks.push(check("docker engine", missing, error.to_string())),
    }
    match ComposeTool::detect() {
        Ok(tool) => {
            let mut command = Command::new(&tool.program[0]);
            if let Ok(engine) = &engine {
                engine.endpoint().configure(&mut command);
            }
            command
                .args(&tool.program[1..])
                .args(["version", "--short"]);
            let display = format!("{} version", tool.display());
            match Call::new(command, &display, CallKind::Docker).run() {
                Ok(finished) if finished.status.success() => checks.push(check(
                    "compose tool",
                    "ok",
                    format!(
                        "`{}` {}",
                        tool.display(),
                        String::from_utf8_lossy(&finished.stdout).trim()
                    ),
                )),
                Ok(_) => checks.push(check(
                    "compose tool",
                    missing,
                    format!("`{display}` failed"),
                )),
                Err(error) => checks.push(check("compose tool", missing, error.to_string())),
            }
        }
        Err(error) => checks.push(check("compose tool", missing, error.to_string())),
    }

    let dir = context.ledger.dir();
    match std::fs::metadata(dir) {
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => checks.push(check(
            "state directory",
            "warn",
            format!(
                "`{}` is mode {:o}: other users can read it; chmod 700 it",
                dir.display(),
                meta.permissions().mode() & 0o777
            ),
        )),
        Ok(_) => checks.push(check(
            "state directory",
            "ok",
            format!("`{}`, private (mode 700)", dir.display()),
        )),
        Err(_) => checks.push(check(
            "state directory",
            "ok",
            format!(
                "`{}` does not exist yet (created on the first `up`)",
                dir.display()
            ),
        )),
    }
    match context.ledger.read() {
        Ok(ledger) => {
            let gone = ledger
                .instances
                .iter()
                .filter(|entry| !entry.root.is_dir())
                .count();
            let leases: usize = ledger.instances.iter().map(|e| e.leases.len()).sum();
            let (status, hint) = if gone > 0 {
                (
                    "warn",
                    format!("; {gone} with a deleted root (`berth gc` cleans up)"),
                )
            } else {
                ("ok", String::new())
            };
            checks.push(check(
                "ledger",
                status,
                format!(
                    "`{}`: {}, {}{hint}",
                    context.ledger.path().display(),
                    counted(ledger.instances.len(), "instance", "instances"),
                    counted(leases, "port lease", "port leases"),
                ),
            ));
            if let Some((root, loaded)) = &project {
                port_checks(
                    context,
                    root,
                    loaded,
                    &ledger,
                    engine.as_ref().ok(),
                    &mut checks,
                );
            }
        }
        Err(error) => checks.push(check("ledger", "fail", error.to_string())),
    }

    Ok(checks)
}

/// Who holds each port the project's instance here would use: its leases if it has any,
/// else the base ports.
fn port_checks(
    context: &Context,
    root: &std::path::Path,
    loaded: &Result<(crate::config::Config, Option<compose::Resolved>), compose::ComposeError>,
    ledger: &crate::ledger::LedgerData,
    engine: Option<&Engine>,
    checks: &mut Vec<Check>,
) {
    let config = match loaded {
        Ok((config, _)) => config,
        Err(error) => {
            checks.push(check("project", "fail", error.to_string()));
            return;
        }
    };
    let instance = select(context, &Silent)
        .ok()
        .filter(|selected| selected.entry.root == root);
    let name = instance
        .as_ref()
        .map_or("", |selected| selected.entry.name.as_str());
    checks.push(check(
        "project",
        "ok",
        format!(
            "`{}` at `{}`{}",
            config.project,
            root.display(),
            if name.is_empty() {
                String::new()
            } else {
                format!(", instance `{name}`")
            }
        ),
    ));
    let published = published_ports(engine, name);
    let probe = SystemProbe {
        ledger,
        instance: name,
        published: &published,
    };
    for service in config.service_names() {
        for (port_name, base) in config.ports_of(&service).cloned().unwrap_or_default() {
            let leased = instance.as_ref().and_then(|selected| {
                selected
                    .entry
                    .leases
                    .iter()
                    .find(|l| l.service == service && l.port_name == port_name)
                    .map(|l| l.port)
            });
            let label = if port_name == crate::config::DEFAULT_PORT_NAME {
                format!("port {service}")
            } else {
                format!("port {service}.{port_name}")
            };
            let port = match (leased, base) {
                (Some(port), _) => port,
                (None, crate::config::PortBase::Fixed(port)) => port,
                (None, crate::config::PortBase::Auto) => {
                    checks.push(check(label, "ok", "auto: any free port of [ports] range"));
                    continue;
                }
            };
            let own_instance_runs = instance
                .as_ref()
                .and_then(|selected| selected.file.as_ref())
                .is_some_and(|file| file.supervisor_alive());
            match probe.check(port) {
                Ok(()) => checks.push(check(label, "ok", format!("{port} is free"))),
                Err(_) if leased.is_some() && own_instance_runs => checks.push(check(
                    label,
                    "ok",
                    format!("{port} is held by this instance (`{name}`)"),
                )),
                Err(crate::ports::Holder::Instance { name: holder, .. })
                    if ledger.find(&holder).is_some_and(|entry| entry.root == root) =>
                {
                    checks.push(check(
                        label,
                        "ok",
                        format!("{port} is held by `{holder}`, an instance of this project"),
                    ));
                }
                Err(holder) => checks.push(check(
                    label,
                    "warn",
                    format!("{port} is taken by {holder}; `up` would move to another offset"),
                )),
            }
        }
    }
}
