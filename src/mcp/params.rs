//! What each tool takes: its arguments as serde structs, whose JSON Schemas (derived
//! with schemars, doc comments as descriptions) are the tools' input schemas.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::cli::MAX_OFFSET;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::instance::UpOptions;

/// The longest wait for readiness a call may ask for.
const MAX_TIMEOUT_SECONDS: u64 = 3600;
const DEFAULT_TIMEOUT_SECONDS: u64 = 120;

/// The instance a tool acts on: the project directory and, where it holds several
/// instances, which one.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Target {
    /// The project directory (as `berth -C DIR`), best absolute: the directory holding
    /// `berth.toml` or a Compose file, or one below it. It is made canonical; one that
    /// does not exist is an error.
    pub path: PathBuf,
    /// The instance's name (as `--name`). With neither `name` nor `instance`, the only
    /// instance of the directory (`up`: the directory's own).
    pub name: Option<String>,
    /// The instance's index (as `--instance`); for `up` also its port offset, N × stride.
    #[schemars(range(max = 65535))]
    pub instance: Option<u32>,
}

impl Target {
    /// The context of this call: the server's ledger, this directory and selector.
    pub fn context(&self, base: &Context) -> Result<Context> {
        base.at(&self.path, self.name.as_deref(), self.instance)
    }
}

/// `status`, `snapshot_list`: only the instance.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Only {
    #[serde(flatten)]
    pub target: Target,
}

/// `up`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Up {
    #[serde(flatten)]
    pub target: Target,
    /// Start only these services (and what they depend on); all when empty.
    #[serde(default)]
    pub services: Vec<String>,
    /// Use exactly this port offset.
    #[schemars(range(max = 65535))]
    pub port_offset: Option<u32>,
    /// Fail instead of moving to another offset when a base port is taken.
    #[serde(default)]
    pub strict_ports: bool,
    /// Seconds to wait for every service to be ready (default 120, at most 3600).
    #[schemars(range(min = 1, max = 3600))]
    pub timeout_seconds: Option<u64>,
    /// Start a new instance with a copy of the data of another instance of the project
    /// or of a snapshot (`instance:NAME` or `snapshot:NAME` when both exist).
    pub from: Option<String>,
}

impl Up {
    pub fn options(&self) -> Result<UpOptions> {
        if self.port_offset.is_some() && self.strict_ports {
            return Err(Error::usage(
                "use either `port_offset` or `strict_ports`, not both",
                None,
            ));
        }
        if let Some(offset) = self.port_offset.filter(|offset| *offset > MAX_OFFSET) {
            return Err(Error::usage(
                format!("`port_offset` {offset} is past {MAX_OFFSET}"),
                None,
            ));
        }
        Ok(UpOptions {
            services: self.services.clone(),
            port_offset: self.port_offset,
            strict_ports: self.strict_ports,
            timeout: timeout(self.timeout_seconds)?,
            from: self.from.clone(),
        })
    }
}

/// `down`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Down {
    #[serde(flatten)]
    pub target: Target,
    /// Also delete the instance's own volumes (Compose services).
    #[serde(default)]
    pub volumes: bool,
    /// Also give up the instance's port leases.
    #[serde(default)]
    pub release: bool,
}

/// `restart`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Restart {
    #[serde(flatten)]
    pub target: Target,
    /// Services to restart; all when empty.
    #[serde(default)]
    pub services: Vec<String>,
    /// Seconds to wait for the restarted services to be ready (default 120, at most 3600).
    #[schemars(range(min = 1, max = 3600))]
    pub timeout_seconds: Option<u64>,
}

impl Restart {
    pub fn timeout(&self) -> Result<Duration> {
        timeout(self.timeout_seconds)
    }
}

/// `new`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct New {
    /// A directory of the project, in its main work tree or any worktree (as `berth -C
    /// DIR`), best absolute.
    pub path: PathBuf,
    /// The new instance's name, and the new branch's unless `branch` is given: a
    /// lowercase slug such as `agent-3`.
    pub name: String,
    /// Check out this branch instead: an existing one, or a new one from `HEAD`.
    pub branch: Option<String>,
    /// Seed the instance: another instance or a snapshot of the project, or a database
    /// dump (a file, or a name `db dumps` lists).
    pub from: Option<String>,
    /// Bring the instance up (default true); false makes only the worktree.
    pub up: Option<bool>,
    /// Seconds to wait for every service to be ready (default 120, at most 3600).
    #[schemars(range(min = 1, max = 3600))]
    pub timeout_seconds: Option<u64>,
}

impl New {
    pub fn options(&self) -> Result<crate::instance::worktree::NewOptions> {
        if self.up == Some(false) && self.from.is_some() {
            return Err(Error::usage(
                "`from` seeds the instance `up` starts: it needs `up`",
                None,
            ));
        }
        Ok(crate::instance::worktree::NewOptions {
            name: self.name.clone(),
            branch: self.branch.clone(),
            from: self.from.clone(),
            up: self.up.unwrap_or(true),
            timeout: timeout(self.timeout_seconds)?,
        })
    }
}

/// Which lines of a log `logs` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Since {
    /// Every line the rotated files still hold (the default).
    All,
    /// Only the current run: the lines since the service last started (as
    /// `berth logs --since-start`).
    Start,
}

/// `logs`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Logs {
    #[serde(flatten)]
    pub target: Target,
    /// The service whose log to read; every service's when omitted.
    pub service: Option<String>,
    /// Lines from the end of each log (default 100, at most 1000).
    #[schemars(range(min = 1, max = 1000))]
    pub lines: Option<usize>,
    /// `start`: only the lines of each service's current run; `all` (the default): any.
    pub since: Option<Since>,
}

/// `env`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Env {
    #[serde(flatten)]
    pub target: Target,
    /// A process service: exactly the environment berth gives its process (env files,
    /// `PORT`, its `env`, `PATH`); the instance's `BERTH_*` variables when omitted.
    pub service: Option<String>,
}

/// `port` and `url`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Address {
    #[serde(flatten)]
    pub target: Target,
    /// The service.
    pub service: String,
    /// A named port of the service (`ports = { http = … }`, or a compose service's
    /// container port such as `5432`); its first port when omitted. (`name` names the
    /// instance, as in every tool.)
    pub port_name: Option<String>,
}

/// `snapshot_save`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SnapshotSave {
    #[serde(flatten)]
    pub target: Target,
    /// The snapshot's name.
    pub snapshot: String,
    /// Only these services' data; all of it when empty.
    #[serde(default)]
    pub services: Vec<String>,
    /// Replace an existing snapshot of that name.
    #[serde(default)]
    pub force: bool,
}

/// `snapshot_restore`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SnapshotRestore {
    #[serde(flatten)]
    pub target: Target,
    /// The snapshot's name.
    pub snapshot: String,
    /// Restore into a running instance: stop it, restore, start it again.
    #[serde(default)]
    pub force: bool,
}

/// `list_instances`: nothing.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Nothing {}

/// A tool's input schema: the JSON Schema of its arguments.
pub fn schema<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    // Every argument struct above is a struct, whose schema is an object: the only thing
    // `schema_for_input` refuses is a schema that is not.
    rmcp::handler::server::common::schema_for_input::<T>()
        .unwrap_or_else(|error| unreachable!("the arguments of a tool are an object: {error}"))
}

/// The arguments of a call, as `T`; a mistake in them is the caller's to correct, so it
/// is a usage error (which becomes a tool error), not a protocol error.
pub fn parse<T: DeserializeOwned>(arguments: JsonObject) -> Result<T> {
    serde_json::from_value(serde_json::Value::Object(arguments)).map_err(|error| {
        Error::usage(
            format!("bad arguments: {error}"),
            Some("the tool's input schema lists what it takes".to_string()),
        )
    })
}

fn timeout(seconds: Option<u64>) -> Result<Duration> {
    match seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS) {
        0 => Err(Error::usage("`timeout_seconds` is at least 1", None)),
        seconds if seconds > MAX_TIMEOUT_SECONDS => Err(Error::usage(
            format!("`timeout_seconds` {seconds} is past {MAX_TIMEOUT_SECONDS}"),
            None,
        )),
        seconds => Ok(Duration::from_secs(seconds)),
    }
}
