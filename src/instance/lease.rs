//! Planning an instance's host ports and leasing them in the ledger, with the env files
//! rendered for the plan claimed in the same locked write.

use std::collections::HashMap;

use super::Progress;
use super::up::UpOptions;
use crate::config::{Config, PortBase, PortStrategy};
use crate::context::{Context, Selector};
use crate::durable::Published;
use crate::envfiles;
use crate::error::{Error, Result};
use crate::git::GitHead;
use crate::ledger::{Lease, LockedLedger};
use crate::model::Identity;
use crate::ports::{self, OffsetChoice, PlanSettings, PortRequest};
use crate::probe::{SystemProbe, ephemeral_range};

/// Plans the ports and records the leases, under the ledger lock: concurrent `up`s
/// never lease the same port. The env files rendered for the plan are checked and
/// recorded in the same write, before any is written. The ledger's rename is left for
/// the caller to make durable.
pub(super) fn plan_and_lease(
    context: &Context,
    config: &Config,
    identity: &Identity,
    args: &UpOptions,
    published: &HashMap<u16, String>,
    git: Option<GitHead>,
    progress: &dyn Progress,
) -> Result<(ports::PortPlan, Vec<envfiles::RenderedEnvFile>, Published)> {
    let requests: Vec<PortRequest> = config
        .service_names()
        .into_iter()
        .flat_map(|service| {
            let ports = config.ports_of(&service).cloned().unwrap_or_default();
            ports.into_iter().map(move |(port_name, base)| PortRequest {
                service: service.clone(),
                port_name,
                base,
            })
        })
        .collect();
    let mut ledger = context.ledger.lock()?;
    let entry = ledger.data().find(&identity.name).cloned();
    let has_leases = entry.as_ref().is_some_and(|entry| !entry.leases.is_empty());
    let choice = if let Some(offset) = args.port_offset {
        OffsetChoice::Exact(offset)
    } else if let Selector::Index(index) = context.selector {
        let offset = index.checked_mul(config.stride).ok_or_else(|| {
            Error::usage(
                format!(
                    "--instance {index} means port offset {index} × {} (the stride), past any port",
                    config.stride
                ),
                Some("use a smaller --instance".to_string()),
            )
        })?;
        OffsetChoice::Exact(offset)
    } else if let (true, Some(entry)) = (has_leases, &entry) {
        OffsetChoice::Exact(entry.port_offset)
    } else if args.strict_ports {
        OffsetChoice::Strict
    } else if config.port_strategy == PortStrategy::Hash
        && crate::git::is_linked_worktree(&config.root)
    {
        OffsetChoice::Hashed(ports::name_hash(&identity.name))
    } else {
        OffsetChoice::Smallest
    };
    let previous_auto: HashMap<(String, String), u16> = entry
        .iter()
        .flat_map(|entry| entry.leases.iter())
        .filter(|lease| {
            config
                .ports_of(&lease.service)
                .and_then(|ports| ports.get(&lease.port_name))
                == Some(&PortBase::Auto)
        })
        .map(|lease| ((lease.service.clone(), lease.port_name.clone()), lease.port))
        .collect();
    let settings = PlanSettings {
        stride: config.stride,
        choice,
        auto_range: config.auto_range,
        ephemeral: ephemeral_range(),
        previous_auto: &previous_auto,
    };
    let probe = SystemProbe {
        ledger: ledger.data(),
        instance: &identity.name,
        published,
    };
    let planned = ports::plan(&requests, &settings, &probe);
    let planned = planned.map_err(Error::from).and_then(|plan| {
        let env_files = envfiles::render(config, identity, &plan);
        claim_env_files(&mut ledger, config, identity, &env_files)?;
        Ok((plan, env_files))
    });
    let (plan, env_files) = match planned {
        Ok(planned) => planned,
        Err(error) => {
            // An instance that never got ports is only a reserved name: drop it, so a
            // failed first `up` leaves nothing behind in the ledger.
            if !has_leases
                && entry
                    .as_ref()
                    .is_some_and(|entry| entry.started_at.is_none())
            {
                ledger.forget(&identity.name);
                ledger.save()?;
            }
            return Err(error);
        }
    };
    if plan.offset != 0 && choice == OffsetChoice::Smallest {
        progress.note(&format!(
            "base ports are taken; `{}` runs at port offset {}",
            identity.name, plan.offset
        ));
    }
    if let OffsetChoice::Hashed(hash) = choice
        && let Some(hashed) = ports::hashed_offset(&requests, config.stride, hash)
        && hashed != plan.offset
    {
        progress.note(&format!(
            "the ports at `{}`'s hashed offset {hashed} are taken; it runs at port offset {}",
            identity.name, plan.offset
        ));
    }
    let leases = plan
        .ports
        .iter()
        .map(|planned| Lease {
            service: planned.service.clone(),
            port_name: planned.port_name.clone(),
            port: planned.port,
        })
        .collect();
    // Recorded here rather than after the supervisor starts, to spare `up` a second
    // locked ledger write; a start that fails shows in `ls` as a dead supervisor.
    if !ledger.record_start(&identity.name, plan.offset, leases, git, super::up::now()) {
        return Err(Error::failed(
            format!(
                "the ledger entry of `{}` vanished while starting",
                identity.name
            ),
            Some("another berth command removed it; run `berth up` again".to_string()),
        ));
    }
    let published = ledger.publish()?;
    Ok((plan, env_files, published))
}

/// Checks that berth may write each env file (see [`envfiles::claim`]) and records them
/// in the instance's ledger entry, the authority `up` and `rm` go by; the caller saves.
pub(super) fn claim_env_files(
    ledger: &mut LockedLedger,
    config: &Config,
    identity: &Identity,
    files: &[envfiles::RenderedEnvFile],
) -> Result<()> {
    let recorded: Vec<std::path::PathBuf> = ledger
        .data()
        .at_root(&config.root)
        .flat_map(|entry| entry.env_files.iter().cloned())
        .collect();
    let claimed = envfiles::claim(config, files, &recorded)?;
    ledger.claim_env_files(&identity.name, claimed);
    Ok(())
}

/// The port plan the instance's leases record.
pub(super) fn leased_plan(
    context: &Context,
    identity: &Identity,
) -> Result<Option<ports::PortPlan>> {
    let ledger = context.ledger.read()?;
    let Some(entry) = ledger.find(&identity.name) else {
        return Ok(None);
    };
    Ok(Some(ports::PortPlan {
        offset: entry.port_offset,
        ports: entry
            .leases
            .iter()
            .map(|lease| ports::PlannedPort {
                service: lease.service.clone(),
                port_name: lease.port_name.clone(),
                port: lease.port,
            })
            .collect(),
    }))
}
