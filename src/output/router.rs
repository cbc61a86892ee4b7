//! The router's status, trust steps and hosts lines, drawn for people.

use super::Table;
use crate::instance::router::{HostsView, RouterStatus, Trust};

pub fn status(status: &RouterStatus) -> String {
    let mut out = match (status.running, status.port) {
        (true, Some(port)) => format!(
            "router running on port {port} ({}), PID {}, listening on {}\n",
            if status.https { "https" } else { "http" },
            status
                .pid
                .map_or_else(|| "?".to_string(), |pid| pid.to_string()),
            status.listen.join(" ")
        ),
        _ => "router not running; `berth router start` starts it\n".to_string(),
    };
    if let Some(file) = &status.hosts_file {
        out.push_str(&format!("hosts file kept in sync: {}\n", file.display()));
    }
    if status.routes.is_empty() {
        out.push_str("no routes: no instance has a port yet\n");
        return out;
    }
    let mut table = Table::new(vec!["NAME", "INSTANCE", "SERVICE", "PORT", "STATE"]);
    for route in &status.routes {
        table.row(vec![
            route.url.clone().unwrap_or_else(|| route.host.clone()),
            route.instance.clone(),
            route.service.clone(),
            route.port.to_string(),
            route.state.clone(),
        ]);
    }
    out.push_str(&table.render());
    out
}

pub fn trust(trust: &Trust) -> String {
    let mut out = format!(
        "The router's local CA: {}\nIt can vouch only for localhost, *.localhost, 127.0.0.0/8 and ::1 (name constraints).\n",
        trust.ca.display()
    );
    for step in &trust.steps {
        out.push_str(&format!("\n{}:\n  {}\n", step.for_, step.command));
    }
    out
}

pub fn hosts(view: &HostsView) -> String {
    view.lines.iter().map(|line| format!("{line}\n")).collect()
}
