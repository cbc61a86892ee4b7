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
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::compose::{ComposeError, LABEL_INSTANCE, LABEL_ROOT, as_map};
use crate::docker::Endpoint;
use crate::error::{Error, Result};

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
    let document: Value = serde_saphyr::from_str(&text).map_err(|error| {
        Error::failed(
            format!("cannot read `{}`: {error}", compose_file.display()),
            Some("run `berth up` to write it again".to_string()),
        )
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
    let output = docker(&[
        "ps", "-aq", "--filter", &instance, "--filter", &root, "--filter", &copy,
    ])?
    .output()
    .map_err(spawn_error)?;
    for id in String::from_utf8_lossy(&output.stdout).split_whitespace() {
        run(
            docker(&["rm", "-f", "-v", id])?.stdout(Stdio::null()),
            &format!("docker rm -f -v {id}"),
        )?;
    }
    Ok(())
}

/// Whether the engine has a volume of that name.
pub fn exists(name: &str) -> Result<bool> {
    let output = docker(&["volume", "inspect", name])?
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(spawn_error)?;
    Ok(output.success())
}

/// Streams the content of `volume` (its root directory included) into the tar file `out`.
pub fn export(volume: &InstanceVolume, owner: &Owner, out: &Path) -> Result<()> {
    let container = TemporaryContainer::create(volume, owner)?;
    let file = fs_err::File::create(out)?;
    let source = format!("{}:{MOUNT}", container.id);
    let status = run(
        docker(&["cp", &source, "-"])?.stdout(Stdio::from(file.into_parts().0)),
        &format!("docker cp {source} -"),
    );
    status?;
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
        run(
            &mut docker(&["volume", "rm", &volume.name])?,
            &format!("docker volume rm {}", volume.name),
        )?;
    }
    let mut create = docker(&["volume", "create"])?;
    if let Some(driver) = &volume.driver {
        create.args(["--driver", driver]);
    }
    for (key, value) in &volume.driver_opts {
        create.arg("--opt").arg(format!("{key}={value}"));
    }
    for (key, value) in &labels {
        create.arg("--label").arg(format!("{key}={value}"));
    }
    create.arg(&volume.name);
    run(
        create.stdout(Stdio::null()),
        &format!("docker volume create {}", volume.name),
    )?;
    let container = TemporaryContainer::create(volume, owner)?;
    let file = fs_err::File::open(archive)?;
    let target = format!("{}:/", container.id);
    run(
        docker(&["cp", "-a", "-", &target])?.stdin(Stdio::from(file.into_parts().0)),
        &format!("docker cp -a - {target}"),
    )
}

/// A created, never started container with the volume mounted; removed on drop.
struct TemporaryContainer {
    id: String,
}

impl TemporaryContainer {
    fn create(volume: &InstanceVolume, owner: &Owner) -> Result<Self> {
        let image = volume
            .images
            .iter()
            .find(|image| image_exists(image))
            .ok_or_else(|| {
                Error::failed(
                    format!(
                        "no image to mount volume `{}` with: none of {} is on this machine",
                        volume.key,
                        volume.images.join(", ")
                    ),
                    Some(
                        "run `berth up` once so Compose builds or loads the service's image"
                            .to_string(),
                    ),
                )
            })?;
        let mount = format!("{}:{MOUNT}", volume.name);
        let instance_label = format!("{LABEL_INSTANCE}={}", owner.instance);
        let root_label = format!("{LABEL_ROOT}={}", owner.root.display());
        let copy_label = format!("{LABEL_COPY}=1");
        let output = docker(&[
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
        ])?
        .stdin(Stdio::null())
        .output()
        .map_err(spawn_error)?;
        if !output.status.success() {
            return Err(command_error(
                &format!("docker create -v {mount} {image}"),
                &output.stderr,
            ));
        }
        Ok(TemporaryContainer {
            id: String::from_utf8_lossy(&output.stdout).trim().to_string(),
        })
    }
}

impl Drop for TemporaryContainer {
    fn drop(&mut self) {
        if let Ok(mut command) = docker(&["rm", "-f", "-v", &self.id]) {
            let _ = command.stdout(Stdio::null()).stderr(Stdio::null()).status();
        }
    }
}

fn image_exists(image: &str) -> bool {
    docker(&["image", "inspect", image]).is_ok_and(|mut command| {
        command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    })
}

/// `docker ARGS…` against the engine berth uses (and the Compose tool too).
fn docker(args: &[&str]) -> Result<Command> {
    let endpoint = Endpoint::from_env().map_err(ComposeError::from)?;
    let mut command = endpoint.command("docker");
    command.args(args);
    Ok(command)
}

/// Runs `command`, its stderr captured for the error.
fn run(command: &mut Command, display: &str) -> Result<()> {
    let output = command
        .stderr(Stdio::piped())
        .output()
        .map_err(spawn_error)?;
    if output.status.success() {
        Ok(())
    } else {
        Err(command_error(display, &output.stderr))
    }
}

fn spawn_error(error: std::io::Error) -> Error {
    Error::failed(
        format!("cannot run `docker`: {error}"),
        Some("install the Docker CLI, or put it on PATH".to_string()),
    )
}

fn command_error(display: &str, stderr: &[u8]) -> Error {
    Error::failed(
        format!(
            "`{display}` failed: {}",
            String::from_utf8_lossy(stderr).trim()
        ),
        Some("check the Docker engine with `docker info`".to_string()),
    )
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
