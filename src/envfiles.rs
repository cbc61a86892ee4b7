//! `[[env_files]]`: per-instance copies of the project's dotenv files, with the `set` keys
//! upserted and `localhost:BASE` / `127.0.0.1:BASE` rewritten to the instance's ports,
//! everything else kept as written; and the variables services get from dotenv files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::config::{Config, PortBase};
use crate::error::{Error, Result};
use crate::model::{self, Identity};
use crate::ports::PortPlan;

/// One env file as this instance gets it.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedEnvFile {
    pub target: PathBuf,
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
            RenderedEnvFile {
                target: config
                    .root
                    .join(model::render(config, identity, plan, &file.target)),
                text: document.render(),
                values,
                services: file.services.clone(),
            }
        })
        .collect()
}

/// Writes each file (mode 0600, atomically, never through a symlink) and keeps it out of
/// git. A target outside the project root is refused.
pub fn write(files: &[RenderedEnvFile], root: &Path) -> Result<()> {
    for file in files {
        let inside = file.target.strip_prefix(root).is_ok_and(|relative| {
            relative
                .components()
                .all(|part| matches!(part, std::path::Component::Normal(_)))
        });
        if !inside {
            return Err(Error::usage(
                format!(
                    "env file target `{}` is outside the project root `{}`",
                    file.target.display(),
                    root.display()
                ),
                Some("give `target` a path inside the project, such as \".env.local\"".to_string()),
            ));
        }
        if let Some(dir) = file.target.parent() {
            fs_err::create_dir_all(dir)?;
        }
        crate::state::write_atomic(&file.target, file.text.as_bytes())?;
        if let Some(pattern) = crate::git::exclude_pattern(&file.target) {
            crate::git::exclude(root, &pattern).map_err(|error| {
                Error::failed(
                    format!("cannot add `{pattern}` to the git exclude file: {error}"),
                    None,
                )
            })?;
        }
    }
    Ok(())
}

/// The variables each service gets from dotenv files: from `[[env_files]]` entries that
/// name it, then (process services) from its own `env_file`, which may be one of the
/// rendered targets or any dotenv file of the project.
pub fn service_values(
    config: &Config,
    identity: &Identity,
    plan: &PortPlan,
    rendered: &[RenderedEnvFile],
) -> Result<IndexMap<String, Vec<(String, String)>>> {
    let mut values: IndexMap<String, Vec<(String, String)>> = IndexMap::new();
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
        let own = match rendered.iter().find(|file| file.target == path) {
            Some(file) => file.values.clone(),
            None => {
                let text = crate::input::read_text(&path, crate::input::MAX_TEXT_BYTES).map_err(
                    |error| {
                        Error::usage(
                            format!("service `{name}`: cannot read its env_file: {error}"),
                            Some("create the file, or fix `env_file` in berth.toml".to_string()),
                        )
                    },
                )?;
                let document = crate::dotenv::parse(&text).map_err(|error| {
                    Error::usage(
                        format!(
                            "service `{name}`: env_file `{}` is not a valid dotenv file: {error}",
                            path.display()
                        ),
                        Some("fix that line of the file".to_string()),
                    )
                })?;
                document
                    .keys()
                    .into_iter()
                    .filter_map(|key| {
                        let value = document.get(&key)?;
                        Some((key, value))
                    })
                    .collect()
            }
        };
        values.entry(name.clone()).or_default().extend(own);
    }
    Ok(values)
}
