//! `port` and `url`: where one service of the instance answers, from its leases.

use schemars::JsonSchema;
use serde::Serialize;

use super::{Progress, select};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::ledger::LedgerEntry;

/// A port of a service.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Port {
    pub port: u16,
}

/// The URL of a service.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Url {
    pub url: String,
}

/// The host port `port_name` (the first when `None`) of `service`.
pub fn port(
    context: &Context,
    service: &str,
    port_name: Option<&str>,
    progress: &dyn Progress,
) -> Result<Port> {
    let selected = select(context, progress)?;
    let port = leased(&selected.entry, service, port_name)?;
    Ok(Port { port })
}

/// The URL of a service that speaks HTTP; `127.0.0.1:PORT` for one that does not (a
/// database, a cache).
pub fn url(
    context: &Context,
    service: &str,
    port_name: Option<&str>,
    progress: &dyn Progress,
) -> Result<Url> {
    let selected = select(context, progress)?;
    let port = leased(&selected.entry, service, port_name)?;
    let scheme = selected
        .file
        .and_then(|file| file.services.get(service)?.url.clone())
        .and_then(|url| url.split_once("://").map(|(scheme, _)| scheme.to_string()));
    let url = match scheme {
        Some(scheme) => format!("{scheme}://127.0.0.1:{port}"),
        None => format!("127.0.0.1:{port}"),
    };
    Ok(Url { url })
}

fn leased(entry: &LedgerEntry, service: &str, port_name: Option<&str>) -> Result<u16> {
    let leases: Vec<_> = entry
        .leases
        .iter()
        .filter(|lease| lease.service == service)
        .collect();
    if leases.is_empty() {
        let known: Vec<String> = entry
            .leases
            .iter()
            .map(|lease| lease.service.clone())
            .collect();
        return Err(Error::usage(
            format!("`{}` has no port for a service `{service}`", entry.name),
            Some(if known.is_empty() {
                "run `berth up` first; ports are planned then".to_string()
            } else {
                format!("services with ports: {}", known.join(", "))
            }),
        ));
    }
    match port_name {
        None => Ok(leases[0].port),
        Some(name) => leases
            .iter()
            .find(|lease| lease.port_name == name)
            .map(|lease| lease.port)
            .ok_or_else(|| {
                let names: Vec<&str> = leases
                    .iter()
                    .map(|lease| lease.port_name.as_str())
                    .collect();
                Error::usage(
                    format!("service `{service}` has no port named `{name}`"),
                    Some(format!("its ports: {}", names.join(", "))),
                )
            }),
    }
}
