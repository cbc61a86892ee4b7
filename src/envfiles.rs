//! `[[env_files]]`: per-instance copies of the project's dotenv files, with the `set` keys
//! upserted and `localhost:BASE` / `127.0.0.1:BASE` rewritten to the instance's ports,
//! everything else kept as written; and the variables services get from dotenv files.
//!
//! A target is a file berth creates: it starts with berth's header line, the ledger
//! (under `BERTH_HOME`) records it, and it is written and deleted without following a
//! symlink. A source, the configuration, a Compose file or a file of the user's is never
//! a target.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::beneath::{Beneath, BeneathError};
use crate::config::{Config, ConfigError, GENERATED_HEADER, PortBase, Site};
use crate::dotenv::DotenvError;
use crate::input::InputError;
use crate::model::{self, Identity};
use crate::ports::PortPlan;

type Result<T, E = EnvFileError> = std::result::Result<T, E>;

/// Why an env file cannot be written, or a dotenv file a service gets cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum EnvFileError {
    /// A target that cannot be reached inside the root without following a symlink.
    #[error(transparent)]
    Target(BeneathError),
    #[error("cannot write env file `{}`", path.display())]
    Write { path: PathBuf, source: BeneathError },
    #[error("cannot add `{pattern}` to the git exclude file")]
    GitExclude {
        pattern: String,
        source: std::io::Error,
    },
    /// `what` says whose file it is: `[project] env_file`, or a service's.
    #[error("{what}: cannot read it")]
    Read { what: String, source: InputError },
    #[error("{what} `{}` is not a valid dotenv file", path.display())]
    Parse {
        what: String,
        path: PathBuf,
        source: DotenvError,
    },
}

impl EnvFileError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            EnvFileError::Target(_) => "fix `target` in berth.toml".to_string(),
            EnvFileError::Write { .. } => {
                "check that the directory is writable and the disk is not full".to_string()
            }
            EnvFileError::GitExclude { .. } => return None,
            EnvFileError::Read { .. } => {
                "create the file, or fix `env_file` in berth.toml".to_string()
            }
            EnvFileError::Parse { .. } => "fix that line of the file".to_string(),
        })
    }
}

/// One env file as this instance gets it.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedEnvFile {
    /// The root joined with the rendered `target`.
    pub target: PathBuf,
    /// Where `target` is written in berth.toml, for errors about it.
    pub site: Site,
    pub text: String,
    /// Every variable with a value, in file order.
    pub values: Vec<(String, String)>,
    /// Services that get these variables.
    pub services: Vec<String>,
}

/// Renders every `[[env_files]]` entry for this instance. Pure.
pub fn render(config: &Config, identity: &Identity, plan: &PortPlan) -> Vec<RenderedEnvFile> {
    let mut moved: HashMap<u16, u16> = HashMap::new();
    for service in config.service_names() {
        for (port_name, base) in config.ports_of(&service).cloned().unwrap_or_default() {
            if let (PortBase::Fixed(base), Some(port)) = (base, plan.get(&service, &port_name)) {
                moved.insert(base, port);
            }
        }
    }
    config
        .env_files
        .iter()
        .map(|file| {
            let mut document = file.document.clone();
            document.rewrite_ports(&|port| moved.get(&port).copied());
            for (key, template) in &file.set {
                document.upsert(key, &model::render(config, identity, plan, template));
            }
            let values = document
                .keys()
                .into_iter()
                .filter_map(|key| {
                    let value = document.get(&key)?;
                    Some((key, value))
                })
                .collect();
            let source = file
                .source
                .strip_prefix(&config.root)
                .unwrap_or(&file.source);
            RenderedEnvFile {
                target: config
                    .root
                    .join(model::render(config, identity, plan, &file.target)),
                site: file.target_site.clone(),
                text: with_header(&document.render(), &identity.name, source),
                values,
                services: file.services.clone(),
            }
        })
        .collect()
}

/// The line berth's copies start with, after a byte order mark the source has.
fn with_header(text: &str, instance: &str, source: &Path) -> String {
    let header = format!(
        "{GENERATED_HEADER} for instance `{instance}` from `{}`: rewritten by `berth up`, deleted by `berth rm`; edit the source instead.\n",
        source.display()
    );
    match text.strip_prefix('\u{feff}') {
        Some(rest) => format!("\u{feff}{header}{rest}"),
        None => header + text,
    }
}

/// Checks that berth may write every file: a plain path inside the root, reached without
/// a symlink, not a source, the configuration or a Compose file, and missing or written by
/// berth (its header, and `recorded`: the targets the ledger records at this root).
/// Returns the paths to record before writing; a target berth may not write is an error
/// located in berth.toml.
pub fn claim(
    config: &Config,
    files: &[RenderedEnvFile],
    recorded: &[PathBuf],
) -> Result<Vec<PathBuf>, ConfigError> {
    let protected = crate::config::protected_files(config);
    let mut claimed = Vec::new();
    for file in files {
        crate::config::check_target(&config.root, &file.target, &protected, Some(recorded))
            .map_err(|problem| file.site.error(problem.message, Some(problem.hint)))?;
        if let Some(path) = crate::config::target_path(&config.root, &file.target) {
            claimed.push(path);
        }
    }
    Ok(claimed)
}

/// Writes each file (mode 0600, atomically, walking from the root without following a
/// symlink) and keeps it out of git. [`claim`] has checked them.
pub fn write(files: &[RenderedEnvFile], root: &Path) -> Result<()> {
    for file in files {
        let beneath = Beneath::new(root, &file.target).map_err(EnvFileError::Target)?;
        beneath
            .write(file.text.as_bytes())
            .map_err(|source| EnvFileError::Write {
                path: file.target.clone(),
                source,
            })?;
        if let Some(pattern) = crate::git::exclude_pattern(&file.target) {
            crate::git::exclude(root, &pattern)
                .map_err(|source| EnvFileError::GitExclude { pattern, source })?;
        }
    }
    Ok(())
}

/// Deletes an env file berth wrote (`rm`): only a regular file inside the root, reached
/// without a symlink, that still starts with berth's header. `Ok(false)` when there is
/// none; `Err` says why a file there is kept.
pub fn remove(root: &Path, path: &Path) -> std::result::Result<bool, String> {
    let beneath = Beneath::new(root, path).map_err(|error| error.to_string())?;
    match crate::config::written_by_berth(&beneath) {
        Ok(true) => beneath.remove().map_err(|error| error.to_string()),
        Ok(false)
            if beneath.find().map_err(|error| error.to_string())?
                == crate::beneath::Found::Missing =>
        {
            Ok(false)
        }
        Ok(false) => {
            Err("it does not start with berth's header line, so it is not berth's".to_string())
        }
        Err(error) => Err(error.to_string()),
    }
}

/// The variables each service gets from the project and from dotenv files, later ones
/// winning: `[project] env_file`, then `[[env_files]]` entries that name it, then
/// (process services) its own `env_file` (a rendered target or any dotenv file of the
/// project), then `[project] env`. A process service's own `env` wins over all of them.
pub fn service_values(
    config: &Config,
    identity: &Identity,
    plan: &PortPlan,
    rendered: &[RenderedEnvFile],
) -> Result<IndexMap<String, Vec<(String, String)>>> {
    let mut values: IndexMap<String, Vec<(String, String)>> = IndexMap::new();
    let every_service = config.service_names();
    if let Some(template) = &config.env_file {
        let path = config
            .root
            .join(model::render(config, identity, plan, template));
        let project = dotenv_values(rendered, &path, "[project] env_file")?;
        for service in &every_service {
            values
                .entry(service.clone())
                .or_default()
                .extend(project.clone());
        }
    }
    for file in rendered {
        for service in &file.services {
            values
                .entry(service.clone())
                .or_default()
                .extend(file.values.iter().cloned());
        }
    }
    for (name, service) in &config.services {
        let Some(template) = &service.env_file else {
            continue;
        };
        let path = config
            .root
            .join(model::render(config, identity, plan, template));
        let own = dotenv_values(rendered, &path, &format!("service `{name}`: its env_file"))?;
        values.entry(name.clone()).or_default().extend(own);
    }
    if !config.env.is_empty() {
        let project: Vec<(String, String)> = config
            .env
            .iter()
            .map(|(key, template)| (key.clone(), model::render(config, identity, plan, template)))
            .collect();
        for service in &every_service {
            values
                .entry(service.clone())
                .or_default()
                .extend(project.clone());
        }
    }
    Ok(values)
}

/// The variables of a dotenv file: a rendered `[[env_files]]` target, or a file of the
/// project read as it is (foreman's semantics: values as written, nothing interpolated
/// from the environment).
fn dotenv_values(
    rendered: &[RenderedEnvFile],
    path: &std::path::Path,
    what: &str,
) -> Result<Vec<(String, String)>> {
    if let Some(file) = rendered.iter().find(|file| file.target == path) {
        return Ok(file.values.clone());
    }
    let text = crate::input::read_text(path, crate::input::MAX_TEXT_BYTES).map_err(|source| {
        EnvFileError::Read {
            what: what.to_string(),
            source,
        }
    })?;
    let document = crate::dotenv::parse(&text).map_err(|source| EnvFileError::Parse {
        what: what.to_string(),
        path: path.to_path_buf(),
        source,
    })?;
    Ok(document
        .keys()
        .into_iter()
        .filter_map(|key| {
            let value = document.get(&key)?;
            Some((key, value))
        })
        .collect())
}
