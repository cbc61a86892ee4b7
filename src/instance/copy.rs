//! The copy engine under snapshots and `up --from`: an instance's data (process
//! services' files under its data directory, its own named volumes) captured into a
//! directory with a manifest, and applied back to a stopped instance.

use std::path::Path;
use std::time::SystemTime;

use super::Progress;
use crate::error::{Error, Result};
use crate::snapshot::archive;
use crate::snapshot::store::{measure, verify};
use crate::snapshot::volumes::{self, Owner};
use crate::snapshot::{DataItem, Manifest, SNAPSHOT_FORMAT_VERSION, VolumeItem};
use crate::state::{InstanceFile, ServiceSpec};

/// Copies the data of the (stopped) instance into `dir`: the process services' files
/// under its data directory and its own named volumes; with `services`, only theirs.
pub(super) fn capture(
    file: &InstanceFile,
    services: &[String],
    name: &str,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<Manifest> {
    let paths = file.paths();
    let data_dir = paths.data();
    let wanted = |service: &String| services.is_empty() || services.contains(service);
    let process_services: Vec<String> = file
        .services
        .iter()
        .filter(|(service, record)| !record.is_compose() && wanted(service))
        .map(|(service, _)| service.clone())
        .collect();
    let data_paths = if services.is_empty() {
        vec![String::new()]
    } else {
        let mut found: Vec<String> = Vec::new();
        for service in &process_services {
            let owned = data_paths_of(file, service, &data_dir);
            if owned.is_empty() {
                return Err(Error::usage(
                    format!(
                        "service `{service}` keeps no files under the instance's data directory"
                    ),
                    Some(
                        "process data is what a service's command, setup, cwd or env names under `{{ instance.data }}`"
                            .to_string(),
                    ),
                ));
            }
            for path in owned {
                if !found.contains(&path) {
                    found.push(path);
                }
            }
        }
        found
    };
    let data = if data_paths.is_empty() || !data_dir.is_dir() {
        None
    } else {
        let tar = dir.join("data.tar");
        archive::pack(&data_dir, &data_paths, &tar)?;
        let (bytes, blake3) = measure(&tar)?;
        Some(DataItem {
            paths: data_paths,
            services: process_services,
            file: "data.tar".to_string(),
            bytes,
            blake3,
        })
    };

    let mut volume_items = Vec::new();
    if let Some(backend) = &file.compose {
        // Without the engine every volume would look absent: fail instead (exit 5).
        crate::compose::engine()?;
        let owner = Owner {
            instance: &file.name,
            root: &file.root,
        };
        let own = volumes::instance_volumes(&backend.file, &file.name)?;
        volumes::remove_leftovers(&owner)?;
        for compose_service in services.iter().filter(|service| {
            file.services
                .get(*service)
                .is_some_and(|record| record.is_compose())
        }) {
            if !own
                .iter()
                .any(|volume| volume.services.contains(compose_service))
            {
                return Err(Error::usage(
                    format!("service `{compose_service}` mounts no volume of its own"),
                    Some("only the instance's named volumes are saved, not bind mounts or shared volumes".to_string()),
                ));
            }
        }
        fs_err::create_dir_all(dir.join("volumes"))?;
        for volume in own.iter().filter(|volume| {
            services.is_empty()
                || volume
                    .services
                    .iter()
                    .any(|service| services.contains(service))
        }) {
            if !volumes::exists(&volume.name)? {
                progress.note(&format!(
                    "volume `{}` does not exist yet; nothing to save for it",
                    volume.name
                ));
                continue;
            }
            let relative = format!("volumes/{}.tar", volume.key);
            let tar = dir.join(&relative);
            volumes::export(volume, &owner, &tar)?;
            let (bytes, blake3) = measure(&tar)?;
            volume_items.push(VolumeItem {
                key: volume.key.clone(),
                services: volume.services.clone(),
                file: relative,
                bytes,
                blake3,
            });
        }
    }
    let bytes = data.as_ref().map_or(0, |data| data.bytes)
        + volume_items.iter().map(|item| item.bytes).sum::<u64>();
    Ok(Manifest {
        version: SNAPSHOT_FORMAT_VERSION,
        name: name.to_string(),
        project: file.project.clone(),
        instance: file.name.clone(),
        root: file.root.clone(),
        created_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        services: services.to_vec(),
        data,
        volumes: volume_items,
        bytes,
    })
}

/// Replaces the (stopped) instance's data with what the snapshot in `dir` holds; returns
/// what it restored. Services whose data came back count their one-time setup as done.
pub(super) fn apply(
    dir: &Path,
    manifest: &Manifest,
    file: &InstanceFile,
    progress: &dyn Progress,
) -> Result<Vec<String>> {
    verify(dir, manifest)?;
    let paths = file.paths();
    let mut restored = Vec::new();
    if let Some(data) = &manifest.data {
        archive::unpack(&dir.join(&data.file), &paths.data(), &data.paths)?;
        for service in &data.services {
            let has_setup = file
                .services
                .get(service)
                .and_then(|record| record.process())
                .is_some_and(|spec| spec.setup.is_some());
            if has_setup {
                let marker = paths.setup_marker(service);
                if let Some(parent) = marker.parent() {
                    fs_err::create_dir_all(parent)?;
                }
                crate::state::write_atomic(&marker, b"done\n")?;
            }
        }
        restored.push(data.describe());
    }
    if !manifest.volumes.is_empty() {
        let Some(backend) = &file.compose else {
            return Err(Error::usage(
                format!(
                    "snapshot `{}` holds volumes, but `{}` has no compose services",
                    manifest.name, file.name
                ),
                None,
            ));
        };
        crate::compose::engine()?;
        // The volumes can only be replaced once no container uses them.
        super::lifecycle::remove_containers(file, false)?;
        let own = volumes::instance_volumes(&backend.file, &file.name)?;
        let owner = Owner {
            instance: &file.name,
            root: &file.root,
        };
        volumes::remove_leftovers(&owner)?;
        for item in &manifest.volumes {
            match own.iter().find(|volume| volume.key == item.key) {
                Some(volume) => {
                    volumes::import(volume, &owner, &dir.join(&item.file))?;
                    restored.push(format!("volume {}", item.key));
                }
                None => progress.note(&format!(
                    "`{}` declares no volume `{}`; skipped it",
                    file.name, item.key
                )),
            }
        }
    }
    Ok(restored)
}

/// The paths under the data directory a process service names (in its command, setup,
/// cwd, env or readiness command): the first component after the data directory, or
/// `""` when it names the directory itself.
fn data_paths_of(file: &InstanceFile, service: &str, data_dir: &Path) -> Vec<String> {
    let Some(ServiceSpec::Process(spec)) = file.services.get(service).map(|record| &record.spec)
    else {
        return Vec::new();
    };
    let data = data_dir.display().to_string();
    let mut texts: Vec<&str> = spec.argv.iter().map(String::as_str).collect();
    texts.extend(spec.setup.iter().flatten().map(String::as_str));
    // berth's own variables (BERTH_DATA names the data directory for every process)
    // say nothing about what a service keeps there.
    texts.extend(
        spec.env
            .iter()
            .filter(|(key, _)| !file.env.contains_key(*key))
            .map(|(_, value)| value.as_str()),
    );
    let cwd = spec.cwd.display().to_string();
    texts.push(&cwd);
    if let crate::state::ReadyCheck::Exec { argv } = &spec.ready {
        texts.extend(argv.iter().map(String::as_str));
    }
    let mut found: Vec<String> = Vec::new();
    for text in texts {
        let mut rest = text;
        while let Some(position) = rest.find(&data) {
            let after = &rest[position + data.len()..];
            let path = match after.strip_prefix('/') {
                Some(tail) => tail
                    .split(|c: char| c == '/' || !is_path_char(c))
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                None => String::new(),
            };
            if !found.contains(&path) {
                found.push(path);
            }
            rest = after;
        }
    }
    if found.iter().any(String::is_empty) {
        return vec![String::new()];
    }
    found
}

fn is_path_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '"' | '\'' | ':' | ';' | ',' | '=' | '?' | '&' | '`')
}
