//! `restart`: restart services through the supervisor and wait until they are ready.

use std::time::Duration;

use super::{Progress, StatusView};
use super::{lifecycle, select};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::state::{FileLock, InstanceFile, InstancePaths, ServiceState};
use crate::supervisor::{self, Request};

/// Restarts `services` (all when empty) of the selected instance and waits up to
/// `timeout` for them to be ready.
pub fn restart(
    context: &Context,
    services: &[String],
    timeout: Duration,
    progress: &dyn Progress,
) -> Result<StatusView> {
    let selected = select(context, progress)?;
    let file = selected.started_with(services)?;
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
            services: services.to_vec(),
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
    // Give the service tasks a moment to leave the ready state before waiting for it.
    wait_until_restarting(&selected.paths, services);
    progress.waiting("waiting for the services to be ready");
    let file = lifecycle::wait_ready(&selected.paths, services, timeout, progress);
    progress.done_waiting();
    Ok(StatusView::from_file(&file?)
        .with_router(crate::router::state::address(context.ledger.dir())))
}

/// Waits (briefly) until no named service still shows the `ready` it had before the
/// restart, so `wait_ready` does not return on stale state.
fn wait_until_restarting(paths: &InstancePaths, services: &[String]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        let Ok(Some(file)) = InstanceFile::read(&paths.instance_json()) else {
            return;
        };
        let stale = file
            .targets(services)
            .any(|(_, record)| record.state == ServiceState::Ready);
        if !stale {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
