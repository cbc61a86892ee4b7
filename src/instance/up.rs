//! `up`: reserve the instance's name, bring the shared instance up first when it needs
//! one, plan and lease ports, write every file from the model, start the supervisor and
//! wait until ready.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use indexmap::IndexMap;

use super::lease::{claim_env_files, leased_plan, plan_and_lease};
use super::reserve::reserve_identity;
use super::source::{Source, has_data, resolve_source, seed};
use super::{Progress, StatusView};
use super::{lifecycle, select, shared};
use crate::compose::{self, InstanceCompose, Resolved};
use crate::config::Config;
use crate::context::{Context, Selector};
use crate::docker::Engine;
use crate::envfiles;
use crate::error::{Error, Result};
use crate::ledger::LedgerEntry;
use crate::model::{self, Identity, ModelInputs};
use crate::ports;
use crate::probe::PublishedPorts;
use crate::state::{FileLock, InstanceFile, InstancePaths, Published};
use crate::supervisor::{self, Request};

/// What `up` is asked to do.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Start only these services (and what they depend on); all when empty.
    pub services: Vec<String>,
    /// Use exactly this port offset.
    pub port_offset: Option<u32>,
    /// Fail instead of moving to another offset when a base port is taken.
    pub strict_ports: bool,
    /// How long to wait for every service to be ready.
    pub timeout: Duration,
    /// Seed a new instance with the data of another instance or a snapshot.
    pub from: Option<String>,
}

impl UpOptions {
    /// `berth up [SERVICE…]` with no other flag, for ups berth runs itself (after a copy,
    /// or of the shared instance).
    pub fn plain(services: Vec<String>) -> Self {
        UpOptions {
            services,
            port_offset: None,
            strict_ports: false,
            timeout: Duration::from_secs(120),
            from: None,
        }
    }
}

/// Brings the instance up and returns it once ready. The operation lock is released on
/// return, so a caller that follows the instance (`up --attach`) can take it again to
/// stop it.
pub fn up(context: &Context, options: &UpOptions, progress: &dyn Progress) -> Result<StatusView> {
    let router = crate::router::state::address(context.ledger.dir());
    start(context, options, progress).map(|file| StatusView::from_file(&file).with_router(router))
}

/// Which part of the project an `up` brings up: an instance (every service but the
/// shared ones), or the project's shared instance (only those).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Instance,
    Shared,
}

/// Brings the instance up and returns it once ready; the operation lock is released on
/// return, so `--attach` can take it again to stop the instance.
fn start(context: &Context, options: &UpOptions, progress: &dyn Progress) -> Result<InstanceFile> {
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
    start_part(context, options, part, progress)
}

pub(crate) fn start_part(
    context: &Context,
    args: &UpOptions,
    part: Part,
    progress: &dyn Progress,
) -> Result<InstanceFile> {
    let mut project = load(context, args, part)?;
    let (identity, _operation) = reserve(context, &project, args, part, progress)?;
    // The shared instance first, as its own phase: this instance's model needs its ports.
    if !project.shared_needed.is_empty() {
        let shared = shared::ensure(
            context,
            &project.config.project,
            &project.root,
            &identity.name,
            args.timeout,
            progress,
        )?;
        project.config.external_ports = shared.ports.clone();
        project.config.shared_instance = Some((shared.name, shared.root));
    }
    let paths = InstancePaths::new(&project.root, &identity.name);
    create_state_dir(&paths, &project.root)?;
    let mut running = InstanceFile::read(&paths.instance_json())?;
    if let Some(file) = &mut running {
        select::reap_orphaned_locked(&context.ledger, &paths, file, progress)?;
    }
    if let Some(source) = &project.source {
        let alive = running.as_ref().is_some_and(InstanceFile::supervisor_alive);
        check_seedable(source, &identity, &paths, &project.root, alive)?;
    }
    if let Some(file) = running.as_ref().filter(|file| file.supervisor_alive()) {
        if let Some(ready) = keep_running(context, &project, &identity, file, args, progress)? {
            return Ok(ready);
        }
        lifecycle::stop(&paths)?;
    }
    start_fresh(context, &project, &identity, args, progress)
}

/// The project as `up` found it: its configuration (the part asked for), the ports the
/// engine's containers publish, and what must be settled before the instance is
/// reserved.
struct Project {
    root: std::path::PathBuf,
    config: Config,
    resolved: Option<Resolved>,
    /// The host ports containers publish, as the engine answers.
    published: PublishedPorts,
    /// Where `--from` copies data from.
    source: Option<Source>,
    /// Compose project names on the engine that are not this root's.
    foreign: BTreeSet<String>,
    /// The shared services the asked-for ones need (they run in the shared instance).
    shared_needed: Vec<String>,
}

/// Loads and checks the configuration, and everything that can fail before anything is
/// reserved (a typo in `--from` reserves nothing).
fn load(context: &Context, args: &UpOptions, part: Part) -> Result<Project> {
    let root = context.project_root()?;
    // Before anything is written, the Compose resolution cache in `.berth/` included.
    crate::state::check_state_root(&root)?;
    // Asked first, so the engine answers while the project loads.
    let ambient = Engine::from_env().ok();
    let published = PublishedPorts::query(ambient.as_ref());
    let (mut config, mut resolved) = compose::load_project(&root)?;
    config.router = router_address(context);
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
        None => ambient,
    };
    if let (Some(resolved), Some(engine)) = (resolved.as_mut(), engine.as_ref()) {
        resolved
            .read_image_volumes(engine)
            .map_err(crate::Error::from)?;
    }
    let source = args
        .from
        .as_deref()
        .map(|text| resolve_source(context, &config.project, text))
        .transpose()?;
    // A Compose project of that name that is not ours makes the name taken.
    let foreign = match (&engine, &config.compose, part) {
        (Some(engine), Some(_), Part::Instance) => compose::foreign_projects(engine, &config.root)?,
        _ => BTreeSet::new(),
    };
    Ok(Project {
        root,
        config,
        resolved,
        published,
        source,
        foreign,
        shared_needed,
    })
}

/// Reserves the instance's name and index and takes its operation lock. One `up`,
/// `down`, `restart`, `rm` or `gc` at a time per instance: ten racing `up`s of the same
/// instance start exactly one supervisor, and an `rm` that held the lock may have
/// forgotten the instance meanwhile, in which case it is reserved afresh.
fn reserve(
    context: &Context,
    project: &Project,
    args: &UpOptions,
    part: Part,
    progress: &dyn Progress,
) -> Result<(Identity, FileLock)> {
    let mut attempts = 0;
    loop {
        let identity = match part {
            Part::Instance => {
                reserve_identity(context, &project.config, &project.foreign, progress)?
            }
            Part::Shared => shared::reserve(context, &project.config)?,
        };
        let lock = FileLock::acquire(
            &context.ledger.operation_lock(&identity.name)?,
            args.timeout.max(Duration::from_secs(30)),
        )?;
        let kept = context
            .ledger
            .read()?
            .find(&identity.name)
            .is_some_and(|entry| entry.root == project.root);
        attempts += 1;
        if kept || attempts == 5 {
            return Ok((identity, lock));
        }
    }
}

/// An `up` of a running instance: with the same configuration, it starts what is not
/// running and waits (`Some`); otherwise the instance must be stopped and started afresh
/// (`None`, after a note saying why).
fn keep_running(
    context: &Context,
    project: &Project,
    identity: &Identity,
    file: &InstanceFile,
    args: &UpOptions,
    progress: &dyn Progress,
) -> Result<Option<InstanceFile>> {
    let config = &project.config;
    let paths = file.paths();
    // A supervisor already stopping (a `down` or a copy killed halfway asked it to, or
    // the `up` that started it died before it recorded the instance) cannot start
    // anything: let it finish, then start afresh.
    let mut stopping = on_its_way_out(file);
    if !stopping
        && args
            .port_offset
            .is_none_or(|offset| offset == file.port_offset)
        && same_config(context, config, project.resolved.as_ref(), file, identity)?
    {
        // Env files are regenerated on every `up`, even one that changes nothing else.
        if let Some(plan) = leased_plan(context, identity)? {
            let env_files = envfiles::render(config, identity, &plan);
            let mut ledger = context.ledger.lock()?;
            claim_env_files(&mut ledger, config, identity, &env_files)?;
            ledger.save()?;
            drop(ledger);
            envfiles::write(&env_files, &project.root)?;
        }
        // A shared instance started afresh (its data removed) needs them again.
        shared::create_resources(file)?;
        let request = Request::Start {
            services: model::with_dependencies(config, &args.services),
        };
        match supervisor::send(&paths.dir, &request) {
            Ok(_) => return wait_ready(&paths, &args.services, args.timeout, progress).map(Some),
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
        progress.note(&format!(
            "`{}` was stopping; starting it again once it has stopped",
            file.name
        ));
    } else {
        progress.note(&format!(
            "the configuration of `{}` changed; restarting it",
            file.name
        ));
    }
    Ok(None)
}

/// Starts the (stopped) instance: writes its files (see [`write_files`]), seeds its
/// data with `--from`, starts the supervisor and waits until the services are ready.
fn start_fresh(
    context: &Context,
    project: &Project,
    identity: &Identity,
    args: &UpOptions,
    progress: &dyn Progress,
) -> Result<InstanceFile> {
    let paths = InstancePaths::new(&project.root, &identity.name);
    // Started first, so that its own start overlaps the writes below.
    let supervisor = lifecycle::PendingSupervisor::start(&paths, &identity.name)?;
    let (mut file, ledger_rename) = write_files(context, project, identity, args, progress)?;
    if let Some(source) = &project.source
        && let Err(error) = seed(context, source, &file, progress)
    {
        file.mark_stopped(crate::state::InstanceState::Stopped);
        file.write(&paths.instance_json())?;
        return Err(error);
    }
    shared::create_resources(&file)?;
    // The supervisor starts the services while `instance.json` is written (a failure
    // here closes its input: it stops them and records the instance stopped), and the
    // renames are made durable after.
    let recording = supervisor.go(&paths, &file)?;
    let file_rename = file.publish(&paths.instance_json())?;
    recording.recorded(&paths)?;
    for rename in [ledger_rename, file_rename] {
        rename.sync()?;
    }
    wait_ready(&paths, &args.services, args.timeout, progress)
}

/// Reserves the instance's name and index in the ledger and starts nothing (`berth new
/// --no-up`): a later `up` or `prepare` in its root finds it by that name.
pub(crate) fn reserve_only(context: &Context, progress: &dyn Progress) -> Result<String> {
    let options = UpOptions::plain(Vec::new());
    let project = load(context, &options, Part::Instance)?;
    let (identity, _operation) = reserve(context, &project, &options, Part::Instance, progress)?;
    Ok(identity.name)
}

/// `prepare`: what `up` does before it starts anything. Plans and leases the ports and
/// writes the env files, `compose.yml` and `instance.json` (the instance stopped), for
/// tools that start the processes themselves. A running instance is left as it is.
pub fn prepare(
    context: &Context,
    options: &UpOptions,
    progress: &dyn Progress,
) -> Result<StatusView> {
    let project = load(context, options, Part::Instance)?;
    if let Some(shared) = project.shared_needed.first() {
        return Err(Error::usage(
            format!(
                "`{shared}` runs in the project's shared instance, which `prepare` does not start"
            ),
            Some("`berth up` starts the shared instance and this one".to_string()),
        ));
    }
    let (identity, _operation) = reserve(context, &project, options, Part::Instance, progress)?;
    let paths = InstancePaths::new(&project.root, &identity.name);
    create_state_dir(&paths, &project.root)?;
    if let Some(file) = InstanceFile::read(&paths.instance_json())?
        && file.supervisor_alive()
    {
        progress.note(&format!(
            "`{}` is running; its files are those it runs with",
            identity.name
        ));
        return Ok(StatusView::from_file(&file));
    }
    let (mut file, ledger_rename) = write_files(context, &project, &identity, options, progress)?;
    ledger_rename.sync()?;
    file.mark_stopped(crate::state::InstanceState::Stopped);
    file.write(&paths.instance_json())?;
    let mut ledger = context.ledger.lock()?;
    if ledger.mark_stopped(&identity.name) {
        ledger.save()?;
    }
    Ok(StatusView::from_file(&file))
}

/// Plans and leases the instance's ports, builds the model once and writes every file
/// from it but `instance.json` (the caller records the model): env files,
/// `compose.yml`, the logs and data directories. The rename of the ledger is returned
/// to be made durable (see [`crate::durable::publish_atomic`]).
fn write_files(
    context: &Context,
    project: &Project,
    identity: &Identity,
    args: &UpOptions,
    progress: &dyn Progress,
) -> Result<(InstanceFile, Published)> {
    let (config, root) = (&project.config, &project.root);
    let paths = InstancePaths::new(root, &identity.name);
    let published = project.published.outside(&identity.name);
    // Read once: the ledger and `instance.json` record the same head.
    let git = crate::git::head(root);
    let (plan, env_files, ledger_rename) = plan_and_lease(
        context,
        config,
        identity,
        args,
        &published,
        git.clone(),
        progress,
    )?;
    let env_values = envfiles::service_values(config, identity, &plan, &env_files)?;
    let resolved = project.resolved.as_ref();
    let compose = render_compose(config, resolved, identity, &plan, &env_values)?;
    let active = model::with_dependencies(config, &args.services);
    let file = model::build(
        config,
        &ModelInputs {
            identity,
            plan: &plan,
            token: model::random_token(),
            active: &active,
            compose: compose.as_ref().map(|compose| compose.backend.clone()),
            env_values: &env_values,
            env_files: env_files.iter().map(|file| file.target.clone()).collect(),
            git,
            // The supervisor, and so every process service, inherits this `PATH`: `exec`,
            // `shell` and `env SERVICE` use it too (a virtualenv activated at `up` stays
            // active there).
            path: std::env::var("PATH").ok(),
        },
    );
    // Every file is written from what the model was built from, once it is built.
    envfiles::write(&env_files, root)?;
    if let Some(compose) = &compose {
        compose.write()?;
    }
    fs_err::create_dir_all(paths.logs())?;
    fs_err::create_dir_all(paths.data())?;
    Ok((file, ledger_rename))
}

/// Waits for readiness, with a spinner where the progress sink shows one.
fn wait_ready(
    paths: &InstancePaths,
    services: &[String],
    timeout: Duration,
    progress: &dyn Progress,
) -> Result<InstanceFile> {
    progress.waiting("waiting for the services to be ready");
    let ready = lifecycle::wait_ready(paths, services, timeout, progress);
    progress.done_waiting();
    ready
}

/// Whether the instance's supervisor is gone or on its way out.
fn stopping_now(paths: &InstancePaths) -> Result<bool> {
    Ok(InstanceFile::read(&paths.instance_json())?
        .is_none_or(|file| !file.supervisor_alive() || on_its_way_out(&file)))
}

/// Whether a live supervisor's instance says it is stopping or stopped: it was asked
/// to stop, or the `up` that started it died before recording the instance (the file
/// is then the one from before, stopped, until the supervisor writes it stopping); it
/// exits soon either way.
fn on_its_way_out(file: &InstanceFile) -> bool {
    matches!(
        file.state,
        crate::state::InstanceState::Stopping | crate::state::InstanceState::Stopped
    )
}

/// `--from` copies data only into an instance that has none yet.
fn check_seedable(
    source: &Source,
    identity: &Identity,
    paths: &InstancePaths,
    root: &Path,
    alive: bool,
) -> Result<()> {
    if let Source::Instance(entry) = source
        && entry.name == identity.name
    {
        return Err(Error::usage(
            format!("`{}` cannot start from its own data", identity.name),
            Some("name another instance, or a snapshot".to_string()),
        ));
    }
    if alive || has_data(paths, &identity.name, root)? {
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

/// Brings an instance up again after a copy stopped it, as `berth up` in its root would,
/// with `services` (all when empty) active.
pub(crate) fn start_again(
    context: &Context,
    entry: &LedgerEntry,
    services: Vec<String>,
    progress: &dyn Progress,
) -> Result<()> {
    let again = context.for_instance(&entry.name, &entry.root);
    start(&again, &UpOptions::plain(services), progress).map(|_| ())
}

/// The per-instance Compose file for this plan, when the project has compose services.
pub(super) fn render_compose(
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
            env_files: Vec::new(),
            git: None,
            path: None,
        },
    );
    Ok(rebuilt.spec_digest == file.spec_digest)
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

/// Where `{{ public_url.S }}` points: the running router, else the router's default port.
fn router_address(context: &Context) -> crate::router::RouterAddress {
    crate::router::state::address(context.ledger.dir()).unwrap_or(crate::router::RouterAddress {
        port: crate::router::DEFAULT_PORT,
        https: false,
    })
}

pub(crate) fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}
