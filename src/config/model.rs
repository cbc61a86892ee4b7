//! The validated configuration: plain data, no spans, no unchecked names.

use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;

use super::template::{CommandTemplate, Template};
use crate::state::RestartPolicy;

#[derive(Debug, Clone)]
pub struct Config {
    /// The canonical path of berth.toml.
    pub path: PathBuf,
    /// The canonical project root (the directory holding berth.toml).
    pub root: PathBuf,
    pub project: String,
    pub stride: u32,
    /// Inclusive range for `port = "auto"`.
    pub auto_range: (u16, u16),
    pub services: IndexMap<String, ServiceConfig>,
}

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub command: CommandTemplate,
    pub cwd: Option<Template>,
    pub env: IndexMap<String, Template>,
    /// Declared ports by name, in declaration order. A single `port` is named `default`.
    pub ports: IndexMap<String, PortBase>,
    pub depends_on: Vec<String>,
    pub ready: ReadyConfig,
    pub restart: RestartPolicy,
    pub setup: Option<CommandTemplate>,
    pub stop_grace: Duration,
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
    Tcp,
    Http(String),
    Exec(CommandTemplate),
    Log(String),
}
