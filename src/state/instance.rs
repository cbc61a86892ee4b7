//! `.berth/<instance>/instance.json`: the instance model every command and the supervisor share.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::{StateError, read_versioned};
use crate::config::{HttpStatus, LogLimits, RestartPolicy};
use crate::process::ProcessIdentity;

pub const INSTANCE_FORMAT_VERSION: u32 = 1;

/// The contract for orchestrators (SPEC §6): everything about one instance, rewritten
/// atomically whenever anything changes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InstanceFile {
    pub version: u32,
    pub name: String,
    pub index: u32,
    pub project: String,
    pub root: PathBuf,
    pub config: PathBuf,
    pub port_offset: u32,
    pub state: InstanceState,
    pub started_at: Option<String>,
    pub supervisor: Option<ProcessIdentity>,
    /// A random token placed in every service's environment, so that every process the
    /// instance started (even one that left its process group) can be found and stopped.
    pub token: String,
    /// Digest of the rendered service specs; a different digest on `up` means the
    /// configuration changed and the running instance must be restarted.
    pub spec_digest: String,
    /// The instance-wide variables (`BERTH_*`), as every process receives them.
    pub env: BTreeMap<String, String>,
    /// The branch and commit the root was on when the instance started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<crate::git::GitHead>,
    /// The `PATH` the instance's processes inherit (the one `up` ran with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The env files `up` wrote for this instance (`rm` deletes them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_files: Vec<PathBuf>,
    /// How to run the Compose tool for this instance, when it has compose services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compose: Option<ComposeBackend>,
    /// The shared services this instance uses (they run in the project's shared instance).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared: Vec<SharedUse>,
    pub services: IndexMap<String, ServiceRecord>,
    /// The service `INSTANCE.localhost` reaches through the router: `[router] default`,
    /// else the first service that speaks HTTP (see [`crate::router`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_default: Option<String>,
    /// What the file said its seal was (see [`crate::state::seal`]); written by
    /// [`InstanceFile::write`], never taken from the struct.
    #[serde(default, skip_serializing)]
    pub seal: Option<String>,
}

/// The file as written: the instance and the seal of what in it names processes.
#[derive(Serialize)]
struct Sealed<'a> {
    #[serde(flatten)]
    file: &'a InstanceFile,
    #[serde(skip_serializing_if = "Option::is_none")]
    seal: Option<String>,
}

/// One shared service an instance uses, and its `per_instance` commands rendered for it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SharedUse {
    pub service: String,
    /// The shared instance that runs it, and that instance's root.
    pub instance: String,
    pub root: PathBuf,
    /// Its host ports, as the instance's templates and variables name them.
    #[serde(default)]
    pub ports: IndexMap<String, u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop: Option<Vec<String>>,
    /// The instance's own database on the shared service, when it declares `database`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseSpec>,
}

impl SharedUse {
    /// Marks that `create` ran for `instance`; kept in the shared instance's state, so it
    /// goes when the shared data does.
    pub fn created_marker(&self, instance: &str) -> PathBuf {
        InstancePaths::new(&self.root, &self.instance)
            .dir
            .join("tenants")
            .join(&self.service)
            .join(format!("{instance}.created"))
    }
}

/// The Compose tool and the per-instance file it runs on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ComposeBackend {
    /// The tool's command prefix, such as `["docker", "compose"]`.
    pub program: Vec<String>,
    /// `.berth/<instance>/compose.yml`.
    pub file: PathBuf,
    /// The project directory relative paths in the file were resolved against.
    pub project_dir: PathBuf,
    /// SHA-256 of the file's content, so a changed Compose file restarts the instance.
    pub digest: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    Starting,
    Running,
    Stopping,
    Stopped,
    /// The supervisor died without stopping its services; the next command reaps them.
    Crashed,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Starting => "starting",
            InstanceState::Running => "running",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
            InstanceState::Crashed => "crashed",
        }
    }
}

/// One service of the instance: its rendered spec and its live state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceRecord {
    pub kind: String,
    /// Whether `up` asked for this service (`up SERVICE…` leaves the others inactive).
    pub active: bool,
    pub state: ServiceState,
    pub ports: IndexMap<String, u16>,
    pub url: Option<String>,
    pub pid: Option<ProcessIdentity>,
    pub restarts: u32,
    pub exit_code: Option<i32>,
    pub started_at: Option<String>,
    pub ready_at: Option<String>,
    pub message: Option<String>,
    /// The container of a compose service, once it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// How `berth db` reaches the service's database, when it declares one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseSpec>,
    pub spec: ServiceSpec,
}

/// A database on the instance's port, as its own tools connect to it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DatabaseSpec {
    pub kind: crate::config::DatabaseKind,
    pub host: String,
    pub port: u16,
    pub name: String,
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// How a service is run: a process berth supervises, or a service of the Compose file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceSpec {
    Process(ProcessSpec),
    Compose(ComposeSpec),
}

/// A compose service, as the supervisor starts and watches it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ComposeSpec {
    pub depends_on: Vec<String>,
    pub ready: ComposeReady,
    /// Where the supervisor copies the container's output.
    pub log: PathBuf,
    /// How much of that output is kept.
    #[serde(default)]
    pub log_limits: LogLimits,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum ComposeReady {
    /// The container's Docker healthcheck passes: Docker reports healthy, or the
    /// healthcheck's own test, run by berth in the container before Docker's first
    /// scheduled check, succeeds.
    Healthcheck {
        test: Vec<String>,
        /// The published TCP ports, which must listen in the container too.
        #[serde(default)]
        ports: Vec<u16>,
    },
    /// Every published host port accepts a connection that the container answers.
    Tcp { ports: Vec<u16> },
    /// The container is running.
    Running,
}

impl ServiceRecord {
    pub fn process(&self) -> Option<&ProcessSpec> {
        match &self.spec {
            ServiceSpec::Process(spec) => Some(spec),
            ServiceSpec::Compose(_) => None,
        }
    }

    pub fn log(&self) -> &Path {
        match &self.spec {
            ServiceSpec::Process(spec) => &spec.log,
            ServiceSpec::Compose(spec) => &spec.log,
        }
    }

    pub fn log_limits(&self) -> LogLimits {
        match &self.spec {
            ServiceSpec::Process(spec) => spec.log_limits,
            ServiceSpec::Compose(spec) => spec.log_limits,
        }
    }

    pub fn is_compose(&self) -> bool {
        matches!(self.spec, ServiceSpec::Compose(_))
    }

    pub fn depends_on(&self) -> &[String] {
        match &self.spec {
            ServiceSpec::Process(spec) => &spec.depends_on,
            ServiceSpec::Compose(spec) => &spec.depends_on,
        }
    }

    /// How long a stop may take before the group is killed (0 for compose services,
    /// whose grace Compose applies).
    pub fn stop_grace_ms(&self) -> u64 {
        self.process().map_or(0, |spec| spec.stop_grace_ms)
    }
}

/// How a process service is run, fully rendered (no templates left).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProcessSpec {
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    /// Variables added to the inherited environment: `BERTH_*`, `PORT`, the service's `env`.
    pub env: IndexMap<String, String>,
    pub setup: Option<Vec<String>>,
    pub ready: ReadyCheck,
    pub restart: RestartPolicy,
    pub depends_on: Vec<String>,
    pub stop_grace_ms: u64,
    /// The signal that asks it to stop (`SIGINT`); SIGTERM when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    pub log: PathBuf,
    /// How much of the service's output is kept (`[logs]`).
    #[serde(default)]
    pub log_limits: LogLimits,
}

impl ProcessSpec {
    /// The signal that asks the service to stop.
    pub fn stop_signal(&self) -> nix::sys::signal::Signal {
        self.stop_signal
            .as_deref()
            .and_then(crate::membership::parse_signal)
            .unwrap_or(nix::sys::signal::Signal::SIGTERM)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum ReadyCheck {
    /// Ready as soon as the process is running.
    Started,
    Tcp {
        port: u16,
    },
    Http {
        port: u16,
        path: String,
        /// Which answers count; absent in files written before it existed (2xx/3xx).
        #[serde(default, skip_serializing_if = "HttpStatus::is_success")]
        status: HttpStatus,
    },
    Exec {
        argv: Vec<String>,
    },
    Log {
        pattern: String,
    },
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceState {
    /// Not asked for by `up`, or not started yet.
    Inactive,
    /// Waiting for its dependencies to become ready.
    Waiting,
    /// Running its one-time setup command.
    Setup,
    /// Started, readiness check not passed yet.
    Starting,
    Ready,
    /// Exited and waiting out its restart backoff.
    Backoff,
    /// Exited with status 0 and not restarted (a one-shot task): counts as done.
    Exited,
    /// Gave up: exited too often, setup failed, or a dependency failed.
    Failed,
    Stopping,
    Stopped,
}

impl ServiceState {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Inactive => "inactive",
            ServiceState::Waiting => "waiting",
            ServiceState::Setup => "setup",
            ServiceState::Starting => "starting",
            ServiceState::Ready => "ready",
            ServiceState::Backoff => "backoff",
            ServiceState::Exited => "exited",
            ServiceState::Failed => "failed",
            ServiceState::Stopping => "stopping",
            ServiceState::Stopped => "stopped",
        }
    }

    /// Whether dependants may start and `up` may report success.
    pub fn is_up(self) -> bool {
        matches!(self, ServiceState::Ready | ServiceState::Exited)
    }
}

/// The files of one instance under `<root>/.berth/<name>/`.
#[derive(Debug, Clone)]
pub struct InstancePaths {
    pub dir: PathBuf,
}

impl InstancePaths {
    pub fn new(root: &Path, name: &str) -> Self {
        InstancePaths {
            dir: root.join(".berth").join(name),
        }
    }
    pub fn instance_json(&self) -> PathBuf {
        self.dir.join("instance.json")
    }
    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }
    pub fn log(&self, service: &str) -> PathBuf {
        self.logs().join(format!("{service}.log"))
    }
    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }
    pub fn setup_marker(&self, service: &str) -> PathBuf {
        self.dir.join("setup").join(format!("{service}.done"))
    }
    /// Held by the supervisor for as long as it lives.
    pub fn supervisor_lock(&self) -> PathBuf {
        self.dir.join("supervisor.lock")
    }
    pub fn supervisor_log(&self) -> PathBuf {
        self.dir.join("supervisor.log")
    }
    /// The per-instance Compose file.
    pub fn compose_file(&self) -> PathBuf {
        self.dir.join("compose.yml")
    }
}

/// `<root>/.berth` must be a real directory or not exist yet, and hold no symlink: a link
/// there (a cloned repository can carry one) would send state, logs and the control
/// socket elsewhere, so it is refused, never followed. `up` checks before writing anything.
pub fn check_state_root(root: &Path) -> Result<(), StateError> {
    let top = root.join(".berth");
    let read_error = |path: &Path, source| StateError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = match std::fs::symlink_metadata(&top) {
        Ok(meta) => meta,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(read_error(&top, source)),
    };
    if !meta.is_dir() {
        return Err(StateError::Planted {
            path: top,
            symlink: meta.file_type().is_symlink(),
        });
    }
    for entry in std::fs::read_dir(&top).map_err(|source| read_error(&top, source))? {
        let entry = entry.map_err(|source| read_error(&top, source))?;
        let kind = entry
            .file_type()
            .map_err(|source| read_error(&entry.path(), source))?;
        if kind.is_symlink() {
            return Err(StateError::Planted {
                path: entry.path(),
                symlink: true,
            });
        }
    }
    Ok(())
}

impl InstanceFile {
    pub fn read(path: &Path) -> Result<Option<Self>, StateError> {
        read_versioned(path, INSTANCE_FORMAT_VERSION)
    }

    pub fn write(&self, path: &Path) -> Result<(), StateError> {
        self.publish(path)?.sync()
    }

    /// Writes the file for every reader to see, leaving its rename to be made durable
    /// (see [`crate::durable::publish_atomic`]).
    pub fn publish(&self, path: &Path) -> Result<crate::durable::Published, StateError> {
        let sealed = Sealed {
            file: self,
            seal: super::seal::seal(&self.sealed_content()),
        };
        crate::durable::publish_json_atomic(path, &sealed)
    }

    /// What the seal covers: everything in the file that names a process.
    fn sealed_content(&self) -> Vec<u8> {
        let identity = |identity: Option<ProcessIdentity>| {
            identity.map_or_else(String::new, |identity| {
                format!("{}@{}", identity.pid, identity.start_time)
            })
        };
        let mut content = format!(
            "berth instance.json\n{}\n{}\n{}\n{}\n",
            self.name,
            self.root.display(),
            self.token,
            identity(self.supervisor)
        );
        for (name, record) in &self.services {
            content.push_str(&format!("{name}={}\n", identity(record.pid)));
        }
        content.into_bytes()
    }

    /// Whether the PIDs in this file were written by berth under this `BERTH_HOME`
    /// (its seal matches): only then may they decide what is signalled.
    pub fn pids_trusted(&self) -> bool {
        super::seal::verify(&self.sealed_content(), self.seal.as_deref())
    }

    pub fn paths(&self) -> InstancePaths {
        InstancePaths::new(&self.root, &self.name)
    }

    /// The services named in `services`, or every active one when it is empty.
    pub fn targets<'a>(
        &'a self,
        services: &'a [String],
    ) -> impl Iterator<Item = (&'a String, &'a ServiceRecord)> + 'a {
        self.services.iter().filter(move |(name, record)| {
            if services.is_empty() {
                record.active
            } else {
                services.contains(name)
            }
        })
    }

    /// True when the file says the instance runs but its supervisor is dead: whatever it
    /// started is unsupervised and must be reaped.
    pub fn is_orphaned(&self) -> bool {
        matches!(
            self.state,
            InstanceState::Starting | InstanceState::Running | InstanceState::Stopping
        ) && !self.supervisor_alive()
    }

    /// Records every service as stopped (inactive ones stay inactive) and the instance
    /// as `state`, with no supervisor.
    pub fn mark_stopped(&mut self, state: InstanceState) {
        self.state = state;
        self.supervisor = None;
        for record in self.services.values_mut() {
            record.pid = None;
            if record.state != ServiceState::Inactive {
                record.state = ServiceState::Stopped;
            }
        }
    }

    /// Whether the supervisor of this instance is alive (it holds its lock while it lives).
    pub fn supervisor_alive(&self) -> bool {
        crate::state::FileLock::is_held(&self.paths().supervisor_lock())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_written_before_log_limits_read_with_the_defaults() {
        let process: ProcessSpec = serde_json::from_value(serde_json::json!({
            "argv": ["api"], "cwd": "/x", "env": {}, "setup": null,
            "ready": "started", "restart": "on-failure", "depends_on": [],
            "stop_grace_ms": 5000, "log": "/x/.berth/x/logs/api.log"
        }))
        .unwrap();
        assert_eq!(process.log_limits, LogLimits::default());
        let compose: ComposeSpec = serde_json::from_value(serde_json::json!({
            "depends_on": [], "ready": "running", "log": "/x/.berth/x/logs/db.log"
        }))
        .unwrap();
        assert_eq!(
            compose.log_limits,
            LogLimits {
                max_size: 10 * 1024 * 1024,
                max_files: 5
            }
        );
    }

    #[test]
    fn http_checks_written_before_status_existed_accept_2xx_and_3xx() {
        let old: ReadyCheck =
            serde_json::from_value(serde_json::json!({"http": {"port": 3000, "path": "/"}}))
                .unwrap();
        assert_eq!(
            old,
            ReadyCheck::Http {
                port: 3000,
                path: "/".to_string(),
                status: HttpStatus::Success
            }
        );
        // The default is left out, so such a file reads the same in an older berth.
        assert_eq!(
            serde_json::to_value(&old).unwrap(),
            serde_json::json!({"http": {"port": 3000, "path": "/"}})
        );
        let any = ReadyCheck::Http {
            port: 3000,
            path: "/".to_string(),
            status: HttpStatus::Any,
        };
        let text = serde_json::to_string(&any).unwrap();
        assert_eq!(serde_json::from_str::<ReadyCheck>(&text).unwrap(), any);
    }
}
