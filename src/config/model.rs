//! The validated configuration: plain data, no spans, no unchecked names.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;

use super::policy::{HttpStatus, LogLimits, RestartPolicy};
use super::template::{CommandTemplate, Template};

#[derive(Debug, Clone)]
pub struct Config {
    /// The canonical path of berth.toml.
    pub path: PathBuf,
    /// The canonical project root (the directory holding berth.toml).
    pub root: PathBuf,
    pub project: String,
    pub stride: u32,
    /// `[ports] strategy`: how an instance's port offset is chosen.
    pub port_strategy: PortStrategy,
    /// `[worktree]`: how `berth new` makes a worktree.
    pub worktree: WorktreeConfig,
    /// `[router] default`: the service `INSTANCE.localhost` reaches (else the first that
    /// speaks HTTP).
    pub router_default: Option<String>,
    /// Inclusive range for `port = "auto"`.
    pub auto_range: (u16, u16),
    /// `[logs]`: how much of each service's output is kept.
    pub logs: LogLimits,
    /// Process services, from berth.toml.
    pub services: IndexMap<String, ServiceConfig>,
    /// The Compose side of the project, when it has a Compose file.
    pub compose: Option<ComposeConfig>,
    /// `[[env_files]]`: per-instance copies of dotenv files.
    pub env_files: Vec<EnvFileConfig>,
    /// `[project] env`: variables every service gets; a service's own `env` wins.
    pub env: IndexMap<String, Template>,
    /// `[project] env_file`: a dotenv file every service gets.
    pub env_file: Option<Template>,
    /// `database = …` of any service (process or compose), by service name.
    pub databases: IndexMap<String, DatabaseConfig>,
    /// Host ports of services that run elsewhere (the shared instance's), which
    /// templates and `BERTH_PORT_*` of this instance still name. Set by `up`.
    pub external_ports: IndexMap<String, IndexMap<String, u16>>,
    /// After [`Config::partition`] of an instance: the shared services it uses, with their
    /// `per_instance` commands.
    pub uses_shared: IndexMap<String, Option<PerInstanceConfig>>,
    /// Where the router answers, for `{{ public_url.S }}`: the running router's port and
    /// scheme, else its default port over http. Set by `up`.
    pub router: crate::router::RouterAddress,
    /// The shared instance that runs them (name and root), once `up` ensured it runs.
    pub shared_instance: Option<(String, PathBuf)>,
}

/// A service's database, for `berth db`: how to connect to it on its port.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub kind: DatabaseKind,
    /// Templates; unset ones default per kind and service (see `model`).
    pub name: Option<Template>,
    pub user: Option<Template>,
    pub password: Option<Template>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseKind {
    Postgres,
}

/// `[ports] strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PortStrategy {
    /// The base ports when free, else the smallest free multiple of the stride.
    #[default]
    Offset,
    /// The main work tree keeps the base ports; any other instance's offset comes from a
    /// hash of its name, so a name gets the same ports on every machine.
    Hash,
}

/// `[worktree]`: where `berth new` puts a worktree and what it brings over from the main
/// work tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorktreeConfig {
    /// Where the worktree goes: `{main_parent}`, `{main_dir}` and `{name}` are replaced;
    /// relative to the main work tree.
    pub dir: String,
    /// Paths and globs (relative to the main work tree) copied into the new worktree.
    pub copy: Vec<String>,
    /// Paths and globs symlinked from the new worktree to the main work tree's.
    pub link: Vec<String>,
    /// Shell commands run once in the new worktree, in order.
    pub setup: Vec<String>,
}

impl Default for WorktreeConfig {
    fn default() -> Self {
        WorktreeConfig {
            dir: DEFAULT_WORKTREE_DIR.to_string(),
            copy: Vec::new(),
            link: Vec::new(),
            setup: Vec::new(),
        }
    }
}

/// Beside the main work tree: `~/src/shop` gets `~/src/shop-feature-auth`.
pub const DEFAULT_WORKTREE_DIR: &str = "{main_parent}/{main_dir}-{name}";

/// `[services.X.per_instance]` of a shared service: commands run for each instance.
#[derive(Debug, Clone, PartialEq)]
pub struct PerInstanceConfig {
    pub create: Option<CommandTemplate>,
    pub drop: Option<CommandTemplate>,
}

/// One `[[env_files]]` entry, its source already read and parsed.
#[derive(Debug, Clone)]
pub struct EnvFileConfig {
    pub source: PathBuf,
    pub document: crate::dotenv::Document,
    /// Relative to the root; may use templates (`.env.{{ instance.name }}`).
    pub target: Template,
    /// Where `target` is written in berth.toml, for errors about the rendered path.
    pub target_site: super::Site,
    pub set: IndexMap<String, Template>,
    /// Services (process or compose) that get the file's variables.
    pub services: Vec<String>,
}

impl Config {
    /// Every service name: compose services first (processes usually depend on them).
    pub fn service_names(&self) -> Vec<String> {
        let compose = self.compose.iter().flat_map(|c| c.services.keys());
        compose.chain(self.services.keys()).cloned().collect()
    }

    pub fn has_service(&self, name: &str) -> bool {
        self.ports_of(name).is_some()
    }

    /// The declared ports of any service, by name.
    pub fn ports_of(&self, name: &str) -> Option<&IndexMap<String, PortBase>> {
        match self.services.get(name) {
            Some(service) => Some(&service.ports),
            None => Some(&self.compose.as_ref()?.services.get(name)?.ports),
        }
    }

    /// Keeps the shared services (`shared`) or the others. What is dropped runs apart
    /// (ensured up first), so dependencies on it are dropped too; the shared part writes
    /// no env files (those are the instances').
    pub fn partition(&mut self, shared: bool) {
        let shared_names = self.shared_services();
        let keep = |name: &String| shared_names.contains(name) == shared;
        if !shared {
            self.note_shared_uses();
        }
        self.services.retain(|name, _| keep(name));
        for service in self.services.values_mut() {
            service.depends_on.retain(|dependency| keep(dependency));
        }
        if let Some(compose) = &mut self.compose {
            compose.services.retain(|name, _| keep(name));
            for service in compose.services.values_mut() {
                service.depends_on.retain(|dependency| keep(dependency));
            }
        }
        if self
            .compose
            .as_ref()
            .is_some_and(|compose| compose.services.is_empty())
        {
            self.compose = None;
        }
        if shared {
            self.env_files.clear();
            // A shared server's own `berth db` uses the defaults where a template names
            // an instance (`app_{{ instance.index }}` is each user's database, not its).
            for database in self.databases.values_mut() {
                for field in [
                    &mut database.name,
                    &mut database.user,
                    &mut database.password,
                ] {
                    if field.as_ref().is_some_and(Template::names_instance) {
                        *field = None;
                    }
                }
            }
        }
        for file in &mut self.env_files {
            file.services.retain(|service| keep(service));
        }
        // An instance keeps the databases of the shared services it uses: `berth db`
        // reaches its own database on them.
        let kept: Vec<String> = self.service_names();
        self.databases
            .retain(|name, _| kept.contains(name) || (!shared && shared_names.contains(name)));
    }

    /// Records the shared services an instance uses, with their `per_instance` commands.
    /// A compose one's database defaults come from its Compose environment, which the
    /// instance no longer has once the service is partitioned away: they are kept here.
    fn note_shared_uses(&mut self) {
        let process = self
            .services
            .iter()
            .filter(|(_, service)| service.shared)
            .map(|(name, service)| (name.clone(), service.per_instance.clone(), None));
        let compose = self
            .compose
            .iter()
            .flat_map(|compose| compose.services.iter())
            .filter(|(_, service)| service.shared)
            .map(|(name, service)| {
                let environment = Some(service.environment.clone());
                (name.clone(), service.per_instance.clone(), environment)
            });
        let uses: Vec<_> = compose.chain(process).collect();
        for (name, per_instance, environment) in uses {
            if let (Some(database), Some(environment)) =
                (self.databases.get_mut(&name), environment)
            {
                let default = |key: &str| {
                    environment
                        .get(key)
                        .filter(|value| !value.is_empty())
                        .and_then(|value| Template::parse(value).ok())
                };
                database.user = database.user.take().or_else(|| default("POSTGRES_USER"));
                database.name = database.name.take().or_else(|| default("POSTGRES_DB"));
                database.password = database
                    .password
                    .take()
                    .or_else(|| default("POSTGRES_PASSWORD"));
            }
            self.uses_shared.insert(name, per_instance);
        }
    }

    /// Names of the shared services (`shared = true`), compose ones first.
    pub fn shared_services(&self) -> Vec<String> {
        let compose = self
            .compose
            .iter()
            .flat_map(|compose| compose.services.iter())
            .filter(|(_, service)| service.shared)
            .map(|(name, _)| name.clone());
        let process = self
            .services
            .iter()
            .filter(|(_, service)| service.shared)
            .map(|(name, _)| name.clone());
        compose.chain(process).collect()
    }

    /// What a service waits for before it starts, of either kind.
    pub fn depends_on(&self, name: &str) -> &[String] {
        if let Some(service) = self.services.get(name) {
            return &service.depends_on;
        }
        self.compose
            .as_ref()
            .and_then(|compose| compose.services.get(name))
            .map_or(&[], |service| &service.depends_on)
    }
}

/// `[compose]` plus the services the Compose tool resolved.
#[derive(Debug, Clone)]
pub struct ComposeConfig {
    pub settings: ComposeSettings,
    pub services: IndexMap<String, ComposeServiceConfig>,
}

/// How to find and rewrite the Compose files (`[compose]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ComposeSettings {
    /// Canonical paths of the user's Compose files, in `-f` order.
    pub files: Vec<PathBuf>,
    pub profiles: Vec<String>,
    /// The host address every published port is bound to.
    pub bind: IpAddr,
    /// Volume and network keys shared by every instance of the project.
    pub shared: Vec<String>,
}

/// A compose service as berth plans it.
#[derive(Debug, Clone, PartialEq)]
pub struct ComposeServiceConfig {
    /// Published ports by name: the container port (`5432`, `53-udp`).
    pub ports: IndexMap<String, PortBase>,
    /// `depends_on` from the Compose file plus any from berth.toml (which may name
    /// process services).
    pub depends_on: Vec<String>,
    /// The Docker healthcheck's test as a command for the container, when it has one.
    pub healthcheck: Option<Vec<String>>,
    /// The container's environment as the Compose file sets it (for database defaults
    /// such as `POSTGRES_USER`).
    pub environment: IndexMap<String, String>,
    /// `shared = true` and `per_instance` from berth.toml.
    pub shared: bool,
    pub per_instance: Option<PerInstanceConfig>,
}

/// What the Compose tool resolved, as the loader needs it: services, ports, health.
pub type ComposeCatalog = IndexMap<String, ComposeServiceConfig>;

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub command: CommandTemplate,
    pub cwd: Option<Template>,
    pub env: IndexMap<String, Template>,
    /// A dotenv file (relative to the root) loaded into the process's environment.
    pub env_file: Option<Template>,
    /// Declared ports by name, in declaration order. A single `port` is named `default`.
    pub ports: IndexMap<String, PortBase>,
    pub depends_on: Vec<String>,
    pub ready: ReadyConfig,
    pub restart: RestartPolicy,
    pub setup: Option<CommandTemplate>,
    pub stop_grace: Duration,
    /// The signal name (`SIGINT`) sent to ask for a stop; SIGTERM when unset.
    pub stop_signal: Option<String>,
    /// `http`, `https` or `tcp`: what the first port speaks (an `http` readiness check
    /// implies `http`).
    pub protocol: Option<String>,
    /// Runs once per project per machine (`shared = true`), used by every instance.
    pub shared: bool,
    pub per_instance: Option<PerInstanceConfig>,
}

/// The name given to the port declared by `port = …`.
pub const DEFAULT_PORT_NAME: &str = "default";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortBase {
    Fixed(u16),
    Auto,
}

#[derive(Debug, Clone)]
pub enum ReadyConfig {
    /// TCP on the first port when the service has one, else "started".
    Default,
    /// Ready once started, port or not (`ready = { tcp = false }`).
    Started,
    Tcp,
    /// `GET path` on the first port, ready on an answer `status` accepts.
    Http {
        path: String,
        status: HttpStatus,
    },
    Exec(CommandTemplate),
    Log(String),
}
