//! Resolution: the Compose tool's own `config` command reads the user's files (so
//! interpolation, `extends`, profiles and several `-f` files behave exactly as in Compose),
//! then berth reads what it printed into a [`ComposeProject`].

use std::path::{Path, PathBuf};
use std::process::Command;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::cache;
use super::ports::{PortMapping, entry_text, parse_entry};
use super::{ComposeError, ComposeTool};
use crate::external::{Call, CallKind};

/// The resolved Compose project: the document as the tool printed it, and what berth
/// needs to know of each active service.
#[derive(Debug, Clone)]
pub struct ComposeProject {
    pub document: Value,
    pub services: IndexMap<String, ComposeService>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ComposeService {
    /// Published ports by name (the container port, `53-udp` for UDP).
    pub ports: IndexMap<String, PortMapping>,
    /// The service's Docker healthcheck test as a command to run in its container
    /// (`CMD-SHELL` through `/bin/sh -c`); `None` without a healthcheck.
    pub healthcheck: Option<Vec<String>>,
    /// `depends_on` inside the Compose file.
    pub depends_on: Vec<String>,
}

/// The most berth reads of what `config` prints (a resolved file is a few kilobytes; a
/// YAML anchor bomb expands without end).
pub const MAX_OUTPUT_BYTES: u64 = crate::external::MAX_STDOUT_BYTES;

/// Runs `<tool> config` on the user's files and reads the result.
pub fn resolve(
    tool: &ComposeTool,
    project_name: &str,
    root: &Path,
    files: &[PathBuf],
    profiles: &[String],
) -> Result<ComposeProject, ComposeError> {
    let display = format!("{} config", tool.display());
    let key = cache::key(tool, project_name, root, files, profiles)?;
    let cached = key.as_deref().and_then(|key| cache::read(root, key));
    let text = match cached {
        Some(text) => text,
        None => {
            // `config` may ask the engine (Compose v2 does), so it must ask the same one
            // berth uses.
            let endpoint = crate::docker::Endpoint::from_env()?;
            let mut command = tool.command(&endpoint, project_name, root, files);
            for profile in profiles {
                command.arg("--profile").arg(profile);
            }
            command.arg("config");
            let stdout = run_bounded(command, &display)?;
            let text = String::from_utf8_lossy(&stdout).into_owned();
            if let Some(key) = &key {
                cache::write(root, key, &text);
            }
            text
        }
    };
    let document: Value = serde_saphyr::from_str(&text).map_err(|error| ComposeError::Output {
        command: display.clone(),
        detail: error.to_string(),
    })?;
    let mut active: Vec<String> = profiles.to_vec();
    if let Ok(value) = std::env::var("COMPOSE_PROFILES") {
        active.extend(value.split(',').map(str::trim).map(String::from));
    }
    ComposeProject::from_document(document, &active)
}

/// Runs `command` to success within its deadline and output bound
/// ([`crate::external`]: its own process group, stopped whole, dying with berth) and
/// returns its stdout.
fn run_bounded(command: Command, display: &str) -> Result<Vec<u8>, ComposeError> {
    let finished = Call::new(command, display, CallKind::ComposeConfig).run()?;
    if finished.status.success() {
        return Ok(finished.stdout);
    }
    Err(ComposeError::Invalid {
        command: display.to_string(),
        status: finished.status.to_string(),
        stderr: super::tail(&finished.stderr, 20),
    })
}

impl ComposeProject {
    /// Reads a resolved document. Services whose profiles are all inactive are dropped
    /// (Compose v1 prints them; v2 leaves them out), so berth never waits for them.
    pub fn from_document(mut document: Value, profiles: &[String]) -> Result<Self, ComposeError> {
        let services_value = document
            .get_mut("services")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| ComposeError::Output {
                command: "config".into(),
                detail: "no `services` map".into(),
            })?;
        services_value.retain(|_, service| is_active(service, profiles));
        let mut services = IndexMap::new();
        for (name, service) in services_value.iter_mut() {
            if let Some(object) = service.as_object_mut() {
                object.remove("profiles");
            }
            services.insert(name.clone(), read_service(name, service)?);
        }
        Ok(Self { document, services })
    }
}

fn is_active(service: &Value, profiles: &[String]) -> bool {
    match service.get("profiles").and_then(Value::as_array) {
        Some(list) if !list.is_empty() => list
            .iter()
            .filter_map(Value::as_str)
            .any(|profile| profiles.iter().any(|active| active == profile)),
        _ => true,
    }
}

fn read_service(name: &str, service: &Value) -> Result<ComposeService, ComposeError> {
    let entries = service
        .get("ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !entries.is_empty()
        && let Some(mode) = service.get("network_mode").and_then(Value::as_str)
        && mode == "host"
    {
        return Err(ComposeError::Unsupported {
            service: name.to_string(),
            detail: "`network_mode: host` shares the host's ports, so instances cannot each \
                     have their own; publish the ports instead"
                .to_string(),
        });
    }
    let mut ports: IndexMap<String, PortMapping> = IndexMap::new();
    for entry in &entries {
        let mappings = parse_entry(entry).map_err(|error| ComposeError::Port {
            service: name.to_string(),
            text: entry_text(entry),
            detail: error.0,
        })?;
        for mapping in mappings {
            // The same mapping listed for several host addresses is one planned port.
            if ports.values().any(|known| {
                known.target == mapping.target
                    && known.protocol == mapping.protocol
                    && known.published == mapping.published
            }) {
                continue;
            }
            let base = mapping.name();
            let mut port_name = base.clone();
            let mut suffix = 2;
            while ports.contains_key(&port_name) {
                port_name = format!("{base}-{suffix}");
                suffix += 1;
            }
            ports.insert(port_name, mapping);
        }
    }
    Ok(ComposeService {
        ports,
        healthcheck: health_test(service),
        depends_on: depends_on(service),
    })
}

fn health_test(service: &Value) -> Option<Vec<String>> {
    let check = service.get("healthcheck").and_then(Value::as_object)?;
    if check.get("disable").and_then(Value::as_bool) == Some(true) {
        return None;
    }
    let shell = |line: String| vec!["/bin/sh".to_string(), "-c".to_string(), line];
    match check.get("test")? {
        Value::Array(words) => {
            let words: Vec<String> = words
                .iter()
                .map(|word| match word {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                })
                .collect();
            match words.split_first() {
                Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
                Some((kind, rest)) if kind == "CMD-SHELL" && !rest.is_empty() => {
                    Some(shell(rest.join(" ")))
                }
                _ => None,
            }
        }
        Value::String(text) if !text.is_empty() => Some(shell(text.clone())),
        _ => None,
    }
}

fn depends_on(service: &Value) -> Vec<String> {
    match service.get("depends_on") {
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        Some(Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// A map or `["K=V"]` list (both are valid Compose for labels) as a map.
pub fn as_map(value: Option<&Value>) -> Map<String, Value> {
    match value {
        Some(Value::Object(map)) => map.clone(),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(|item| match item.split_once('=') {
                Some((key, value)) => (key.to_string(), Value::String(value.to_string())),
                None => (item.to_string(), Value::String(String::new())),
            })
            .collect(),
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1_OUTPUT: &str = r#"
services:
  db:
    image: busybox
    profiles:
    - extra
  web:
    container_name: myweb
    depends_on:
    - cache
    healthcheck:
      interval: 1s
      test:
      - CMD
      - "true"
    image: busybox
    ports:
    - target: 80
    - published: 8080
      target: 80
    - 127.0.0.1:8081:81/tcp
    - ::1:8081:81/tcp
    - protocol: udp
      published: 5353
      target: 53
  cache:
    image: busybox
    healthcheck:
      disable: true
version: '3.9'
"#;

    #[test]
    fn reads_services_ports_health_and_profiles() {
        let document: Value = serde_saphyr::from_str(V1_OUTPUT).unwrap();
        let project = ComposeProject::from_document(document.clone(), &[]).unwrap();
        assert_eq!(
            project.services.keys().collect::<Vec<_>>(),
            ["web", "cache"]
        );
        let web = &project.services["web"];
        assert_eq!(
            web.ports.keys().collect::<Vec<_>>(),
            ["80", "80-2", "81", "53-udp"]
        );
        assert_eq!(web.ports["80"].published, None);
        assert_eq!(web.ports["80-2"].published, Some(8080));
        assert_eq!(web.healthcheck, Some(vec!["true".to_string()]));
        assert_eq!(project.services["cache"].healthcheck, None);
        assert_eq!(web.depends_on, ["cache"]);

        let with_profile = ComposeProject::from_document(document, &["extra".into()]).unwrap();
        assert!(with_profile.services.contains_key("db"));
        assert!(
            with_profile.document["services"]["db"]
                .get("profiles")
                .is_none()
        );
    }

    #[test]
    fn host_network_and_bad_ports_are_errors_naming_the_service() {
        let host: Value = serde_saphyr::from_str(
            "services:\n  web:\n    image: x\n    network_mode: host\n    ports: ['80:80']\n",
        )
        .unwrap();
        let error = ComposeProject::from_document(host, &[]).unwrap_err();
        assert!(error.to_string().contains("`web`"), "{error}");
        let range: Value = serde_saphyr::from_str(
            "services:\n  web:\n    image: x\n    ports: ['8000-8010:80']\n",
        )
        .unwrap();
        let error = ComposeProject::from_document(range, &[])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`web`") && error.contains("8000-8010:80"),
            "{error}"
        );
    }
}
