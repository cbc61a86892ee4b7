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
    pub env_files: Vec<Spanned<RawEnvFile>>,
    #[serde(default)]
    pub services: IndexMap<Spanned<String>, Spanned<RawService>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnvFile {
    pub source: Spanned<String>,
    pub target: Spanned<String>,
    #[serde(default)]
    pub set: IndexMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub services: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompose {
    pub files: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub profiles: Vec<Spanned<String>>,
    pub bind: Option<Spanned<String>>,
    #[serde(default)]
    pub shared: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProject {
    pub name: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPorts {
    pub stride: Option<Spanned<i64>>,
    pub range: Option<Spanned<Vec<i64>>>,
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
#[serde(deny_unknown_fields)]
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
    /// `"postgres"` or `{ kind = "postgres", name = …, user = …, password = … }`.
    pub database: Option<Spanned<RawDatabase>>,
    /// Run once per project per machine, used by every instance.
    #[serde(default)]
    pub shared: Option<Spanned<bool>>,
    pub per_instance: Option<Spanned<RawPerInstance>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawDatabase {
    Kind(String),
    Table(RawDatabaseTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabaseTable {
    pub kind: String,
    pub name: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPerInstance {
    pub create: Option<Spanned<String>>,
    pub drop: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawCommand {
    Line(String),
    Argv(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawPort {
    Number(i64),
    Word(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReady {
    pub tcp: Option<bool>,
    pub http: Option<String>,
    pub exec: Option<String>,
    pub log: Option<String>,
}
