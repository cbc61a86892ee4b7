//! `port` and `url`: where one service of the instance answers, from its leases.

use schemars::JsonSchema;
use serde::Serialize;

use super::{Progress, select};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::ledger::LedgerEntry;
use crate::router::routes;

/// A port of a service.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Port {
    pub port: u16,
}

/// The URL of a service, and both its forms.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Url {
    /// The router URL while the router runs and the service speaks HTTP, else `direct`.
    pub url: String,
    /// `http://127.0.0.1:PORT`, or `127.0.0.1:PORT` for a service not known to speak HTTP.
    pub direct: String,
    /// `http://SERVICE.INSTANCE.localhost:PORT` while the router runs.
    pub routed: Option<String>,
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
/// database, a cache). While the router runs, an HTTP service's router URL, unless
/// `direct`.
pub fn url(
    context: &Context,
    service: &str,
    port_name: Option<&str>,
    direct: bool,
    progress: &dyn Progress,
) -> Result<Url> {
    let selected = select(context, progress)?;
    let port = leased(&selected.entry, service, port_name)?;
    let known = selected
        .file
        .as_ref()
        .and_then(|file| file.services.get(service)?.url.clone());
    let scheme = known
        .as_deref()
        .and_then(|url| url.split_once("://").map(|(scheme, _)| scheme.to_string()));
    let direct_url = match scheme {
        Some(scheme) => format!("{scheme}://127.0.0.1:{port}"),
        None => format!("127.0.0.1:{port}"),
    };
    // The router reaches a service's first TCP port.
    let routed_port = routes::routed_services(&selected.entry)
        .into_iter()
        .any(|(name, first)| name == service && first == port);
    let default = selected
        .file
        .as_ref()
        .and_then(|file| file.router_default.as_deref());
    let routed = crate::router::state::address(context.ledger.dir())
        .filter(|_| routed_port && routes::has_router_url(Some(&direct_url), service, default))
        .map(|address| address.url(&routes::service_host(&selected.entry.name, service)));
    let url = match (&routed, direct) {
        (Some(routed), false) => routed.clone(),
        _ => direct_url.clone(),
    };
    Ok(Url {
        url,
        direct: direct_url,
        routed,
    })
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
