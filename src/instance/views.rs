//! What `status`, `up` and `ls` return: the structs a table or `--json` is drawn from.

use std::path::PathBuf;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Serialize;

use crate::docker::{Container, Health};
use crate::git::GitHead;
use crate::router::{RouterAddress, routes};
use crate::state::InstanceFile;

/// A shared service the instance uses, with its state in the shared instance.
fn shared_view(usage: &crate::state::SharedUse) -> ServiceView {
    let paths = crate::state::InstancePaths::new(&usage.root, &usage.instance);
    let shared = InstanceFile::read(&paths.instance_json()).ok().flatten();
    let record = shared
        .as_ref()
        .filter(|shared| shared.supervisor_alive())
        .and_then(|shared| shared.services.get(&usage.service));
    ServiceView {
        name: usage.service.clone(),
        kind: "shared".to_string(),
        state: record
            .map_or("stopped", |record| record.state.as_str())
            .to_string(),
        url: usage
            .ports
            .values()
            .next()
            .map(|port| format!("http://127.0.0.1:{port}")),
        routed_url: None,
        ports: usage.ports.clone(),
        pid: record
            .and_then(|record| record.pid)
            .map(|identity| identity.pid),
        container: None,
        health: None,
        restarts: record.map_or(0, |record| record.restarts),
        exit_code: None,
        message: Some(format!("shared: runs in `{}`", usage.instance)),
    }
}

/// One instance, as `status` and `up` show it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StatusView {
    pub name: String,
    pub index: u32,
    pub project: String,
    pub root: PathBuf,
    pub state: String,
    pub port_offset: u32,
    pub supervisor_pid: Option<u32>,
    pub started_at: Option<String>,
    /// Where the root was when the instance started, and where it is now.
    pub git: Option<GitView>,
    pub services: Vec<ServiceView>,
    /// The service `INSTANCE.localhost` reaches through the router.
    #[serde(skip)]
    pub router_default: Option<String>,
}

/// The git branch and commit an instance started from, and whether the work tree has
/// moved since (another branch or commit checked out): then the running code is stale.
#[derive(Debug, Serialize, JsonSchema)]
pub struct GitView {
    pub branch: Option<String>,
    pub commit: Option<String>,
    pub moved: bool,
    pub now: Option<GitHead>,
}

impl GitView {
    pub fn of(started: Option<&GitHead>, root: &std::path::Path) -> Option<Self> {
        let started = started?;
        let now = crate::git::head(root);
        Some(GitView {
            branch: started.branch.clone(),
            commit: started.commit.clone(),
            moved: now.as_ref() != Some(started),
            now,
        })
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ServiceView {
    pub name: String,
    pub kind: String,
    pub state: String,
    pub ports: IndexMap<String, u16>,
    /// Where the service answers on this machine: `http://127.0.0.1:PORT`.
    pub url: Option<String>,
    /// Its router URL (`http://SERVICE.INSTANCE.localhost:PORT`) while the router runs.
    pub routed_url: Option<String>,
    pub pid: Option<u32>,
    /// The container of a compose service.
    pub container: Option<String>,
    /// The container's Docker healthcheck status, when it has one.
    pub health: Option<String>,
    pub restarts: u32,
    pub exit_code: Option<i32>,
    pub message: Option<String>,
}

impl StatusView {
    pub fn from_file(file: &InstanceFile) -> Self {
        let alive = file.supervisor_alive();
        let state = if file.is_orphaned() {
            "crashed"
        } else {
            file.state.as_str()
        };
        StatusView {
            name: file.name.clone(),
            index: file.index,
            project: file.project.clone(),
            root: file.root.clone(),
            state: state.to_string(),
            port_offset: file.port_offset,
            supervisor_pid: file
                .supervisor
                .filter(|_| alive)
                .map(|identity| identity.pid),
            started_at: file.started_at.clone(),
            git: GitView::of(file.git.as_ref(), &file.root),
            services: file
                .services
                .iter()
                .map(|(name, record)| ServiceView {
                    name: name.clone(),
                    kind: record.kind.clone(),
                    state: record.state.as_str().to_string(),
                    ports: record.ports.clone(),
                    url: record.url.clone(),
                    routed_url: None,
                    pid: record.pid.filter(|_| alive).map(|identity| identity.pid),
                    container: record.container.clone(),
                    health: None,
                    restarts: record.restarts,
                    exit_code: record.exit_code,
                    message: record.message.clone(),
                })
                .chain(file.shared.iter().map(shared_view))
                .collect(),
            router_default: file.router_default.clone(),
        }
    }

    /// Fills in the router URL of each service that speaks HTTP, while a router runs.
    pub fn with_router(mut self, address: Option<RouterAddress>) -> Self {
        let Some(address) = address else {
            return self;
        };
        for service in &mut self.services {
            let routed = service.kind != "shared"
                && !service.ports.is_empty()
                && routes::has_router_url(
                    service.url.as_deref(),
                    &service.name,
                    self.router_default.as_deref(),
                );
            if routed {
                service.routed_url =
                    Some(address.url(&routes::service_host(&self.name, &service.name)));
            }
        }
        self
    }

    /// Overlays what the engine says now about each compose service's container (one
    /// query for the whole instance): its name, health, and a container that is gone or
    /// stopped while the supervisor last saw it ready.
    pub fn with_containers(mut self, containers: &[Container]) -> Self {
        for service in &mut self.services {
            if service.kind != "compose" {
                continue;
            }
            let live = containers
                .iter()
                .find(|c| c.label("com.docker.compose.service") == Some(service.name.as_str()));
            match live {
                Some(container) => {
                    service.container = Some(container.name.clone());
                    service.health = container.health().map(|health| {
                        match health {
                            Health::Starting => "starting",
                            Health::Healthy => "healthy",
                            Health::Unhealthy => "unhealthy",
                        }
                        .to_string()
                    });
                    if container.state != "running" && service.state == "ready" {
                        service.state = "failed".to_string();
                        service.message = Some(format!("container {}", container.status));
                    }
                }
                None if service.state == "ready" => {
                    service.state = "failed".to_string();
                    service.message = Some("the container is gone".to_string());
                }
                None => {}
            }
        }
        self
    }
}

/// One line of `berth ls`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LsRow {
    pub name: String,
    pub project: String,
    pub index: u32,
    pub root: PathBuf,
    pub state: String,
    pub stale: bool,
    pub port_offset: u32,
    pub ports: Vec<u16>,
    pub started_at: Option<String>,
    pub git: Option<GitView>,
    /// The project's shared instance, and the instances that use it.
    pub shared: bool,
    pub users: Vec<String>,
}
