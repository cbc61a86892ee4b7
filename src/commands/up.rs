//! `berth up`: plan ports, write files, start the supervisor, wait until ready, print.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::cli::UpArgs;
use indexmap::IndexMap;

use crate::compose::{self, InstanceCompose, Resolved};
use crate::config::{Config, PortBase};
use crate::context::{Context, Selector};
use crate::docker::Engine;
use crate::envfiles;
use crate::error::{Error, Result};
use crate::identity::{default_name_candidates, lowest_free_index};
use crate::ledger::{Lease, LedgerData, LedgerEntry};
use crate::lifecycle;
use crate::model::{self, Identity, ModelInputs};
use crate::output::{self, StatusView};
use crate::ports::{self, OffsetChoice, PlanSettings, PortRequest};
use crate::probe::{SystemProbe, ephemeral_range, published_ports};
use crate::state::{FileLock, InstanceFile, InstancePaths};
use crate::supervisor::{self, Request};

pub fn run(context: &Context, args: &UpArgs) -> Result<()> {
    // With --attach, Ctrl-C at any moment (even while starting) brings the instance down,
    // so the handler is installed before anything starts.
    let interrupted = if args.attach {
        Some(super::logs::interrupt_flag()?)
    } else {
        None
    };
    let file = start(context, args)?;
    output::emit(
        context.json,
        &StatusView::from_file(&file),
        StatusView::render,
    )?;
    match interrupted {
        Some(flag) => super::logs::attach(context, &file, &flag),
        None => Ok(()),
    }
}

/// Which part of the project an `up` brings up: an instance (every service but the
/// shared ones), or the project's shared instance (only those).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    Instance,
    Shared,
}

/// Brings the instance up and returns it once ready; the operation lock is released on
/// return, so `--attach` can take it again to stop the instance.
fn start(context: &Context, args: &UpArgs) -> Result<InstanceFile> {
    // `--name {project}-shared` (or a copy that stopped it) brings the shared part up.
    let part = match &context.selector {
        Selector::Name(name)
            if context
                .ledger
                .read()?
                .find(name)
                .is_some_and(|entry| entry.shared) =>
        {
            Part::Shared
        }
        _ => Part::Instance,
    };
    start_part(context, args, part)
}

pub(super) fn start_part(context: &Context, args: &UpArgs, part: Part) -> Result<InstanceFile> {
    let root = context.project_root()?;
    // Before anything is written, the Compose resolution cache in `.berth/` included.
    crate::state::check_state_root(&root)?;
    let (mut config, mut resolved) = compose::load_project(&root)?;
    if config.service_names().is_empty() {
        return Err(Error::usage(
            format!("`{}` declares no services", config.path.display()),
            Some(
                "add one, e.g. `[services.web]` with `command = \"./server --port {{ port.web }}\"` and `port = 3000`, or a Compose file; `berth init` writes one from a Procfile or Compose file"
                    .to_string(),
            ),
        ));
    }
    if let Some(unknown) = args.services.iter().find(|name| !config.has_service(name)) {
        return Err(Error::usage(
            format!(
                "`{unknown}` is not a service of `{}`",
                config.path.display()
            ),
            Some(format!("services: {}", config.service_names().join(", "))),
        ));
    }
    // The shared services the asked-for ones need run in the shared instance.
    let everything = model::with_dependencies(&config, &args.services);
    let shared_needed: Vec<String> = match part {
        Part::Instance => config
            .shared_services()
            .into_iter()
            .filter(|name| args.services.is_empty() || everything.contains(name))
            .collect(),
        Part::Shared => Vec::new(),
    };
    config.partition(part == Part::Shared);
    config
        .uses_shared
        .retain(|name, _| shared_needed.contains(name));
    // A project with compose services needs the engine; any other uses it (when there is
    // one) only to see which ports containers publish.
    let engine = match config.compose {
        Some(_) => Some(compose::engine()?),
        None => Engine::from_env().ok(),
    };
    if let (Some(resolved), Some(engine)) = (resolved.as_mut(), engine.as_ref()) {
        resolved
            .read_image_volumes(engine)
            .map_err(crate::Error::from)?;
    }
    // `--from` is resolved before the instance is reserved: a typo reserves nothing.
    let source = args
        .from
        .as_deref()
        .map(|text| super::snapshot::resolve_source(context, &config.project, text))
        .transpose()?;
    // A Compose project of that name that is not ours makes the name taken.
    let foreign = match (&engine, &config.compose, part) {
        (Some(engine), Some(_), Part::Instance) => compose::foreign_projects(engine, &config.root)?,
        _ => BTreeSet::new(),
    };
    // One `up`, `down`, `restart`, `rm` or `gc` at a time per instance: ten racing `up`s
    // of the same instance start exactly one supervisor, and an `rm` that held the lock
    // may have forgotten the instance meanwhile, in which case it is reserved afresh.
    let mut attempts = 0;
    let (identity, _operation) = loop {
        let identity = match part {
            Part::Instance => reserve_identity(context, &config, &foreign)?,
            Part::Shared => super::shared::reserve(context, &config)?,
        };
        let lock = FileLock::acquire(
            &context.ledger.operation_lock(&identity.name)?,
            Duration::from_secs(args.timeout.max(30)),
        )?;
        let kept = context
            .ledger
            .read()?
            .find(&identity.name)
            .is_some_and(|entry| entry.root == root);
        attempts += 1;
        if kept || attempts == 5 {
            break (identity, lock);
        }
    };
    if !shared_needed.is_empty() {
        let shared = super::shared::ensure(
            context,
            &config.project,
            &root,
            &identity.name,
            args.timeout,
        )?;
        config.external_ports = shared.ports.clone();
        config.shared_instance = Some((shared.name, shared.root));
    }
    let paths = InstancePaths::new(&root, &identity.name);
    create_state_dir(&paths, &root)?;
    let mut running = InstanceFile::read(&paths.instance_json())?;
    if let Some(file) = &mut running {
        crate::context::reap_orphaned_locked(&context.ledger, &paths, file)?;
    }
    if let Some(source) = &source {
        let alive = running.as_ref().is_some_and(InstanceFile::supervisor_alive);
        check_seedable(source, &identity, &paths, &root, alive)?;
    }
    let active = model::with_dependencies(&config, &args.services);
    let timeout = Duration::from_secs(args.timeout);

    if let Some(file) = running.as_ref().filter(|file| file.supervisor_alive()) {
        // A supervisor already stopping (a `down` or a copy killed halfway asked it to)
        // cannot start anything: let it finish, then start afresh.
        let mut stopping = file.state == crate::state::InstanceState::Stopping;
        if !stopping
            && args
                .port_offset
                .is_none_or(|offset| offset == file.port_offset)
            && same_config(context, &config, resolved.as_ref(), file, &identity)?
        {
            // Env files are regenerated on every `up`, even one that changes nothing else.
            if let Some(plan) = leased_plan(context, &identity)? {
                let env_files = envfiles::render(&config, &identity, &plan);
                let mut ledger = context.ledger.lock()?;
                claim_env_files(&mut ledger.data, &config, &identity, &env_files)?;
                ledger.save()?;
                drop(ledger);
                envfiles::write(&env_files, &root)?;
            }
            // A shared instance started afresh (its data removed) needs them again.
            super::shared::create_resources(file)?;
            let request = Request::Start {
                services: active.clone(),
            };
            match supervisor::send(&paths.dir, &request) {
                Ok(_) => return lifecycle::wait_ready(&paths, &args.services, timeout),
                // It began to stop just before our request reached it: as below.
                Err(_) if stopping_now(&paths)? => stopping = true,
                Err(error) => {
                    return Err(Error::failed(
                        format!("cannot reach the supervisor of `{}`: {error}", file.name),
                        None,
                    ));
                }
            }
        }
        if stopping {
            output::note(&format!(
                "note: `{}` was stopping; starting it again once it has stopped",
                file.name
            ));
        } else {
            output::note(&format!(
                "note: the configuration of `{}` changed; restarting it",
                file.name
            ));
        }
        lifecycle::stop(&paths)?;
    }

    let published = published_ports(engine.as_ref(), &identity.name);
    let (plan, env_files) = plan_and_lease(context, &config, &identity, args, &published)?;
    envfiles::write(&env_files, &root)?;
    let env_values = envfiles::service_values(&config, &identity, &plan, &env_files)?;
    let compose = render_compose(&config, resolved.as_ref(), &identity, &plan, &env_values)?;
    if let Some(compose) = &compose {
        compose.write()?;
    }
    let mut file = model::build(
        &config,
        &ModelInputs {
            identity: &identity,
            plan: &plan,
            token: model::random_token(),
            active: &active,
            compose: compose.map(|compose| compose.backend),
            env_values: &env_values,
        },
    );
    file.env_files = env_files.into_iter().map(|file| file.target).collect();
    // The supervisor, and so every process service, inherits this `PATH`: `exec`, `shell`
    // and `env SERVICE` use it too (a virtualenv activated at `up` stays active there).
    file.path = std::env::var("PATH").ok();
    fs_err::create_dir_all(paths.logs())?;
    fs_err::create_dir_all(paths.data())?;
    file.write(&paths.instance_json())?;
    if let Some(source) = &source
        && let Err(error) = super::snapshot::seed(context, source, &file)
    {
        file.mark_stopped(crate::state::InstanceState::Stopped);
        file.write(&paths.instance_json())?;
        return Err(error);
    }
    super::shared::create_resources(&file)?;
    lifecycle::start_supervisor(&paths)?;
    lifecycle::wait_ready(&paths, &args.services, timeout)
}

/// Whether the instance's supervisor is gone or on its way out.
fn stopping_now(paths: &InstancePaths) -> Result<bool> {
    Ok(
        InstanceFile::read(&paths.instance_json())?.is_none_or(|file| {
            !file.supervisor_alive() || file.state == crate::state::InstanceState::Stopping
        }),
    )
}

/// `--from` copies data only into an instance that has none yet.
fn check_seedable(
    source: &super::snapshot::Source,
    identity: &Identity,
    paths: &InstancePaths,
    root: &Path,
    alive: bool,
) -> Result<()> {
    if let super::snapshot::Source::Instance(entry) = source
        && entry.name == identity.name
    {
        return Err(Error::usage(
            format!("`{}` cannot start from its own data", identity.name),
            Some("name another instance, or a snapshot".to_string()),
        ));
    }
    if alive || super::snapshot::has_data(paths, &identity.name, root)? {
        return Err(Error::usage(
            format!(
                "`{}` already has data; --from only seeds a new instance",
                identity.name
            ),
            Some(
                "`berth snapshot restore NAME --force` replaces its data; or `berth rm` it first"
                    .to_string(),
            ),
        ));
    }
    Ok(())
}

/// `berth up [SERVICE…]` with no other flag, for ups berth runs itself (after a copy,
/// or of the shared instance).
pub(super) fn plain_args(services: Vec<String>) -> UpArgs {
    UpArgs {
        services,
        port_offset: None,
        strict_ports: false,
        timeout: 120,
        attach: false,
        from: None,
    }
}

/// Brings an instance up again after a copy stopped it, as `berth up` in its root would,
/// with `services` (all when empty) active.
pub(super) fn start_again(
    context: &Context,
    entry: &LedgerEntry,
    services: Vec<String>,
) -> Result<()> {
    let again = Context {
        cwd: entry.root.clone(),
        ledger: context.ledger.clone(),
        json: context.json,
        selector: Selector::Name(entry.name.clone()),
        lock_timeout: context.lock_timeout,
    };
    start(&again, &plain_args(services)).map(|_| ())
}

/// The per-instance Compose file for this plan, when the project has compose services.
fn render_compose(
    config: &Config,
    resolved: Option<&Resolved>,
    identity: &Identity,
    plan: &ports::PortPlan,
    env_values: &IndexMap<String, Vec<(String, String)>>,
) -> Result<Option<InstanceCompose>> {
    let (Some(compose), Some(resolved)) = (&config.compose, resolved) else {
        return Ok(None);
    };
    let mut host_ports: IndexMap<String, IndexMap<String, u16>> = IndexMap::new();
    for planned in &plan.ports {
        host_ports
            .entry(planned.service.clone())
            .or_default()
            .insert(planned.port_name.clone(), planned.port);
    }
    let paths = InstancePaths::new(&config.root, &identity.name);
    Ok(Some(resolved.render(
        compose,
        &identity.name,
        &config.root,
        &host_ports,
        env_values,
        &paths.compose_file(),
    )?))
}

/// Finds or records the instance's name and index under the ledger lock, so two racing
/// `up`s never take the same name or index.
fn reserve_identity(
    context: &Context,
    config: &Config,
    foreign: &BTreeSet<String>,
) -> Result<Identity> {
    let mut ledger = context.ledger.lock()?;
    let data = &ledger.data;
    let here: Vec<&LedgerEntry> = data.at_root(&config.root).collect();
    let existing = match &context.selector {
        Selector::Name(name) => match data.find(name) {
            Some(entry) if entry.root == config.root => Some(entry.clone()),
            Some(entry) => {
                return Err(Error::usage(
                    format!(
                        "the instance name `{name}` belongs to `{}`",
                        entry.root.display()
                    ),
                    Some("choose another --name".to_string()),
                ));
            }
            None => None,
        },
        Selector::Index(index) => {
            if let Some(entry) = data
                .instances
                .iter()
                .find(|entry| entry.project == config.project && entry.index == *index)
            {
                if entry.root != config.root {
                    return Err(Error::usage(
                        format!(
                            "index {index} of project `{}` is held by `{}` at `{}`",
                            config.project,
                            entry.name,
                            entry.root.display()
                        ),
                        Some(
                            "pick another --instance, or omit it to get the lowest free index"
                                .to_string(),
                        ),
                    ));
                }
                Some(entry.clone())
            } else {
                None
            }
        }
        Selector::Only => match here.as_slice() {
            [] => None,
            [entry] => Some((*entry).clone()),
            several => {
                let names: Vec<&str> = several.iter().map(|entry| entry.name.as_str()).collect();
                return Err(Error::usage(
                    format!(
                        "`{}` has several instances: {}",
                        config.root.display(),
                        names.join(", ")
                    ),
                    Some("pick one with --name NAME or --instance N".to_string()),
                ));
            }
        },
    };
    if let Some(entry) = existing {
        if foreign.contains(&entry.name) {
            return Err(Error::usage(
                format!(
                    "a Compose project named `{}` that berth did not start now exists on the Docker engine",
                    entry.name
                ),
                Some(format!(
                    "berth never touches it: stop it (`docker compose -p {} down`), or `berth rm` this instance and `berth up` again to get another name",
                    entry.name
                )),
            ));
        }
        return Ok(Identity {
            name: entry.name,
            index: entry.index,
        });
    }
    let index = match context.selector {
        Selector::Index(index) => index,
        _ => lowest_free_index(data.indexes_in_use(&config.project)),
    };
    let name = match &context.selector {
        Selector::Name(name) if foreign.contains(name) => {
            return Err(Error::usage(
                format!(
                    "a Compose project named `{name}` already exists on the Docker engine and is not this instance's"
                ),
                Some(
                    "choose another --name; berth never takes over a project it did not create"
                        .to_string(),
                ),
            ));
        }
        Selector::Name(name) => name.clone(),
        _ => {
            let name = new_name(data, &config.root, !here.is_empty(), index, foreign);
            let first = default_name_candidates(&config.root);
            if let Some(taken) = first.first().filter(|first| foreign.contains(*first)) {
                output::note(&format!(
                    "note: a Compose project named `{taken}` that is not berth's exists on the engine; this instance is `{name}`"
                ));
            }
            name
        }
    };
    ledger.data.upsert(LedgerEntry {
        name: name.clone(),
        project: config.project.clone(),
        root: config.root.clone(),
        index,
        port_offset: 0,
        leases: Vec::new(),
        created_at: now(),
        started_at: None,
        git: None,
        shared: false,
        users: Vec::new(),
        env_files: Vec::new(),
    });
    ledger.save()?;
    Ok(Identity { name, index })
}

fn new_name(
    data: &LedgerData,
    root: &Path,
    root_has_instances: bool,
    index: u32,
    foreign: &BTreeSet<String>,
) -> String {
    let mut candidates = default_name_candidates(root);
    if root_has_instances {
        // A second instance of the same root (`--instance N`): suffix the index.
        candidates = candidates
            .into_iter()
            .map(|name| format!("{name}-{index}"))
            .collect();
    }
    let free = |name: &String| data.find(name).is_none() && !foreign.contains(name);
    candidates
        .iter()
        .find(|name| free(name))
        .cloned()
        .unwrap_or_else(|| {
            // Every candidate is taken (only possible with hand-made names): count upwards.
            let base = candidates
                .last()
                .cloned()
                .unwrap_or_else(|| "instance".to_string());
            (2..)
                .map(|number| format!("{base}-{number}"))
                .find(|name| free(name))
                .unwrap_or(base)
        })
}

/// Plans the ports and records the leases, under the ledger lock: concurrent `up`s
/// never lease the same port. The env files rendered for the plan are checked and
/// recorded in the same write, before any is written.
fn plan_and_lease(
    context: &Context,
    config: &Config,
    identity: &Identity,
    args: &UpArgs,
    published: &HashMap<u16, String>,
) -> Result<(ports::PortPlan, Vec<envfiles::RenderedEnvFile>)> {
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
    let entry = ledger.data.find(&identity.name).cloned();
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
        ledger: &ledger.data,
        instance: &identity.name,
        published,
    };
    let planned = ports::plan(&requests, &settings, &probe)
        .map_err(Error::from)
        .and_then(|plan| {
            let env_files = envfiles::render(config, identity, &plan);
            claim_env_files(&mut ledger.data, config, identity, &env_files)?;
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
                ledger
                    .data
                    .instances
                    .retain(|other| other.name != identity.name);
                ledger.save()?;
            }
            return Err(error);
        }
    };
    if plan.offset != 0 && choice == OffsetChoice::Smallest {
        output::note(&format!(
            "note: base ports are taken; `{}` runs at port offset {}",
            identity.name, plan.offset
        ));
    }
    let Some(entry) = ledger.data.find_mut(&identity.name) else {
        return Err(Error::failed(
            format!(
                "the ledger entry of `{}` vanished while starting",
                identity.name
            ),
            Some("another berth command removed it; run `berth up` again".to_string()),
        ));
    };
    entry.port_offset = plan.offset;
    // Recorded here rather than after the supervisor starts, to spare `up` a second
    // locked ledger write; a start that fails shows in `ls` as a dead supervisor.
    entry.started_at = Some(now());
    entry.git = crate::git::head(&config.root);
    entry.leases = plan
        .ports
        .iter()
        .map(|planned| Lease {
            service: planned.service.clone(),
            port_name: planned.port_name.clone(),
            port: planned.port,
        })
        .collect();
    ledger.save()?;
    Ok((plan, env_files))
}

/// Checks that berth may write each env file (see [`envfiles::claim`]) and records them
/// in the instance's ledger entry, the authority `up` and `rm` go by; the caller saves.
fn claim_env_files(
    data: &mut LedgerData,
    config: &Config,
    identity: &Identity,
    files: &[envfiles::RenderedEnvFile],
) -> Result<()> {
    let recorded: Vec<std::path::PathBuf> = data
        .at_root(&config.root)
        .flat_map(|entry| entry.env_files.iter().cloned())
        .collect();
    let claimed = envfiles::claim(config, files, &recorded)?;
    if let Some(entry) = data.find_mut(&identity.name) {
        for path in claimed {
            if !entry.env_files.contains(&path) {
                entry.env_files.push(path);
            }
        }
    }
    Ok(())
}

/// Whether the running instance was started from the same configuration: the model
/// rebuilt with its current ports must have the same digest.
fn same_config(
    context: &Context,
    config: &Config,
    resolved: Option<&Resolved>,
    file: &InstanceFile,
    identity: &Identity,
) -> Result<bool> {
    let Some(plan) = leased_plan(context, identity)? else {
        return Ok(false);
    };
    let all_planned = config.service_names().iter().all(|service| {
        config.ports_of(service).is_some_and(|ports| {
            ports
                .keys()
                .all(|port_name| plan.get(service, port_name).is_some())
        })
    });
    if !all_planned {
        return Ok(false);
    }
    let env_files = envfiles::render(config, identity, &plan);
    let env_values = envfiles::service_values(config, identity, &plan, &env_files)?;
    let compose = render_compose(config, resolved, identity, &plan, &env_values)?;
    let rebuilt = model::build(
        config,
        &ModelInputs {
            identity,
            plan: &plan,
            token: String::new(),
            active: &[],
            compose: compose.map(|compose| compose.backend),
            env_values: &env_values,
        },
    );
    Ok(rebuilt.spec_digest == file.spec_digest)
}

/// The port plan the instance's leases record.
fn leased_plan(context: &Context, identity: &Identity) -> Result<Option<ports::PortPlan>> {
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

fn create_state_dir(paths: &InstancePaths, root: &Path) -> Result<()> {
    crate::state::check_state_root(root)?;
    crate::state::create_private_dir(&paths.dir)?;
    // An existing directory (made by hand, or by an older tool) is made private too: it
    // holds logs and env values.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&paths.dir, std::fs::Permissions::from_mode(0o700)).map_err(
        |source| crate::state::StateError::Write {
            path: paths.dir.clone(),
            source,
        },
    )?;
    crate::git::exclude(root, ".berth/").map_err(|error| {
        Error::failed(
            format!("cannot add `.berth/` to the git exclude file: {error}"),
            None,
        )
    })?;
    Ok(())
}

pub(super) fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}
