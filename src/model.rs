//! Builds the instance model from config, identity and port plan: every template rendered.

use std::collections::BTreeMap;
use std::path::Path;

use indexmap::IndexMap;
use sha2::{Digest, Sha256};

use crate::config::template::{CommandTemplate, Template, Var};
use crate::config::{Config, DatabaseConfig, ReadyConfig};
use crate::env_vars;
use crate::ports::PortPlan;
use crate::router::routes;
use crate::state::{
    ComposeBackend, ComposeReady, ComposeSpec, DatabaseSpec, INSTANCE_FORMAT_VERSION, InstanceFile,
    InstancePaths, InstanceState, ProcessSpec, ReadyCheck, ServiceRecord, ServiceSpec,
    ServiceState, SharedUse,
};

/// Who the instance is, as decided under the ledger lock.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub index: u32,
}

/// Everything the model needs besides the config.
pub struct ModelInputs<'a> {
    pub identity: &'a Identity,
    pub plan: &'a PortPlan,
    pub token: String,
    /// Services `up` asked for (with their dependencies); all when empty.
    pub active: &'a [String],
    /// The Compose tool and per-instance file, when the project has compose services.
    pub compose: Option<ComposeBackend>,
    /// Variables each service gets from dotenv files (see [`crate::envfiles`]).
    pub env_values: &'a IndexMap<String, Vec<(String, String)>>,
    /// The env files written for the instance (targets, relative to the root).
    pub env_files: Vec<std::path::PathBuf>,
    /// Where the work tree was (branch, commit) when the instance started.
    pub git: Option<crate::git::GitHead>,
    /// The `PATH` the supervisor and every process service inherit.
    pub path: Option<String>,
}

/// The instance file for a fresh start: all services pending, nothing running yet. Pure:
/// it reads no file, clock or environment; everything comes in through `inputs`.
pub fn build(config: &Config, inputs: &ModelInputs) -> InstanceFile {
    let paths = InstancePaths::new(&config.root, &inputs.identity.name);
    let ports = planned_ports(config, inputs.plan);
    let values = Values {
        config,
        identity: inputs.identity,
        paths: &paths,
        ports: &ports,
        offset: inputs.plan.offset,
    };
    let value = |var: &Var| values.get(var);

    let mut env = BTreeMap::new();
    env.insert(
        env_vars::BERTH_INSTANCE.to_string(),
        inputs.identity.name.clone(),
    );
    env.insert(
        env_vars::BERTH_INDEX.to_string(),
        inputs.identity.index.to_string(),
    );
    env.insert(
        env_vars::BERTH_PORT_OFFSET.to_string(),
        inputs.plan.offset.to_string(),
    );
    env.insert(env_vars::BERTH_PROJECT.to_string(), config.project.clone());
    env.insert(
        env_vars::BERTH_ROOT.to_string(),
        config.root.display().to_string(),
    );
    env.insert(
        env_vars::BERTH_DATA.to_string(),
        paths.data().display().to_string(),
    );
    for (service, service_ports) in &ports {
        if let Some(first) = service_ports.values().next() {
            env.insert(env_vars::port_variable(service, None), first.to_string());
        }
        if let Some((_, port)) = service_ports.iter().find(|(name, _)| is_tcp(name)) {
            env.insert(
                env_vars::url_variable(service),
                format!("http://127.0.0.1:{port}"),
            );
        }
        for (port_name, port) in service_ports {
            if port_name != crate::config::DEFAULT_PORT_NAME {
                env.insert(
                    env_vars::port_variable(service, Some(port_name)),
                    port.to_string(),
                );
            }
        }
    }

    let is_active = |name: &String| inputs.active.is_empty() || inputs.active.contains(name);
    let compose_services = config
        .compose
        .iter()
        .flat_map(|compose| compose.services.iter())
        .map(|(name, service)| {
            let service_ports = ports[name].clone();
            let tcp_ports: Vec<u16> = service_ports
                .iter()
                .filter(|(port_name, _)| is_tcp(port_name))
                .map(|(_, port)| *port)
                .collect();
            let ready = if let Some(test) = &service.healthcheck {
                ComposeReady::Healthcheck {
                    test: test.clone(),
                    ports: tcp_ports.clone(),
                }
            } else if !tcp_ports.is_empty() {
                ComposeReady::Tcp {
                    ports: tcp_ports.clone(),
                }
            } else {
                ComposeReady::Running
            };
            let spec = ServiceSpec::Compose(ComposeSpec {
                depends_on: service.depends_on.clone(),
                ready,
                log: paths.log(name),
                log_limits: config.logs,
            });
            let url = service_ports
                .iter()
                .filter(|(port_name, _)| is_tcp(port_name))
                .find_map(|(port_name, port)| {
                    let scheme = web_scheme(port_name)?;
                    Some(format!("{scheme}://127.0.0.1:{port}"))
                });
            (
                name.clone(),
                pending_record("compose", is_active(name), service_ports, url, spec),
            )
        });
    let process_services = config.services.iter().map(|(name, service)| {
        let service_ports = ports[name].clone();
        let first_port = service_ports.values().next().copied();
        let cwd = match &service.cwd {
            Some(cwd) => config.root.join(cwd.render(&value)),
            None => config.root.clone(),
        };
        // Dotenv values first: berth's own variables and the service's `env` win.
        let mut process_env: IndexMap<String, String> = inputs
            .env_values
            .get(name)
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        process_env.extend(env.clone());
        if let Some(port) = first_port {
            process_env.insert(env_vars::PORT.to_string(), port.to_string());
        }
        for (key, template) in &service.env {
            process_env.insert(key.clone(), template.render(&value));
        }
        let ready = match &service.ready {
            ReadyConfig::Started => ReadyCheck::Started,
            ReadyConfig::Default | ReadyConfig::Tcp => match first_port {
                Some(port) => ReadyCheck::Tcp { port },
                None => ReadyCheck::Started,
            },
            ReadyConfig::Http { path, status } => ReadyCheck::Http {
                port: first_port.unwrap_or(0),
                path: path.clone(),
                status: status.clone(),
            },
            ReadyConfig::Exec(command) => ReadyCheck::Exec {
                argv: render_command(command, &value, &cwd),
            },
            ReadyConfig::Log(pattern) => ReadyCheck::Log {
                pattern: pattern.clone(),
            },
        };
        let spec = ProcessSpec {
            argv: render_command(&service.command, &value, &cwd),
            cwd: cwd.clone(),
            env: process_env,
            setup: service
                .setup
                .as_ref()
                .map(|setup| render_command(setup, &value, &cwd)),
            ready,
            restart: service.restart,
            depends_on: service.depends_on.clone(),
            stop_grace_ms: service.stop_grace.as_millis() as u64,
            stop_signal: service.stop_signal.clone(),
            log: paths.log(name),
            log_limits: config.logs,
        };
        // Only a service known to speak HTTP has a URL: `berth url` of PostgreSQL or
        // Redis gives `127.0.0.1:PORT`, never a made-up `http://`.
        let scheme = match service.protocol.as_deref() {
            Some("https") => Some("https"),
            Some("http") => Some("http"),
            Some(_) => None,
            None => matches!(service.ready, ReadyConfig::Http { .. }).then_some("http"),
        };
        let url = first_port
            .zip(scheme)
            .map(|(port, scheme)| format!("{scheme}://127.0.0.1:{port}"));
        let spec = ServiceSpec::Process(spec);
        (
            name.clone(),
            pending_record("process", is_active(name), service_ports, url, spec),
        )
    });
    let mut services: IndexMap<String, ServiceRecord> =
        compose_services.chain(process_services).collect();
    for (name, database) in &config.databases {
        if let Some(record) = services.get_mut(name) {
            record.database = Some(database_spec(config, name, database, &record.ports, &value));
        }
    }

    InstanceFile {
        version: INSTANCE_FORMAT_VERSION,
        name: inputs.identity.name.clone(),
        index: inputs.identity.index,
        project: config.project.clone(),
        root: config.root.clone(),
        config: config.path.clone(),
        port_offset: inputs.plan.offset,
        state: InstanceState::Starting,
        started_at: None,
        supervisor: None,
        token: inputs.token.clone(),
        spec_digest: String::new(),
        env,
        git: inputs.git.clone(),
        env_files: inputs.env_files.clone(),
        path: inputs.path.clone(),
        compose: inputs.compose.clone(),
        shared: config
            .uses_shared
            .iter()
            .map(|(service, per_instance)| SharedUse {
                service: service.clone(),
                instance: config
                    .shared_instance
                    .as_ref()
                    .map(|(name, _)| name.clone())
                    .unwrap_or_default(),
                root: config
                    .shared_instance
                    .as_ref()
                    .map(|(_, root)| root.clone())
                    .unwrap_or_default(),
                ports: ports.get(service).cloned().unwrap_or_default(),
                create: per_instance
                    .as_ref()
                    .and_then(|commands| commands.create.as_ref())
                    .map(|create| render_command(create, &value, &config.root)),
                drop: per_instance
                    .as_ref()
                    .and_then(|commands| commands.drop.as_ref())
                    .map(|drop| render_command(drop, &value, &config.root)),
                database: config.databases.get(service).map(|database| {
                    let service_ports = ports.get(service).cloned().unwrap_or_default();
                    database_spec(config, service, database, &service_ports, &value)
                }),
            })
            .collect(),
        router_default: router_default(config, &services),
        services,
        seal: None,
    }
    .with_digest()
}

/// Every service's planned host ports by port name, and those of the services that run
/// elsewhere (shared).
fn planned_ports(config: &Config, plan: &PortPlan) -> IndexMap<String, IndexMap<String, u16>> {
    let mut ports: IndexMap<String, IndexMap<String, u16>> = config
        .service_names()
        .into_iter()
        .map(|service| {
            let ports = config
                .ports_of(&service)
                .into_iter()
                .flat_map(|ports| ports.keys())
                .filter_map(|port_name| Some((port_name.clone(), plan.get(&service, port_name)?)))
                .collect();
            (service, ports)
        })
        .collect();
    for (service, external) in &config.external_ports {
        ports.insert(service.clone(), external.clone());
    }
    ports
}

/// Renders a template outside the service model (env files) with the same values.
pub fn render(
    config: &Config,
    identity: &Identity,
    plan: &PortPlan,
    template: &Template,
) -> String {
    let paths = InstancePaths::new(&config.root, &identity.name);
    let ports = planned_ports(config, plan);
    let values = Values {
        config,
        identity,
        paths: &paths,
        ports: &ports,
        offset: plan.offset,
    };
    template.render(&|var| values.get(var))
}

/// A service record before the supervisor has touched it.
fn pending_record(
    kind: &str,
    active: bool,
    ports: IndexMap<String, u16>,
    url: Option<String>,
    spec: ServiceSpec,
) -> ServiceRecord {
    ServiceRecord {
        kind: kind.to_string(),
        active,
        state: if active {
            ServiceState::Waiting
        } else {
            ServiceState::Inactive
        },
        url,
        ports,
        pid: None,
        restarts: 0,
        exit_code: None,
        started_at: None,
        ready_at: None,
        message: None,
        container: None,
        database: None,
        spec,
    }
}

/// Where and as whom `berth db` connects: the service's port on 127.0.0.1 (for a compose
/// service, the one publishing container port 5432 if any), with the name, user and
/// password from berth.toml, else from the Compose file's `POSTGRES_USER`, `POSTGRES_DB`
/// and `POSTGRES_PASSWORD` (the official image's variables), else user and database
/// `postgres`.
fn database_spec(
    config: &Config,
    service: &str,
    database: &DatabaseConfig,
    ports: &IndexMap<String, u16>,
    value: &dyn Fn(&Var) -> String,
) -> DatabaseSpec {
    let environment = config
        .compose
        .as_ref()
        .and_then(|compose| compose.services.get(service))
        .map(|service| &service.environment);
    let from_env = |key: &str| {
        environment
            .and_then(|environment| environment.get(key))
            .filter(|text| !text.is_empty())
            .cloned()
    };
    let render = |template: &Option<Template>| template.as_ref().map(|t| t.render(value));
    let user = render(&database.user)
        .or_else(|| from_env("POSTGRES_USER"))
        .unwrap_or_else(|| "postgres".to_string());
    // The official image creates POSTGRES_DB, else a database named after POSTGRES_USER;
    // `postgres` exists in every cluster.
    let name = render(&database.name)
        .or_else(|| from_env("POSTGRES_DB"))
        .or_else(|| from_env("POSTGRES_USER"))
        .unwrap_or_else(|| "postgres".to_string());
    let port = ports
        .get("5432")
        .or_else(|| ports.values().next())
        .copied()
        .unwrap_or(0);
    DatabaseSpec {
        kind: database.kind,
        host: "127.0.0.1".to_string(),
        port,
        name,
        user,
        password: render(&database.password).or_else(|| from_env("POSTGRES_PASSWORD")),
    }
}

/// Compose port names carry their protocol unless it is TCP (`53-udp`).
/// The scheme of a container port that by convention serves the web (`80`, `443`,
/// `8080`, `3000`, …), from the number its name starts with.
/// The service `INSTANCE.localhost` reaches: `[router] default`, else the first service
/// with an HTTP URL, else a `web` service with a port (the Procfile's convention). `None`
/// leaves the router to take the first service with a port.
fn router_default(config: &Config, services: &IndexMap<String, ServiceRecord>) -> Option<String> {
    if let Some(named) = &config.router_default {
        return Some(named.clone());
    }
    services
        .iter()
        .find(|(_, record)| {
            record
                .url
                .as_deref()
                .is_some_and(|url| url.starts_with("http://"))
        })
        .or_else(|| {
            services
                .get_key_value("web")
                .filter(|(_, record)| !record.ports.is_empty())
        })
        .map(|(name, _)| name.clone())
}

fn web_scheme(port_name: &str) -> Option<&'static str> {
    let digits: String = port_name.chars().take_while(char::is_ascii_digit).collect();
    match digits.parse::<u16>().ok()? {
        443 | 8443 => Some("https"),
        80 | 3000 | 4000 | 5000 | 8000 | 8008 | 8080 | 8081 | 8888 | 9000 => Some("http"),
        _ => None,
    }
}

fn is_tcp(port_name: &str) -> bool {
    !port_name.ends_with("-udp") && !port_name.ends_with("-sctp")
}

impl InstanceFile {
    /// Stamps the digest of what would be run, so a later `up` can tell a changed config.
    fn with_digest(mut self) -> Self {
        let specs: Vec<_> = self
            .services
            .iter()
            .map(|(name, record)| (name, &record.spec, &record.ports, &record.database))
            .collect();
        // The shared services used (and where they run) count too: when the shared
        // instance moves, the instance's markers and ports must follow.
        let bytes = serde_json::to_vec(&(&specs, self.port_offset, &self.compose, &self.shared))
            .unwrap_or_default();
        self.spec_digest = Sha256::digest(&bytes)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        self
    }
}

/// Services `wanted` plus everything they depend on, transitively.
pub fn with_dependencies(config: &Config, wanted: &[String]) -> Vec<String> {
    let mut result: Vec<String> = Vec::new();
    let mut stack: Vec<String> = wanted.to_vec();
    while let Some(name) = stack.pop() {
        if result.contains(&name) {
            continue;
        }
        stack.extend(config.depends_on(&name).iter().cloned());
        result.push(name);
    }
    result
}

fn render_command(
    command: &CommandTemplate,
    value: &dyn Fn(&Var) -> String,
    cwd: &Path,
) -> Vec<String> {
    let mut argv = command.render(value);
    // A relative program path ("../bin/api") means relative to the service's directory,
    // whatever directory berth itself was started from.
    if let Some(program) = argv.first_mut()
        && program.contains('/')
        && !program.starts_with('/')
    {
        *program = cwd.join(&*program).display().to_string();
    }
    argv
}

struct Values<'a> {
    config: &'a Config,
    identity: &'a Identity,
    paths: &'a InstancePaths,
    ports: &'a IndexMap<String, IndexMap<String, u16>>,
    offset: u32,
}

impl Values<'_> {
    fn port(&self, service: &str, port: Option<&String>) -> String {
        let ports = self.ports.get(service);
        let found = match port {
            Some(name) => ports.and_then(|ports| ports.get(name)),
            None => ports.and_then(|ports| ports.values().next()),
        };
        // Validation guarantees every referenced port exists and is planned.
        found.map(u16::to_string).unwrap_or_default()
    }

    fn get(&self, var: &Var) -> String {
        match var {
            Var::Port { service, port } => self.port(service, port.as_ref()),
            Var::Url { service, port } => {
                format!("http://127.0.0.1:{}", self.port(service, port.as_ref()))
            }
            Var::Host { service } => routes::service_host(&self.identity.name, service),
            Var::PublicUrl { service } => self
                .config
                .router
                .url(&routes::service_host(&self.identity.name, service)),
            Var::InstanceName => self.identity.name.clone(),
            Var::InstanceIndex => self.identity.index.to_string(),
            Var::InstanceRoot => self.config.root.display().to_string(),
            Var::InstanceData => self.paths.data().display().to_string(),
            Var::InstancePortOffset => self.offset.to_string(),
            Var::ProjectName => self.config.project.clone(),
        }
    }
}

/// A random hex token from the kernel's generator.
pub fn random_token() -> String {
    random_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// 16 random bytes from the kernel's generator.
pub fn random_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    let filled = std::fs::File::open("/dev/urandom")
        .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut bytes))
        .is_ok();
    if !filled {
        // Fall back to time and PID: the token only needs to be unique on this machine.
        let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
        bytes.copy_from_slice(&Sha256::digest(seed.as_bytes())[..16]);
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CONFIG_FILE_NAME;
    use crate::ports::PlannedPort;

    const PROJECT: &str = r#"
[project]
name = "shop"
[services.db]
command = "db --port {{ port.db }}"
port = 5432
[services.api]
command = "api --port {{ port.api }} --db {{ url.db }}"
port = 4000
protocol = "http"
depends_on = ["db"]
env = { DB_PORT = "{{ port.db }}", NAME = "{{ instance.name }}" }
"#;

    fn config(text: &str) -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE_NAME), text).unwrap();
        let config = crate::config::load::<crate::config::ConfigError>(dir.path(), &mut |_, _| {
            panic!("no Compose here")
        })
        .unwrap();
        (dir, config)
    }

    fn plan(offset: u32, ports: &[(&str, u16)]) -> PortPlan {
        PortPlan {
            offset,
            ports: ports
                .iter()
                .map(|(service, port)| PlannedPort {
                    service: service.to_string(),
                    port_name: crate::config::DEFAULT_PORT_NAME.to_string(),
                    port: *port,
                })
                .collect(),
        }
    }

    fn build_with(
        config: &Config,
        plan: &PortPlan,
        token: &str,
        active: &[String],
    ) -> InstanceFile {
        let identity = Identity {
            name: "shop-2".to_string(),
            index: 2,
        };
        build(
            config,
            &ModelInputs {
                identity: &identity,
                plan,
                token: token.to_string(),
                active,
                compose: None,
                env_values: &IndexMap::new(),
                env_files: vec!["api/.env".into()],
                git: Some(crate::git::GitHead {
                    branch: Some("feature".to_string()),
                    commit: Some("1a2b3c4".to_string()),
                }),
                path: Some("/usr/bin:/bin".to_string()),
            },
        )
    }

    #[test]
    fn the_model_renders_every_template_from_the_planned_ports() {
        let (_dir, config) = config(PROJECT);
        let file = build_with(&config, &plan(20, &[("db", 5452), ("api", 4020)]), "t", &[]);
        assert_eq!(file.name, "shop-2");
        assert_eq!(file.port_offset, 20);
        assert_eq!(file.state, InstanceState::Starting);
        let api = &file.services["api"];
        assert_eq!(api.ports["default"], 4020);
        assert_eq!(api.url.as_deref(), Some("http://127.0.0.1:4020"));
        // A service not known to speak HTTP gets no made-up URL.
        assert_eq!(file.services["db"].url, None);
        let spec = api.process().expect("api is a process service");
        assert_eq!(
            spec.argv,
            ["api", "--port", "4020", "--db", "http://127.0.0.1:5452"]
        );
        assert_eq!(spec.env["DB_PORT"], "5452");
        assert_eq!(spec.env["NAME"], "shop-2");
        assert_eq!(spec.depends_on, ["db"]);
        assert!(file.services.values().all(|record| record.active));
    }

    #[test]
    fn what_comes_in_is_what_is_recorded_and_nothing_is_read() {
        let (_dir, config) = config(PROJECT);
        let file = build_with(&config, &plan(0, &[("db", 5432), ("api", 4000)]), "t", &[]);
        // The work tree is no git repository: the head is the one passed in.
        assert_eq!(
            file.git.as_ref().unwrap().branch.as_deref(),
            Some("feature")
        );
        assert_eq!(file.env_files, [std::path::PathBuf::from("api/.env")]);
        assert_eq!(file.path.as_deref(), Some("/usr/bin:/bin"));
        assert_eq!(file.token, "t");
    }

    #[test]
    fn only_the_asked_services_and_their_dependencies_are_active() {
        let (_dir, config) = config(PROJECT);
        let active = with_dependencies(&config, &["api".to_string()]);
        let file = build_with(
            &config,
            &plan(0, &[("db", 5432), ("api", 4000)]),
            "t",
            &active,
        );
        assert!(file.services["api"].active && file.services["db"].active);
        let active = with_dependencies(&config, &["db".to_string()]);
        let file = build_with(
            &config,
            &plan(0, &[("db", 5432), ("api", 4000)]),
            "t",
            &active,
        );
        assert!(file.services["db"].active);
        assert!(!file.services["api"].active);
    }

    #[test]
    fn the_digest_changes_with_what_runs_and_not_with_the_run() {
        let (_dir, config) = config(PROJECT);
        let ports = plan(0, &[("db", 5432), ("api", 4000)]);
        let first = build_with(&config, &ports, "one", &[]);
        let second = build_with(&config, &ports, "two", &[]);
        // The token differs per run; the digest compares configurations.
        assert_eq!(first.spec_digest, second.spec_digest);
        let moved = build_with(
            &config,
            &plan(10, &[("db", 5442), ("api", 4010)]),
            "one",
            &[],
        );
        assert_ne!(first.spec_digest, moved.spec_digest);
        let edited_text = PROJECT.replace("--port {{ port.api }}", "--listen {{ port.api }}");
        std::fs::write(config.root.join(CONFIG_FILE_NAME), edited_text).unwrap();
        let changed =
            crate::config::load::<crate::config::ConfigError>(&config.root, &mut |_, _| {
                panic!("no Compose here")
            })
            .unwrap();
        let edited = build_with(&changed, &ports, "one", &[]);
        assert_ne!(first.spec_digest, edited.spec_digest);
        assert_eq!(
            first.spec_digest,
            build_with(&config, &ports, "one", &[]).spec_digest
        );
    }
}
