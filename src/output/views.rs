//! `status`, `up` and `ls` drawn as tables for people.

use super::Table;
use crate::git::GitHead;
use crate::instance::{GitView, LsRow, StatusView};

/// An instance and its services, as `status` and `up` print them.
pub fn status(view: &StatusView) -> String {
    let mut out = format!(
        "instance {} (index {}, offset {}) {}  root {}",
        view.name,
        view.index,
        view.port_offset,
        view.state,
        view.root.display()
    );
    if let Some(git) = &view.git {
        out.push_str(&format!("  git {}", self::git(git)));
    }
    out.push('\n');
    let mut table = Table::new(vec![
        "SERVICE",
        "STATE",
        "PORTS",
        "URL",
        "PID/CONTAINER",
        "RESTARTS",
        "NOTE",
    ]);
    for service in &view.services {
        let ports = if service.ports.is_empty() {
            "-".to_string()
        } else {
            service
                .ports
                .iter()
                .map(|(name, port)| {
                    if name == crate::config::DEFAULT_PORT_NAME {
                        port.to_string()
                    } else {
                        format!("{name}={port}")
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        table.row(vec![
            service.name.clone(),
            service.state.clone(),
            ports,
            service
                .routed_url
                .clone()
                .or_else(|| service.url.clone())
                .unwrap_or_else(|| "-".to_string()),
            match (&service.pid, &service.container) {
                (Some(pid), _) => pid.to_string(),
                (None, Some(container)) => container.clone(),
                (None, None) => "-".to_string(),
            },
            service.restarts.to_string(),
            match (&service.message, &service.health) {
                (Some(message), _) => message.clone(),
                (None, Some(health)) => format!("health: {health}"),
                (None, None) => String::new(),
            },
        ]);
    }
    out.push_str(&table.render());
    out
}

/// Every instance, as `ls` prints them.
pub fn instances(rows: &[LsRow]) -> String {
    let mut table = Table::new(vec![
        "NAME", "PROJECT", "INDEX", "STATE", "PORTS", "STARTED", "GIT", "ROOT",
    ]);
    for row in rows {
        let ports: Vec<String> = row.ports.iter().map(u16::to_string).collect();
        table.row(vec![
            row.name.clone(),
            row.project.clone(),
            if row.shared {
                "shared".to_string()
            } else {
                row.index.to_string()
            },
            row.state.clone(),
            if ports.is_empty() {
                "-".to_string()
            } else {
                ports.join(",")
            },
            row.started_at.clone().unwrap_or_else(|| "-".to_string()),
            row.git.as_ref().map_or_else(|| "-".to_string(), git),
            row.root.display().to_string(),
        ]);
    }
    table.render()
}

/// `main@1a2b3c4`, with `(moved: now feat@5d6e7f8)` when the tree moved.
pub fn git(view: &GitView) -> String {
    let started = GitHead {
        branch: view.branch.clone(),
        commit: view.commit.clone(),
    }
    .short();
    match (&view.now, view.moved) {
        (_, false) => started,
        (Some(now), true) => format!("{started} (moved: now {})", now.short()),
        (None, true) => format!("{started} (moved)"),
    }
}

/// The project's stored dumps, as `db dumps` prints them.
pub fn dumps(dumps: &[crate::instance::db::StoredDump]) -> String {
    if dumps.is_empty() {
        return "no stored dumps; `berth db dump` stores one\n".to_string();
    }
    let mut table = Table::new(vec!["NAME", "SIZE", "CREATED"]);
    for dump in dumps {
        table.row(vec![
            dump.name.clone(),
            super::snapshots::human_bytes(dump.size),
            dump.created.clone(),
        ]);
    }
    table.render()
}
