//! `berth snapshot save|restore|ls|rm`, and the copy behind `berth up --from`.
//!
//! A copy is consistent because the instance is stopped while it is taken: a running
//! instance is brought down (its volumes and data kept), copied, and brought up again
//! with the services it had active.

use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;

use crate::cli::{SnapshotArgs, SnapshotCommand};
use crate::context::{Context, Selector};
use crate::error::{Error, Result};
use crate::ledger::LedgerEntry;
use crate::lifecycle;
use crate::output::{self, Table};
use crate::snapshot::archive;
use crate::snapshot::store::{self, measure, validate_name, verify};
use crate::snapshot::volumes::{self, Owner};
use crate::snapshot::{DataItem, Manifest, SNAPSHOT_FORMAT_VERSION, Store, VolumeItem};
use crate::state::{FileLock, InstanceFile, InstancePaths, ServiceSpec};

const COPYING: &str = "for a consistent copy";

pub fn run(context: &Context, args: &SnapshotArgs) -> Result<()> {
    match &args.command {
        SnapshotCommand::Save {
            snapshot,
            services,
            force,
        } => save(context, snapshot, services, *force),
        SnapshotCommand::Restore { snapshot, force } => restore(context, snapshot, *force),
        SnapshotCommand::Ls => list(context),
        SnapshotCommand::Rm { snapshot } => remove(context, snapshot),
    }
}

fn save(context: &Context, name: &str, services: &[String], force: bool) -> Result<()> {
    validate_name(name)?;
    let selected = context.select()?;
    selected.started_with(services)?;
    let store = Store::new(context.ledger.dir(), &selected.entry.project);
    let _lock = store.lock(context.lock_timeout)?;
    if !force && store.get(name)?.is_some() {
        return Err(store::exists(name));
    }
    let staging = store.begin(name)?;
    let manifest = with_stopped(context, &selected.entry, COPYING, |file| {
        capture(file, services, name, &staging.dir)
    })?;
    store.commit(staging, &manifest, force)?;
    output::emit(context.json, &manifest, |manifest| {
        format!(
            "saved snapshot `{}` of `{}`: {}, {}\n",
            manifest.name,
            manifest.instance,
            contents(manifest),
            human_bytes(manifest.bytes)
        )
    })
}

fn restore(context: &Context, name: &str, force: bool) -> Result<()> {
    validate_name(name)?;
    let selected = context.select()?;
    let file = selected.started()?;
    let store = Store::new(context.ledger.dir(), &selected.entry.project);
    let _lock = store.lock(context.lock_timeout)?;
    let manifest = store.get(name)?.ok_or_else(|| no_snapshot(name, &store))?;
    if file.supervisor_alive() && !force {
        return Err(Error::usage(
            format!(
                "`{}` is running; restoring would replace the data under its services",
                file.name
            ),
            Some(
                "pass --force to stop it, restore and start it again, or run `berth down` first"
                    .to_string(),
            ),
        ));
    }
    let restored = with_stopped(context, &selected.entry, "to restore its data", |file| {
        apply(&store.path(name), &manifest, file)
    })?;
    let report = Restored {
        snapshot: manifest.name.clone(),
        instance: selected.entry.name.clone(),
        restored,
    };
    output::emit(context.json, &report, |report| {
        format!(
            "restored snapshot `{}` into `{}`: {}\n",
            report.snapshot,
            report.instance,
            report.restored.join(", ")
        )
    })
}

fn list(context: &Context) -> Result<()> {
    let project = project_name(context)?;
    let snapshots = Store::new(context.ledger.dir(), &project).list()?;
    output::emit(context.json, &snapshots, |snapshots| {
        if snapshots.is_empty() {
            return format!("no snapshots of `{project}`\n");
        }
        let mut table = Table::new(vec!["NAME", "FROM", "SIZE", "CREATED", "CONTENTS"]);
        for manifest in snapshots {
            table.row(vec![
                manifest.name.clone(),
                manifest.instance.clone(),
                human_bytes(manifest.bytes),
                manifest.created_at.clone(),
                contents(manifest),
            ]);
        }
        table.render()
    })
}

fn remove(context: &Context, name: &str) -> Result<()> {
    validate_name(name)?;
    let project = project_name(context)?;
    let store = Store::new(context.ledger.dir(), &project);
    let _lock = store.lock(context.lock_timeout)?;
    if !store.remove(name)? {
        return Err(no_snapshot(name, &store));
    }
    if context.json {
        output::print_json(&serde_json::json!({ "removed": name, "project": project }))
    } else {
        output::note(&format!("removed snapshot `{name}` of `{project}`"));
        Ok(())
    }
}

/// What `snapshot restore` reports.
#[derive(Debug, Serialize)]
struct Restored {
    snapshot: String,
    instance: String,
    restored: Vec<String>,
}

/// The project whose snapshots `ls` and `rm` see: the selected instance's, else the
/// project in the current directory (snapshots outlive their instances).
fn project_name(context: &Context) -> Result<String> {
    match context.select() {
        Ok(selected) => Ok(selected.entry.project),
        Err(error) if context.selector != Selector::Only => Err(error),
        Err(_) => {
            let root = context.project_root()?;
            Ok(crate::compose::load_project(&root)?.0.project)
        }
    }
}

fn no_snapshot(name: &str, store: &Store) -> Error {
    Error::usage(
        format!("no snapshot named `{name}` in `{}`", store.dir().display()),
        Some("`berth snapshot ls` lists them".to_string()),
    )
}

/// Runs `work` on the instance while it is stopped: a running instance is stopped first
/// (under its operation lock) and started again afterwards with the services it had
/// active, whether or not `work` succeeded.
pub(super) fn with_stopped<T>(
    context: &Context,
    entry: &LedgerEntry,
    purpose: &str,
    work: impl FnOnce(&InstanceFile) -> Result<T>,
) -> Result<T> {
    let paths = InstancePaths::new(&entry.root, &entry.name);
    let operation = FileLock::acquire(
        &context.ledger.operation_lock(&entry.name)?,
        context.lock_timeout,
    )?;
    let file = InstanceFile::read(&paths.instance_json())?.ok_or_else(|| {
        Error::usage(
            format!("`{}` has never been started", entry.name),
            Some(format!(
                "run `berth up` in `{}` first",
                entry.root.display()
            )),
        )
    })?;
    let running = file.supervisor_alive();
    let file = if running {
        output::note(&format!(
            "note: stopping `{}` {purpose}; it starts again afterwards",
            entry.name
        ));
        lifecycle::stop(&paths)?.unwrap_or(file)
    } else {
        file
    };
    let result = work(&file);
    drop(operation);
    if running {
        let all_active = file.services.values().all(|record| record.active);
        let services = if all_active {
            Vec::new()
        } else {
            file.targets(&[]).map(|(name, _)| name.clone()).collect()
        };
        let restarted = super::up::start_again(context, entry, services);
        if let (Ok(_), Err(error)) = (&result, restarted) {
            return Err(error);
        }
    }
    result
}

/// Copies the data of the (stopped) instance into `dir`: the process services' files
/// under its data directory and its own named volumes; with `services`, only theirs.
pub(super) fn capture(
    file: &InstanceFile,
    services: &[String],
    name: &str,
    dir: &Path,
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
                output::note(&format!(
                    "note: volume `{}` does not exist yet; nothing to save for it",
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
pub(super) fn apply(dir: &Path, manifest: &Manifest, file: &InstanceFile) -> Result<Vec<String>> {
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
        restored.push(describe_data(data));
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
        lifecycle::remove_containers(file, false)?;
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
                None => output::note(&format!(
                    "note: `{}` declares no volume `{}`; skipped it",
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

fn describe_data(data: &DataItem) -> String {
    if data.paths.iter().any(String::is_empty) {
        "data".to_string()
    } else {
        format!("data ({})", data.paths.join(", "))
    }
}

/// A one-line summary of what a snapshot holds.
fn contents(manifest: &Manifest) -> String {
    let mut parts: Vec<String> = manifest.data.iter().map(describe_data).collect();
    if !manifest.volumes.is_empty() {
        let keys: Vec<&str> = manifest
            .volumes
            .iter()
            .map(|item| item.key.as_str())
            .collect();
        let noun = if keys.len() == 1 { "volume" } else { "volumes" };
        parts.push(format!("{noun} {}", keys.join(", ")));
    }
    if parts.is_empty() {
        "nothing".to_string()
    } else {
        parts.join("; ")
    }
}

/// `1.5 MiB`, `812 B`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Where `up --from` copies from.
#[derive(Debug, Clone)]
pub(super) enum Source {
    Instance(Box<LedgerEntry>),
    Snapshot(String),
}

/// Resolves `--from`: `instance:NAME`, `snapshot:NAME`, or a bare name that is one of the
/// two (an error when it is both, or neither).
pub(super) fn resolve_source(context: &Context, project: &str, text: &str) -> Result<Source> {
    let store = Store::new(context.ledger.dir(), project);
    let ledger = context.ledger.read()?;
    let instance = |name: &str| -> Result<Option<Source>> {
        match ledger.find(name) {
            Some(entry) if entry.project == project => {
                Ok(Some(Source::Instance(Box::new(entry.clone()))))
            }
            Some(entry) => Err(Error::usage(
                format!(
                    "instance `{name}` belongs to project `{}`, not `{project}`",
                    entry.project
                ),
                Some("copy only between instances of one project".to_string()),
            )),
            None => Ok(None),
        }
    };
    let snapshot = |name: &str| -> Result<Option<Source>> {
        validate_name(name)?;
        Ok(store
            .get(name)?
            .map(|manifest| Source::Snapshot(manifest.name)))
    };
    let found = if let Some(name) = text.strip_prefix("instance:") {
        instance(name)?
    } else if let Some(name) = text.strip_prefix("snapshot:") {
        snapshot(name)?
    } else {
        match (instance(text)?, snapshot(text).ok().flatten()) {
            (Some(_), Some(_)) => {
                return Err(Error::usage(
                    format!("`{text}` is both an instance and a snapshot of `{project}`"),
                    Some(format!("say `instance:{text}` or `snapshot:{text}`")),
                ));
            }
            (found, None) | (None, found) => found,
        }
    };
    found.ok_or_else(|| {
        Error::usage(
            format!("no instance or snapshot named `{text}` in project `{project}`"),
            Some("`berth ls` lists instances, `berth snapshot ls` snapshots".to_string()),
        )
    })
}

/// Copies `source`'s data into the new instance `file` (stopped, never run): straight
/// from a snapshot, or from another instance through a temporary snapshot (that
/// instance is stopped for the copy if it runs, and started again).
pub(super) fn seed(context: &Context, source: &Source, file: &InstanceFile) -> Result<()> {
    let store = Store::new(context.ledger.dir(), &file.project);
    let restored = match source {
        Source::Snapshot(name) => {
            let _lock = store.lock(context.lock_timeout)?;
            let manifest = store.get(name)?.ok_or_else(|| no_snapshot(name, &store))?;
            apply(&store.path(name), &manifest, file)?
        }
        Source::Instance(entry) => {
            let staging = store.begin(&format!("clone-of-{}", entry.name))?;
            let manifest = with_stopped(context, entry, COPYING, |source| {
                capture(source, &[], staging.name(), &staging.dir)
            })?;
            apply(&staging.dir, &manifest, file)?
        }
    };
    let from = match source {
        Source::Snapshot(name) => format!("snapshot `{name}`"),
        Source::Instance(entry) => format!("instance `{}`", entry.name),
    };
    let what = if restored.is_empty() {
        "nothing to copy".to_string()
    } else {
        restored.join(", ")
    };
    output::note(&format!("note: `{}` starts from {from}: {what}", file.name));
    Ok(())
}

/// Whether the instance already has data of its own: files in its data directory, or
/// named volumes carrying its labels.
pub(super) fn has_data(paths: &InstancePaths, name: &str, root: &Path) -> Result<bool> {
    let files = std::fs::read_dir(paths.data())
        .map(|mut entries| entries.next().is_some())
        .unwrap_or(false);
    if files {
        return Ok(true);
    }
    let Ok(engine) = crate::docker::Engine::from_env() else {
        return Ok(false);
    };
    let root = root.display().to_string();
    let labels = [
        (crate::compose::LABEL_INSTANCE, name),
        (crate::compose::LABEL_ROOT, root.as_str()),
    ];
    Ok(engine
        .volumes(&labels)
        .map(|found| !found.is_empty())
        .unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_bytes(812), "812 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024), "5.0 MiB");
    }
}
