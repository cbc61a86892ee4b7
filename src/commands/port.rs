//! `berth port SERVICE [NAME]` and `berth url SERVICE [NAME]`: one value, for scripts.

use crate::cli::PortArgs;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::output;

fn lookup(context: &Context, args: &PortArgs) -> Result<u16> {
    let selected = context.select()?;
    let entry = &selected.entry;
    let leases: Vec<_> = entry
        .leases
        .iter()
        .filter(|lease| lease.service == args.service)
        .collect();
    if leases.is_empty() {
        let known: Vec<String> = entry
            .leases
            .iter()
            .map(|lease| lease.service.clone())
            .collect();
        return Err(Error::usage(
            format!(
                "`{}` has no port for a service `{}`",
                entry.name, args.service
            ),
            Some(if known.is_empty() {
                "run `berth up` first; ports are planned then".to_string()
            } else {
                format!("services with ports: {}", known.join(", "))
            }),
        ));
    }
    match &args.port_name {
        None => Ok(leases[0].port),
        Some(name) => leases
            .iter()
            .find(|lease| lease.port_name == *name)
            .map(|lease| lease.port)
            .ok_or_else(|| {
                let names: Vec<&str> = leases
                    .iter()
                    .map(|lease| lease.port_name.as_str())
                    .collect();
                Error::usage(
                    format!("service `{}` has no port named `{name}`", args.service),
                    Some(format!("its ports: {}", names.join(", "))),
                )
            }),
    }
}

pub fn run_port(context: &Context, args: &PortArgs) -> Result<()> {
    let port = lookup(context, args)?;
    output::emit(context.json, &serde_json::json!({ "port": port }), |_| {
        format!("{port}\n")
    })
}

/// The URL of a service that speaks HTTP; `127.0.0.1:PORT` for one that does not (a
/// database, a cache).
pub fn run_url(context: &Context, args: &PortArgs) -> Result<()> {
    let port = lookup(context, args)?;
    let scheme = context
        .select()?
        .file
        .and_then(|file| file.services.get(&args.service)?.url.clone())
        .and_then(|url| url.split_once("://").map(|(scheme, _)| scheme.to_string()));
    let url = match scheme {
        Some(scheme) => format!("{scheme}://127.0.0.1:{port}"),
        None => format!("127.0.0.1:{port}"),
    };
    output::emit(context.json, &serde_json::json!({ "url": url }), |_| {
        format!("{url}\n")
    })
}
