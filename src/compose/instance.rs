//! Preparing an instance's Compose side for `up`: the resolved project turned into what
//! the planner needs, then the per-instance file written from the port plan.

use std::path::Path;

use indexmap::IndexMap;
use sha2::{Digest, Sha256};

use super::{ComposeError, ComposeProject, ComposeTool, RewriteInputs, rewrite, to_yaml};
use crate::config::{ComposeCatalog, ComposeConfig, ComposeServiceConfig, Config, PortBase};
use crate::docker::Engine;
use crate::external::{Call, CallKind};
use crate::state::ComposeBackend;

/// What `config` produced, kept between loading and writing.
pub struct Resolved {
    pub tool: ComposeTool,
    pub project: ComposeProject,
    /// The project name `config` ran with.
    pub resolved_as: String,
    /// The paths each service's image declares as volumes, once read from the engine
    /// ([`Resolved::read_image_volumes`]).
    pub image_volumes: IndexMap<String, Vec<String>>,
}

impl Resolved {
    /// The services as the planner and the config checks see them.
    pub fn catalog(&self) -> ComposeCatalog {
        self.project
            .services
            .iter()
            .map(|(name, service)| {
                let ports = service
                    .ports
                    .iter()
                    .map(|(port_name, mapping)| {
                        let base = match mapping.published {
                            Some(port) => PortBase::Fixed(port),
                            None => PortBase::Auto,
                        };
                        (port_name.clone(), base)
                    })
                    .collect();
                let config = ComposeServiceConfig {
                    ports,
                    depends_on: service.depends_on.clone(),
                    healthcheck: service.healthcheck.clone(),
                    environment: environment(&self.project.document, name),
                    shared: false,
                    per_instance: None,
                };
                (name.clone(), config)
            })
            .collect()
    }

    /// Reads from the engine which paths each service's image declares as volumes.
    pub fn read_image_volumes(&mut self, engine: &Engine) -> Result<(), ComposeError> {
        for (name, image) in self.images() {
            let paths = engine.image_volumes(&image)?;
            if !paths.is_empty() {
                self.image_volumes.insert(name, paths);
            }
        }
        Ok(())
    }

    /// Each service's image, as the resolved file names it.
    fn images(&self) -> Vec<(String, String)> {
        self.project
            .document
            .get("services")
            .and_then(serde_json::Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(name, service)| {
                Some((name.clone(), service.get("image")?.as_str()?.to_string()))
            })
            .collect()
    }

    /// Renders the per-instance file for `instance` with its planned host ports.
    pub fn render(
        &self,
        compose: &ComposeConfig,
        instance: &str,
        root: &Path,
        host_ports: &IndexMap<String, IndexMap<String, u16>>,
        environment: &IndexMap<String, Vec<(String, String)>>,
        path: &Path,
    ) -> Result<InstanceCompose, ComposeError> {
        let settings = &compose.settings;
        let services: Vec<String> = compose.services.keys().cloned().collect();
        let rewritten = rewrite(
            &self.project,
            &RewriteInputs {
                instance,
                root,
                resolved_as: &self.resolved_as,
                bind: settings.bind,
                shared: &settings.shared,
                host_ports,
                environment,
                services: &services,
                image_volumes: &self.image_volumes,
            },
        )?;
        let sources: Vec<String> = settings
            .files
            .iter()
            .map(|file| file.display().to_string())
            .collect();
        let yaml = format!(
            "# Written by berth for instance `{instance}` from {}.\n# Regenerated on every `berth up`: edit those files, not this one.\n{}",
            sources.join(", "),
            to_yaml(&rewritten.document)
        );
        let backend = ComposeBackend {
            program: self.tool.program.clone(),
            file: path.to_path_buf(),
            project_dir: root.to_path_buf(),
            digest: Sha256::digest(yaml.as_bytes())
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect(),
        };
        Ok(InstanceCompose {
            yaml,
            shared_volumes: rewritten.shared_volumes,
            shared_networks: rewritten.shared_networks,
            backend,
        })
    }
}

/// A service's `environment` from the resolved document, as a map (Compose prints a map;
/// a list of `KEY=VALUE` is read too).
fn environment(document: &serde_json::Value, service: &str) -> IndexMap<String, String> {
    let value = document
        .get("services")
        .and_then(|services| services.get(service))
        .and_then(|service| service.get("environment"));
    match value {
        Some(serde_json::Value::Object(map)) => map
            .iter()
            .map(|(key, value)| {
                let text = match value {
                    serde_json::Value::String(text) => text.clone(),
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                };
                (key.clone(), text)
            })
            .collect(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(serde_json::Value::as_str)
            .filter_map(|item| item.split_once('='))
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect(),
        _ => IndexMap::new(),
    }
}

/// The rendered per-instance Compose file, not yet written.
pub struct InstanceCompose {
    pub yaml: String,
    pub shared_volumes: Vec<String>,
    pub shared_networks: Vec<String>,
    pub backend: ComposeBackend,
}

impl InstanceCompose {
    /// Writes the file (mode 0600, atomically) and creates the shared volumes and
    /// networks it expects to exist.
    pub fn write(&self) -> Result<(), ComposeError> {
        crate::state::write_atomic(&self.backend.file, self.yaml.as_bytes())?;
        let root = &self.backend.project_dir;
        for volume in &self.shared_volumes {
            ensure_shared(&["volume", "create"], volume, root)?;
        }
        for network in &self.shared_networks {
            ensure_shared(&["network", "create"], network, root)?;
        }
        Ok(())
    }
}

/// Creates a shared volume or network unless it exists (labelled, so `gc` knows it).
fn ensure_shared(create: &[&str], name: &str, root: &Path) -> Result<(), ComposeError> {
    let kind = create[0];
    let endpoint = crate::docker::Endpoint::from_env()?;
    let mut inspect = endpoint.command("docker");
    inspect.args([kind, "inspect", name]);
    let exists = Call::new(inspect, format!("docker {kind} inspect"), CallKind::Docker)
        .stdout(std::process::Stdio::null())
        .run()?
        .status
        .success();
    if exists {
        return Ok(());
    }
    let label = format!("{}={}", super::LABEL_SHARED, root.display());
    let display = format!("docker {} {name}", create.join(" "));
    let mut command = endpoint.command("docker");
    command.args(create).args(["--label", &label, name]);
    let finished = Call::new(command, &display, CallKind::Docker).run()?;
    if finished.status.success() {
        return Ok(());
    }
    Err(ComposeError::Command {
        command: display,
        status: finished.status.to_string(),
        stderr: super::tail(&finished.stderr, 5),
    })
}

/// Loads the project at `root`: berth.toml, and the Compose files resolved by the Compose
/// tool when it has any (kept for writing the per-instance file after planning).
pub fn load_project(root: &Path) -> Result<(Config, Option<Resolved>), ComposeError> {
    let mut resolved: Option<Resolved> = None;
    let config = crate::config::load::<ComposeError>(root, &mut |settings, project| {
        let tool = ComposeTool::detect()?;
        let document = super::resolve(&tool, project, root, &settings.files, &settings.profiles)?;
        let found = Resolved {
            tool,
            project: document,
            resolved_as: project.to_string(),
            image_volumes: IndexMap::new(),
        };
        let catalog = found.catalog();
        resolved = Some(found);
        Ok(catalog)
    })?;
    Ok((config, resolved))
}

/// The engine, checked to answer: a project with compose services needs it.
pub fn engine() -> Result<Engine, ComposeError> {
    let engine = Engine::from_env()?;
    engine.version()?;
    Ok(engine)
}
