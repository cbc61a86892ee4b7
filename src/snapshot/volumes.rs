//! An instance's own named volumes, read from its per-instance Compose file, copied out
//! to and back in from tar files.
//!
//! No helper image is pulled: the copy goes through a container created (never started)
//! from the image of a service that mounts the volume, with the volume mounted at
//! [`MOUNT`]. `docker cp` then streams the directory out, or a tar back in with owners
//! kept (`-a`). The volume root itself is in the tar, so its mode and owner (a database
//! directory must be 0700 and its user's) come back too. The temporary container carries
//! the instance's labels, so `rm` and `gc` remove it should berth be killed meanwhile.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

use serde_json::Value;

use super::SnapshotError;
use crate::compose::{LABEL_INSTANCE, LABEL_ROOT, as_map};
use crate::docker::Endpoint;
use crate::external::{Call, CallKind, Finished};

type Result<T, E = SnapshotError> = std::result::Result<T, E>;

/// Where the temporary container mounts the volume.
const MOUNT: &str = "/berth-volume";
/// Marks the temporary containers (besides the instance's own labels).
const LABEL_COPY: &str = "dev.berth.copy";

/// One of the instance's own volumes (not external, not shared).
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceVolume {
    /// The key under `volumes:` in the Compose file.
    pub key: String,
    /// The engine's name for it (`{instance}_{key}`).
    pub name: String,
    /// Services that mount it.
    pub services: Vec<String>,
    /// Images it can be mounted with: those of the services that mount it, then the
    /// others (for `build:` services, both names Compose v1 and v2 give built images).
    pub images: Vec<String>,
    /// Labels, driver and options from the Compose file, used to recreate the volume.
    pub labels: BTreeMap<String, String>,
    pub driver: Option<String>,
    pub driver_opts: BTreeMap<String, String>,
}

/// The instance's own volumes as its per-instance Compose file declares them.
pub fn instance_volumes(compose_file: &Path, project: &str) -> Result<Vec<InstanceVolume>> {
    let text = fs_err::read_to_string(compose_file)?;
    let document: Value =
        serde_saphyr::from_str(&text).map_err(|source| SnapshotError::ComposeFile {
            path: compose_file.to_path_buf(),
            source: Box::new(source),
        })?;
    Ok(from_document(&document, project))
}

fn from_document(document: &Value, project: &str) -> Vec<InstanceVolume> {
    let services = as_map(document.get("services"));
    let service_images: Vec<(String, Vec<String>)> = services
        .iter()
        .map(|(name, service)| {
            let images = match service.get("image").and_then(Value::as_str) {
                Some(image) => vec![image.to_string()],
                None => vec![format!("{project}-{name}"), format!("{project}_{name}")],
            };
            (name.clone(), images)
        })
        .collect();
    as_map(document.get("volumes"))
        .iter()
        .filter(|(_, spec)| spec.get("external").is_none_or(|flag| flag == false))
        .filter_map(|(key, spec)| {
            let name = spec.get("name").and_then(Value::as_str)?.to_string();
            let mounting: Vec<String> = services
                .iter()
                .filter(|(_, service)| mounts(service, key))
                .map(|(service, _)| service.clone())
                .collect();
            let mut images: Vec<String> = Vec::new();
            let ordered = service_images
                .iter()
                .filter(|(service, _)| mounting.contains(service))
                .chain(
                    service_images
                        .iter()
                        .filter(|(service, _)| !mounting.contains(service)),
                );
            for (_, candidates) in ordered {
                for image in candidates {
                    if !images.contains(image) {
                        images.push(image.clone());
                    }
                }
            }
            Some(InstanceVolume {
                key: key.clone(),
                name,
                services: mounting,
                images,
                labels: strings(spec.get("labels")),
                driver: spec.get("driver").and_then(Value::as_str).map(String::from),
                driver_opts: strings(spec.get("driver_opts")),
            })
        })
        .collect()
}

/// Whether `service` mounts the named volume `key` (long syntax, or v1's short syntax).
fn mounts(service: &Value, key: &str) -> bool {
    service
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|entry| match entry {
            Value::String(short) => short.split(':').next() == Some(key),
            Value::Object(long) => {
                long.get("type").and_then(Value::as_str) == Some("volume")
                    && long.get("source").and_then(Value::as_str) == Some(key)
            }
            _ => false,
        })
}

fn strings(value: Option<&Value>) -> BTreeMap<String, String> {
    as_map(value)
        .into_iter()
        .map(|(key, value)| {
            let text = match value {
                Value::String(text) => text,
                other => other.to_string(),
            };
            (key, text)
        })
        .collect()
}

/// Who the temporary container belongs to.
pub struct Owner<'a> {
    pub instance: &'a str,
    pub root: &'a Path,
}

/// Removes temporary containers a killed berth left for this instance: they would hold
/// its volumes.
pub fn remove_leftovers(owner: &Owner) -> Result<()> {
    let instance = format!("label={LABEL_INSTANCE}={}", owner.instance);
    let root = format!("label={LABEL_ROOT}={}", owner.root.display());
    let copy = format!("label={LABEL_COPY}=1");
    // Checked: an engine that does not answer must not look like one with nothing left.
    let listed = run(docker(
        &[
            "ps", "-aq", "--filter", &instance, "--filter", &root, "--filter", &copy,
        ],
        "docker ps",
        CallKind::Docker,
    )?)?;
    for id in String::from_utf8_lossy(&listed.stdout).split_whitespace() {
        run(docker(
            &["rm", "-f", "-v", id],
            &format!("docker rm -f -v {id}"),
            CallKind::Docker,
        )?)?;
    }
    Ok(())
}

/// Whether the engine has a volume of that name.
pub fn exists(name: &str) -> Result<bool> {
    inspect("volume", name)
}

/// Streams the content of `volume` (its root directory included) into the tar file `out`.
pub fn export(volume: &InstanceVolume, owner: &Owner, out: &Path) -> Result<()> {
    let container = TemporaryContainer::create(volume, owner)?;
    let file = fs_err::File::create(out)?;
    let source = format!("{}:{MOUNT}", container.id);
    run(docker(
        &["cp", &source, "-"],
        &format!("docker cp {source} -"),
        CallKind::Data,
    )?
    .stdout(file.into_parts().0))?;
    fs_err::File::open(out)?.sync_all()?;
    Ok(())
}

/// Replaces the content of `volume` with the tar file `archive`: the volume is removed and
/// created again with the same labels, driver and options (so Compose takes it as its
/// own), then filled. The instance's containers must be gone.
pub fn import(volume: &InstanceVolume, owner: &Owner, archive: &Path) -> Result<()> {
    let mut labels = volume.labels.clone();
    labels.insert(
        "com.docker.compose.project".to_string(),
        owner.instance.to_string(),
    );
    labels.insert("com.docker.compose.volume".to_string(), volume.key.clone());
    labels.insert(LABEL_INSTANCE.to_string(), owner.instance.to_string());
    labels.insert(LABEL_ROOT.to_string(), owner.root.display().to_string());
    if exists(&volume.name)? {
        run(docker(
            &["volume", "rm", &volume.name],
            &format!("docker volume rm {}", volume.name),
            CallKind::Docker,
        )?)?;
    }
    let mut create: Vec<String> = vec!["volume".into(), "create".into()];
    if let Some(driver) = &volume.driver {
        create.extend(["--driver".into(), driver.clone()]);
    }
    for (key, value) in &volume.driver_opts {
        create.extend(["--opt".into(), format!("{key}={value}")]);
    }
    for (key, value) in &labels {
        create.extend(["--label".into(), format!("{key}={value}")]);
    }
    create.push(volume.name.clone());
    let create: Vec<&str> = create.iter().map(String::as_str).collect();
    run(docker(
        &create,
        &format!("docker volume create {}", volume.name),
        CallKind::Docker,
    )?)?;
    let container = TemporaryContainer::create(volume, owner)?;
    let file = fs_err::File::open(archive)?;
    let target = format!("{}:/", container.id);
    run(docker(
        &["cp", "-a", "-", &target],
        &format!("docker cp -a - {target}"),
        CallKind::Data,
    )?
    .stdin(file.into_parts().0))?;
    Ok(())
}

/// A created, never started container with the volume mounted; removed on drop.
struct TemporaryContainer {
    id: String,
}

impl TemporaryContainer {
    fn create(volume: &InstanceVolume, owner: &Owner) -> Result<Self> {
        let mut image = None;
        for candidate in &volume.images {
            if image_exists(candidate)? {
                image = Some(candidate);
                break;
            }
        }
        let image = image.ok_or_else(|| SnapshotError::NoImage {
            volume: volume.key.clone(),
            images: volume.images.clone(),
        })?;
        let mount = format!("{}:{MOUNT}", volume.name);
        let instance_label = format!("{LABEL_INSTANCE}={}", owner.instance);
        let root_label = format!("{LABEL_ROOT}={}", owner.root.display());
        let copy_label = format!("{LABEL_COPY}=1");
        let created = run(docker(
            &[
                "create",
                "--label",
                &instance_label,
                "--label",
                &root_label,
                "--label",
                &copy_label,
                // Never started: the entrypoint only has to be present for `create`.
                "--entrypoint",
                "/berth-snapshot",
                "--network",
                "none",
                "-v",
                &mount,
                image,
            ],
            &format!("docker create -v {mount} {image}"),
            CallKind::Docker,
        )?)?;
        Ok(TemporaryContainer {
            id: String::from_utf8_lossy(&created.stdout).trim().to_string(),
        })
    }
}

impl Drop for TemporaryContainer {
    fn drop(&mut self) {
        let display = format!("docker rm -f -v {}", self.id);
        if let Ok(call) = docker(&["rm", "-f", "-v", &self.id], &display, CallKind::Docker) {
            let _ = call.run();
        }
    }
}

fn image_exists(image: &str) -> Result<bool> {
    inspect("image", image)
}

/// Whether `docker KIND inspect NAME` finds it. Only a failure that says there is no such
/// object is `false`: any other (the engine gone since berth checked it, say) is an
/// error, so a snapshot never skips a volume, and a restore never recreates one, because
/// the engine did not answer.
fn inspect(kind: &str, name: &str) -> Result<bool> {
    let display = format!("docker {kind} inspect {name}");
    let finished = docker(&[kind, "inspect", name], &display, CallKind::Docker)?
        .stdout(Stdio::null())
        .run()?;
    if finished.status.success() {
        return Ok(true);
    }
    // The docker CLI says `No such volume: NAME` (or `get NAME: no such volume` from a
    // newer engine), `No such image: NAME` likewise.
    let missing = format!("no such {kind}");
    if String::from_utf8_lossy(&finished.stderr)
        .to_lowercase()
        .contains(&missing)
    {
        return Ok(false);
    }
    Err(failed(display, &finished))
}

/// `docker ARGS…` against the engine berth uses (and the Compose tool too), as a call of
/// `kind` named `display` in messages.
fn docker(args: &[&str], display: &str, kind: CallKind) -> Result<Call> {
    let endpoint = Endpoint::from_env()?;
    let mut command = endpoint.command("docker");
    command.args(args);
    Ok(Call::new(command, display, kind))
}

/// Runs `call` to success; a failure names the command and what it printed on stderr.
fn run(call: Call) -> Result<Finished> {
    let display = call.display().to_string();
    let finished = call.run()?;
    if finished.status.success() {
        return Ok(finished);
    }
    Err(failed(display, &finished))
}

/// The error for a `docker` command that exited unsuccessfully.
fn failed(command: String, finished: &Finished) -> SnapshotError {
    SnapshotError::Docker {
        command,
        status: finished.status.to_string(),
        stderr: String::from_utf8_lossy(&finished.stderr).trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_own_volumes_with_their_services_and_images() {
        let document = serde_json::json!({
            "services": {
                "db": {"image": "postgres:15", "volumes": [
                    {"type": "volume", "source": "pgdata", "target": "/var/lib/postgresql/data"},
                    {"type": "bind", "source": "/src", "target": "/src"}
                ]},
                "worker": {"build": {"context": "."}, "volumes": ["cache:/cache:rw"]},
                "web": {"image": "web:1"}
            },
            "volumes": {
                "pgdata": {"name": "feat_pgdata", "labels": {"dev.berth.instance": "feat"}},
                "cache": {"name": "feat_cache", "driver": "local", "driver_opts": {"type": "tmpfs"}},
                "common": {"name": "shop_common", "external": true}
            }
        });
        let volumes = from_document(&document, "feat");
        assert_eq!(volumes.len(), 2);
        assert_eq!(volumes[0].key, "pgdata");
        assert_eq!(volumes[0].name, "feat_pgdata");
        assert_eq!(volumes[0].services, ["db"]);
        assert_eq!(volumes[0].images[0], "postgres:15");
        assert_eq!(volumes[0].labels["dev.berth.instance"], "feat");
        assert_eq!(volumes[1].services, ["worker"]);
        assert_eq!(volumes[1].images[..2], ["feat-worker", "feat_worker"]);
        assert_eq!(volumes[1].driver.as_deref(), Some("local"));
        assert_eq!(volumes[1].driver_opts["type"], "tmpfs");
    }
}
