//! berth.toml exactly as written: serde types with spans, unknown keys rejected.

use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub project: Option<Spanned<RawProject>>,
    #[serde(default)]
    pub ports: Option<Spanned<RawPorts>>,
    #[serde(default)]
    pub compose: Option<Spanned<RawCompose>>,
    #[serde(default)]
    pub logs: Option<Spanned<RawLogs>>,
    #[serde(default)]
    pub worktree: Option<Spanned<RawWorktree>>,
    #[serde(default)]
    pub router: Option<Spanned<RawRouter>>,
    #[serde(default)]
    pub env_files: Vec<Spanned<RawEnvFile>>,
    #[serde(default)]
    pub services: IndexMap<Spanned<String>, Spanned<RawService>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table with `source` and `target`")]
pub struct RawEnvFile {
    pub source: Spanned<String>,
    pub target: Spanned<String>,
    #[serde(default)]
    pub set: IndexMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub services: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RawCompose {
    pub files: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub profiles: Vec<Spanned<String>>,
    pub bind: Option<Spanned<String>>,
    #[serde(default)]
    pub shared: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RawProject {
    pub name: Option<Spanned<String>>,
    /// Variables every service gets (a service's own `env` wins).
    #[serde(default)]
    pub env: IndexMap<Spanned<String>, Spanned<String>>,
    /// A dotenv file (relative to the root) every service gets, as foreman loads `.env`.
    pub env_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RawPorts {
    pub stride: Option<Spanned<i64>>,
    pub range: Option<Spanned<Vec<i64>>>,
    pub strategy: Option<Spanned<String>>,
}

/// `[router]`: how `berth router` names the instance.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RawRouter {
    /// The service `INSTANCE.localhost` reaches.
    pub default: Option<Spanned<String>>,
}

/// `[worktree]`: how `berth new` makes a worktree.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RawWorktree {
    pub dir: Option<Spanned<String>>,
    #[serde(default)]
    pub copy: Vec<Spanned<String>>,
    #[serde(default)]
    pub link: Vec<Spanned<String>>,
    #[serde(default)]
    pub setup: Vec<Spanned<String>>,
}

/// `[logs]`: how much of each service's output is kept.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogs {
    pub max_size: Option<Spanned<RawSize>>,
    pub max_files: Option<Spanned<i64>>,
}

/// A number of bytes, or a string with a unit (`"10MiB"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawSize {
    Bytes(i64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table such as `{ command = \"./run\" }`"
)]
pub struct RawService {
    /// Absent for a compose service that berth.toml only adds `depends_on` to.
    pub command: Option<Spanned<RawCommand>>,
    pub cwd: Option<Spanned<String>>,
    #[serde(default)]
    pub env: IndexMap<Spanned<String>, Spanned<String>>,
    /// A dotenv file (relative to the root) whose variables the process gets.
    pub env_file: Option<Spanned<String>>,
    pub port: Option<Spanned<RawPort>>,
    pub ports: Option<Spanned<IndexMap<Spanned<String>, Spanned<RawPort>>>>,
    #[serde(default)]
    pub depends_on: Vec<Spanned<String>>,
    pub ready: Option<Spanned<RawReady>>,
    pub restart: Option<Spanned<String>>,
    #[serde(default)]
    pub shell: bool,
    pub setup: Option<Spanned<String>>,
    pub stop_grace: Option<Spanned<String>>,
    /// The same as `stop_grace`, under the name Compose and systemd users know.
    pub stop_timeout: Option<Spanned<String>>,
    /// The signal that asks the service to stop (`SIGINT` for PostgreSQL).
    pub stop_signal: Option<Spanned<String>>,
    /// What the service's first port speaks: `http`, `https` or `tcp`.
    pub protocol: Option<Spanned<String>>,
    /// `"postgres"` or `{ kind = "postgres", name = …, user = …, password = … }`.
    pub database: Option<Spanned<RawDatabase>>,
    /// Run once per project per machine, used by every instance.
    #[serde(default)]
    pub shared: Option<Spanned<bool>>,
    pub per_instance: Option<Spanned<RawPerInstance>>,
}

// An untagged enum's `expecting` is its whole error message; the loader puts the key
// before "must be".
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "must be \"postgres\" or a table such as `{ kind = \"postgres\", name = \"app\" }`"
)]
pub enum RawDatabase {
    Kind(String),
    Table(RawDatabaseTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RawDatabaseTable {
    pub kind: String,
    pub name: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table with `create` and `drop` commands"
)]
pub struct RawPerInstance {
    pub create: Option<Spanned<String>>,
    pub drop: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "must be a command line (a string) or its words (an array of strings)"
)]
pub enum RawCommand {
    Line(String),
    Argv(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "must be a port number (1024 to 65535) or \"auto\""
)]
pub enum RawPort {
    Number(i64),
    Word(String),
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table with one of `tcp`, `http`, `exec` or `log`, such as `{ tcp = true }`"
)]
pub struct RawReady {
    pub tcp: Option<bool>,
    pub http: Option<String>,
    /// With `http`: which answers count (`"success"`, `"any"`, a code or a list of codes).
    pub status: Option<Spanned<RawStatus>>,
    pub exec: Option<String>,
    pub log: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "must be \"success\", \"any\", an HTTP status code or a list of them, such as `[200, 404]`"
)]
pub enum RawStatus {
    Word(String),
    Code(i64),
    Codes(Vec<i64>),
}
