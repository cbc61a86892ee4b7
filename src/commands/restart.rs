//! `berth restart [SERVICE…]`: restart services through the supervisor and wait for them.

use std::time::Duration;

use crate::cli::RestartArgs;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::lifecycle;
use crate::output::{self, StatusView};
use crate::state::FileLock;
use crate::supervisor::{self, Request};

pub fn run(context: &Context, args: &RestartArgs) -> Result<()> {
    let selected = context.select()?;
    let file = selected.started_with(&args.services)?;
    if !file.supervisor_alive() {
        return Err(Error::usage(
            format!("`{}` is not running", file.name),
            Some("start it with `berth up`".to_string()),
        ));
    }
    let _operation = FileLock::acquire(
        &context.ledger.operation_lock(&selected.entry.name)?,
        context.lock_timeout,
    )?;
    let reply = supervisor::send(
        &selected.paths.dir,
        &Request::Restart {
            services: args.services.clone(),
        },
    )
    .map_err(|error| {
        Error::failed(
            format!("cannot reach the supervisor of `{}`: {error}", file.name),
            None,
        )
    })?;
    if let Some(error) = reply.error {
        return Err(Error::failed(error, None));
    }
    // Give the service threads a moment to leave the ready state before waiting for it.
    wait_until_restarting(&selected.paths, &args.services);
    let file = lifecycle::wait_ready(
        &selected.paths,
        &args.services,
        Duration::from_secs(args.timeout),
    )?;
    let view = StatusView::from_file(&file);
    output::emit(context.json, &view, StatusView::render)
}

/// Waits (briefly) until no named service still shows the `ready` it had before the
/// restart, so `wait_ready` does not return on stale state.
fn wait_until_restarting(paths: &crate::state::InstancePaths, services: &[String]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        let Ok(Some(file)) = crate::state::InstanceFile::read(&paths.instance_json()) else {
            return;
        };
        let stale = file
            .targets(services)
            .any(|(_, record)| record.state == crate::state::ServiceState::Ready);
        if !stale {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
