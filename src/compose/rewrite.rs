//! The per-instance Compose file: the resolved document rewritten so that instances never
//! collide (project name, host ports, container names, volume and network names, labels).
//! Pure: plain data in, plain data out.

use std::net::IpAddr;
use std::path::Path;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::ComposeError;
use super::ports::{entry_text, parse_entry};
use super::resolve::{ComposeProject, as_map};

/// Label on every container: the instance that owns it.
pub const LABEL_INSTANCE: &str = "dev.berth.instance";
/// Label on every container: the instance's canonical root.
pub const LABEL_ROOT: &str = "dev.berth.root";
/// Label on volumes and networks shared by every instance of a project.
pub const LABEL_SHARED: &str = "dev.berth.shared";
/// Label on the volumes berth names for paths an image declares (`VOLUME`): the
/// user never named them, so, like Docker's anonymous volumes, they go with a
/// deleted work tree's instance (`gc`), where the volumes the user named stay.
pub const LABEL_IMAGE_VOLUME: &str = "dev.berth.image-volume";

pub struct RewriteInputs<'a> {
    pub instance: &'a str,
    pub root: &'a Path,
    /// The project name `config` ran with, which Compose v2 used for the names it printed.
    pub resolved_as: &'a str,
    pub bind: IpAddr,
    /// Volume and network keys used by every instance (`[compose] shared`).
    pub shared: &'a [String],
    /// The planned host port of each service's named port.
    pub host_ports: &'a IndexMap<String, IndexMap<String, u16>>,
    /// Variables from the instance's env files, by service; a variable the service sets
    /// itself in the Compose file wins.
    pub environment: &'a IndexMap<String, Vec<(String, String)>>,
    /// The services this file runs: the others run elsewhere (the project's shared
    /// instance, or an instance of it), so they, the dependencies on them and the volumes
    /// only they mount are left out.
    pub services: &'a [String],
    /// The paths each service's image declares as volumes (`VOLUME`): each one the
    /// service does not mount itself gets a named per-instance volume, so its data
    /// survives `down`/`up` like any named volume and goes with `down --volumes`.
    pub image_volumes: &'a IndexMap<String, Vec<String>>,
}

/// The rewritten document, and the shared volumes and networks that must exist before it
/// starts (they are `external` in the document, so Compose never removes them).
#[derive(Debug, Clone, PartialEq)]
pub struct Rewritten {
    pub document: Value,
    pub shared_volumes: Vec<String>,
    pub shared_networks: Vec<String>,
}

pub fn rewrite(
    project: &ComposeProject,
    inputs: &RewriteInputs,
) -> Result<Rewritten, ComposeError> {
    let mut document = project.document.clone();
    let Some(top) = document.as_object_mut() else {
        return Err(ComposeError::Output {
            command: "config".into(),
            detail: "the document is not a map".into(),
        });
    };
    if top.contains_key("name") {
        top.insert("name".into(), Value::String(inputs.instance.to_string()));
    }
    keep_services(top, inputs.services);
    let root = inputs.root.display().to_string();
    let mut image_volumes: Vec<String> = Vec::new();
    if let Some(services) = top.get_mut("services").and_then(Value::as_object_mut) {
        for (name, service) in services.iter_mut() {
            let Some(service) = service.as_object_mut() else {
                continue;
            };
            let known = project.services.get(name);
            rewrite_ports(name, service, known, inputs)?;
            if service.contains_key("container_name") {
                service.insert(
                    "container_name".into(),
                    Value::String(format!("{}-{name}", inputs.instance)),
                );
            }
            if let Some(values) = inputs.environment.get(name) {
                let mut environment = as_map(service.get("environment"));
                for (key, value) in values {
                    if !environment.contains_key(key) {
                        environment.insert(key.clone(), Value::String(value.clone()));
                    }
                }
                service.insert("environment".into(), Value::Object(environment));
            }
            let mut labels = as_map(service.get("labels"));
            labels.insert(LABEL_INSTANCE.into(), Value::String(inputs.instance.into()));
            labels.insert(LABEL_ROOT.into(), Value::String(root.clone()));
            service.insert("labels".into(), Value::Object(labels));
            if let Some(paths) = inputs.image_volumes.get(name) {
                image_volumes.extend(name_image_volumes(name, service, paths));
            }
        }
    }
    if !image_volumes.is_empty() {
        let mut volumes = as_map(top.get("volumes"));
        for key in image_volumes {
            volumes.entry(key).or_insert_with(|| {
                let labels = Map::from_iter([(
                    LABEL_IMAGE_VOLUME.to_string(),
                    Value::String("true".to_string()),
                )]);
                Value::Object(Map::from_iter([(
                    "labels".to_string(),
                    Value::Object(labels),
                )]))
            });
        }
        top.insert("volumes".into(), Value::Object(volumes));
    }
    declare_default_network(top);
    let shared_volumes = rewrite_resources(top, "volumes", inputs);
    let shared_networks = rewrite_resources(top, "networks", inputs);
    Ok(Rewritten {
        document,
        shared_volumes,
        shared_networks,
    })
}

/// Mounts a named volume on each path of `paths` (declared by the service's image) that
/// the service does not mount already; returns the volume keys it used.
fn name_image_volumes(
    service_name: &str,
    service: &mut Map<String, Value>,
    paths: &[String],
) -> Vec<String> {
    let mut mounts = match service.get("volumes") {
        Some(Value::Array(mounts)) => mounts.clone(),
        _ => Vec::new(),
    };
    let targets: Vec<String> = mounts.iter().filter_map(mount_target).collect();
    let mut keys = Vec::new();
    for path in paths {
        let path = path.trim_end_matches('/');
        if path.is_empty()
            || targets
                .iter()
                .any(|target| target.trim_end_matches('/') == path)
        {
            continue;
        }
        let key = image_volume_key(service_name, path);
        mounts.push(Value::String(format!("{key}:{path}")));
        keys.push(key);
    }
    if !keys.is_empty() {
        service.insert("volumes".into(), Value::Array(mounts));
    }
    keys
}

/// `db` and `/var/lib/postgresql/data` give `db-var-lib-postgresql-data`.
fn image_volume_key(service: &str, path: &str) -> String {
    let mut key = service.to_string();
    for c in path.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
            key.push(c);
        } else if !key.ends_with('-') {
            key.push('-');
        }
    }
    key.trim_end_matches('-').to_string()
}

/// The container path of a service's mount, in short (`src:dst[:mode]`, `dst`) or long
/// (`{ target: … }`) syntax.
fn mount_target(mount: &Value) -> Option<String> {
    match mount {
        Value::String(text) => {
            let parts: Vec<&str> = text.split(':').collect();
            Some(match parts.as_slice() {
                [target] => target.to_string(),
                [_, target, ..] => target.to_string(),
                [] => return None,
            })
        }
        Value::Object(map) => map.get("target")?.as_str().map(String::from),
        _ => None,
    }
}

/// Declares the implicit `default` network when a service uses it, so that it is named
/// and labelled like every other network of the instance (Compose v1 leaves it out of
/// its resolved configuration, and its network then carried no berth label).
fn declare_default_network(top: &mut Map<String, Value>) {
    let uses_default = top
        .get("services")
        .and_then(Value::as_object)
        .is_some_and(|services| {
            services.values().any(|service| {
                let Some(service) = service.as_object() else {
                    return false;
                };
                if service.contains_key("network_mode") {
                    return false;
                }
                match service.get("networks") {
                    None => true,
                    Some(Value::Array(names)) => names.iter().any(|name| name == "default"),
                    Some(Value::Object(names)) => names.contains_key("default"),
                    Some(_) => false,
                }
            })
        });
    if !uses_default {
        return;
    }
    let mut networks = as_map(top.get("networks"));
    if !networks.contains_key("default") {
        networks.insert("default".into(), Value::Object(Map::new()));
        top.insert("networks".into(), Value::Object(networks));
    }
}

/// Leaves out the services not in `keep`, the dependencies on them, and the volumes no
/// kept service mounts.
fn keep_services(top: &mut Map<String, Value>, keep: &[String]) {
    let Some(services) = top.get_mut("services").and_then(Value::as_object_mut) else {
        return;
    };
    let before = services.len();
    services.retain(|name, _| keep.contains(name));
    if services.len() == before {
        return;
    }
    let mut mounted: Vec<String> = Vec::new();
    for service in services.values_mut() {
        let Some(service) = service.as_object_mut() else {
            continue;
        };
        match service.get_mut("depends_on") {
            Some(Value::Array(list)) => list.retain(|name| {
                name.as_str()
                    .is_some_and(|name| keep.iter().any(|k| k == name))
            }),
            Some(Value::Object(map)) => map.retain(|name, _| keep.contains(name)),
            _ => {}
        }
        if service.get("depends_on").is_some_and(|value| {
            value.as_array().is_some_and(Vec::is_empty)
                || value.as_object().is_some_and(Map::is_empty)
        }) {
            service.remove("depends_on");
        }
        for entry in service
            .get("volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let source = match entry {
                Value::String(short) => short.split(':').next(),
                Value::Object(long) => long.get("source").and_then(Value::as_str),
                _ => None,
            };
            if let Some(source) = source {
                mounted.push(source.to_string());
            }
        }
    }
    if let Some(volumes) = top.get_mut("volumes").and_then(Value::as_object_mut) {
        volumes.retain(|key, _| mounted.contains(key));
    }
}

fn rewrite_ports(
    name: &str,
    service: &mut Map<String, Value>,
    known: Option<&super::ComposeService>,
    inputs: &RewriteInputs,
) -> Result<(), ComposeError> {
    let Some(entries) = service.get("ports").and_then(Value::as_array) else {
        return Ok(());
    };
    let planned = inputs.host_ports.get(name);
    let mut rewritten: Vec<Value> = Vec::new();
    for entry in entries {
        let error = |detail: String| ComposeError::Port {
            service: name.to_string(),
            text: entry_text(entry),
            detail,
        };
        for mapping in parse_entry(entry).map_err(|e| error(e.0))? {
            let host_port = known
                .and_then(|known| {
                    known.ports.iter().find(|(_, other)| {
                        other.target == mapping.target
                            && other.protocol == mapping.protocol
                            && other.published == mapping.published
                    })
                })
                .and_then(|(port_name, _)| planned?.get(port_name).copied())
                .ok_or_else(|| error("no planned host port".to_string()))?;
            let value = mapping.render(inputs.bind, host_port);
            if !rewritten.contains(&value) {
                rewritten.push(value);
            }
        }
    }
    service.insert("ports".into(), Value::Array(rewritten));
    Ok(())
}

/// Gives each volume or network of `section` a per-instance name, or (when shared) a
/// project-wide one marked external. Returns the shared names.
fn rewrite_resources(
    top: &mut Map<String, Value>,
    section: &str,
    inputs: &RewriteInputs,
) -> Vec<String> {
    let mut shared = Vec::new();
    let Some(resources) = top.get_mut(section).and_then(Value::as_object_mut) else {
        return shared;
    };
    for (key, spec) in resources.iter_mut() {
        if spec.is_null() {
            *spec = Value::Object(Map::new());
        }
        let Some(spec) = spec.as_object_mut() else {
            continue;
        };
        let external = match spec.get("external") {
            Some(Value::Bool(flag)) => *flag,
            Some(Value::Object(_)) => true,
            _ => false,
        };
        if external {
            continue;
        }
        let generated = format!("{}_{key}", inputs.resolved_as);
        let explicit = spec
            .get("name")
            .and_then(Value::as_str)
            .filter(|name| *name != generated)
            .map(String::from);
        if inputs.shared.iter().any(|name| name == key) {
            let name = explicit.unwrap_or(generated);
            shared.push(name.clone());
            *spec = Map::from_iter([
                ("name".to_string(), Value::String(name)),
                ("external".to_string(), Value::Bool(true)),
            ]);
            continue;
        }
        let name = match explicit {
            Some(name) => format!("{}_{name}", inputs.instance),
            None => format!("{}_{key}", inputs.instance),
        };
        spec.insert("name".into(), Value::String(name));
        let mut labels = as_map(spec.get("labels"));
        labels.insert(LABEL_INSTANCE.into(), Value::String(inputs.instance.into()));
        labels.insert(
            LABEL_ROOT.into(),
            Value::String(inputs.root.display().to_string()),
        );
        spec.insert("labels".into(), Value::Object(labels));
    }
    shared
}

/// YAML that reads back the same under YAML 1.2 (Compose v2) and YAML 1.1 (Compose v1's
/// PyYAML): block style with every key and every string double-quoted and escaped, so
/// nothing turns into a bool, a date, a number or a sexagesimal, and no character a YAML
/// 1.1 reader refuses appears raw. (serde-saphyr's `quote_all` quotes values but leaves
/// keys such as `2001-01-01` bare, which PyYAML reads as dates.)
pub fn to_yaml(document: &Value) -> String {
    let mut out = String::new();
    match document {
        Value::Object(map) if !map.is_empty() => emit_map(map, 0, &mut out),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn emit_map(map: &Map<String, Value>, indent: usize, out: &mut String) {
    for (key, value) in map {
        out.push_str(&" ".repeat(indent));
        out.push_str(&quote(key));
        out.push(':');
        emit_child(value, indent, out);
    }
}

fn emit_list(items: &[Value], indent: usize, out: &mut String) {
    for item in items {
        out.push_str(&" ".repeat(indent));
        out.push('-');
        emit_child(item, indent, out);
    }
}

/// The value after `key:` or `-`: inline when scalar or empty, else nested two deeper.
fn emit_child(value: &Value, indent: usize, out: &mut String) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            emit_map(map, indent + 2, out);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            emit_list(items, indent + 2, out);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => quote(text),
        Value::Object(_) => "{}".to_string(),
        Value::Array(_) => "[]".to_string(),
        // null, booleans and numbers are spelled the same in JSON and both YAML versions.
        other => other.to_string(),
    }
}

/// A double-quoted scalar: printable ASCII as is, everything else escaped.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            ' '..='~' => out.push(character),
            other if u32::from(other) <= 0xFFFF => {
                out.push_str(&format!("\\u{:04x}", u32::from(other)));
            }
            other => out.push_str(&format!("\\U{:08x}", u32::from(other))),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn project(document: Value) -> ComposeProject {
        ComposeProject::from_document(document, &[]).unwrap()
    }

    fn plan(entries: &[(&str, &[(&str, u16)])]) -> IndexMap<String, IndexMap<String, u16>> {
        entries
            .iter()
            .map(|(service, ports)| {
                (
                    service.to_string(),
                    ports.iter().map(|(n, p)| (n.to_string(), *p)).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn services_that_run_elsewhere_are_left_out_with_what_only_they_use() {
        let document = json!({
            "services": {
                "db": {"image": "pg", "volumes": [{"type": "volume", "source": "pgdata", "target": "/d"}]},
                "api": {"image": "api", "depends_on": {"db": {"condition": "service_healthy"}},
                        "volumes": ["cache:/cache:rw"]},
                "web": {"image": "web", "depends_on": ["api", "db"]},
            },
            "volumes": {"pgdata": {}, "cache": {}},
        });
        let out = rewrite(
            &project(document),
            &RewriteInputs {
                instance: "shop-feat",
                root: Path::new("/src/shop-feat"),
                resolved_as: "shop",
                bind: "127.0.0.1".parse().unwrap(),
                shared: &[],
                host_ports: &IndexMap::new(),
                services: &["api".to_string(), "web".to_string()],
                environment: &IndexMap::new(),
                image_volumes: &IndexMap::new(),
            },
        )
        .unwrap();
        let doc = &out.document;
        let services: Vec<&String> = doc["services"].as_object().unwrap().keys().collect();
        assert_eq!(services, ["api", "web"]);
        assert!(doc["services"]["api"].get("depends_on").is_none());
        assert_eq!(doc["services"]["web"]["depends_on"], json!(["api"]));
        let volumes: Vec<&String> = doc["volumes"].as_object().unwrap().keys().collect();
        assert_eq!(volumes, ["cache"]);
    }

    #[test]
    fn rewrites_ports_names_volumes_networks_and_labels() {
        let document = json!({
            "name": "shop",
            "services": {
                "web": {
                    "image": "x",
                    "container_name": "myweb",
                    "labels": ["team=a"],
                    "ports": ["80", "8080:80", "0.0.0.0:9000-9001:9000-9001",
                              {"target": 53, "published": "5353", "protocol": "udp"},
                              "[::1]:9000:9000"],
                },
            },
            "volumes": {
                "data": {"name": "shop_data"},
                "named": {"name": "explicit"},
                "ext": {"name": "ext", "external": true},
                "cache": null,
                "common": {"name": "shop_common"},
            },
            "networks": {"default": {"name": "shop_default"}, "front": {"name": "frontnet"}},
        });
        let host_ports = plan(&[(
            "web",
            &[
                ("80", 21000),
                ("80-2", 8180),
                ("9000", 9100),
                ("9001", 9101),
                ("53-udp", 5453),
            ],
        )]);
        let out = rewrite(
            &project(document),
            &RewriteInputs {
                instance: "shop-feat",
                root: Path::new("/src/shop-feat"),
                resolved_as: "shop",
                bind: "127.0.0.1".parse().unwrap(),
                shared: &["common".to_string()],
                host_ports: &host_ports,
                services: &["web".to_string(), "db".to_string(), "cache".to_string()],
                environment: &IndexMap::from([(
                    "web".to_string(),
                    vec![("API".to_string(), "1".to_string())],
                )]),
                image_volumes: &IndexMap::new(),
            },
        )
        .unwrap();
        let doc = &out.document;
        assert_eq!(doc["name"], "shop-feat");
        let web = &doc["services"]["web"];
        assert_eq!(
            web["ports"],
            json!([
                "127.0.0.1:21000:80/tcp",
                "127.0.0.1:8180:80/tcp",
                "127.0.0.1:9100:9000/tcp",
                "127.0.0.1:9101:9001/tcp",
                "127.0.0.1:5453:53/udp"
            ])
        );
        assert_eq!(web["container_name"], "shop-feat-web");
        assert_eq!(web["labels"]["team"], "a");
        assert_eq!(web["environment"]["API"], "1");
        assert_eq!(web["labels"][LABEL_INSTANCE], "shop-feat");
        assert_eq!(web["labels"][LABEL_ROOT], "/src/shop-feat");
        assert_eq!(doc["volumes"]["data"]["name"], "shop-feat_data");
        assert_eq!(doc["volumes"]["named"]["name"], "shop-feat_explicit");
        assert_eq!(doc["volumes"]["cache"]["name"], "shop-feat_cache");
        assert_eq!(
            doc["volumes"]["ext"],
            json!({"name": "ext", "external": true})
        );
        assert_eq!(
            doc["volumes"]["common"],
            json!({"name": "shop_common", "external": true})
        );
        assert_eq!(doc["networks"]["default"]["name"], "shop-feat_default");
        assert_eq!(doc["networks"]["front"]["name"], "shop-feat_frontnet");
        assert_eq!(out.shared_volumes, ["shop_common"]);
    }

    #[test]
    fn yaml_reads_back_the_same() {
        let document = json!({"on": "yes", "2001-01-01": "1:30", "n": ["0755", "~", null, 8, true],
                              "s": "multi\nline\t\"q\" \\", "e": {}, "l": [], "u": "é \u{2028} 🚢",
                              "nested": [{"a": [1, {"b": "c"}]}, [], [["x"]]]});
        let yaml = to_yaml(&document);
        let back: Value = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(back, document);
        assert!(yaml.contains("\"2001-01-01\":"), "{yaml}");
    }

    #[test]
    fn image_volumes_become_named_instance_volumes_and_the_default_network_is_labelled() {
        let document = json!({
            "services": {
                "db": {"image": "postgres", "volumes": ["/var/lib/postgresql/data/sub"]},
                "cache": {"image": "redis", "volumes": [{"type": "volume", "source": "c", "target": "/data"}]},
            },
        });
        let image_volumes: IndexMap<String, Vec<String>> = IndexMap::from([
            (
                "db".to_string(),
                vec!["/var/lib/postgresql/data".to_string()],
            ),
            ("cache".to_string(), vec!["/data".to_string()]),
        ]);
        let out = rewrite(
            &project(document),
            &RewriteInputs {
                instance: "shop-2",
                root: Path::new("/src/shop-2"),
                resolved_as: "shop",
                bind: "127.0.0.1".parse().unwrap(),
                shared: &[],
                host_ports: &IndexMap::new(),
                services: &["db".to_string(), "cache".to_string()],
                environment: &IndexMap::new(),
                image_volumes: &image_volumes,
            },
        )
        .unwrap();
        let doc = &out.document;
        assert_eq!(
            doc["services"]["db"]["volumes"][1],
            "db-var-lib-postgresql-data:/var/lib/postgresql/data"
        );
        assert_eq!(
            doc["volumes"]["db-var-lib-postgresql-data"]["name"],
            "shop-2_db-var-lib-postgresql-data"
        );
        assert_eq!(
            doc["volumes"]["db-var-lib-postgresql-data"]["labels"][LABEL_INSTANCE],
            "shop-2"
        );
        // A path the service mounts itself keeps the service's mount.
        assert_eq!(
            doc["services"]["cache"]["volumes"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(doc["networks"]["default"]["name"], "shop-2_default");
        assert_eq!(
            doc["networks"]["default"]["labels"][LABEL_ROOT],
            "/src/shop-2"
        );
    }
}
