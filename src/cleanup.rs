//! Removing what an instance left behind, shared by `rm` and `gc`: processes whose
//! supervisor is gone, the instance's objects on the Docker engine (found by its labels,
//! so another instance's are never touched), and its state directory. Each step returns
//! what it removed, or with `dry_run` what it would remove.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde::Serialize;

use crate::cgroup::Cgroup;
use crate::compose::{LABEL_IMAGE_VOLUME, LABEL_INSTANCE, LABEL_ROOT};
use crate::docker::{Engine, EngineError};
use crate::process::{self, ProcessIdentity};
use crate::state::InstancePaths;

type Result<T, E = CleanupError> = std::result::Result<T, E>;

/// What could not be removed, and why. The engine's error is boxed: it is large, and
/// every result carries this enum.
#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    /// `what`: `containers`, `networks` or `volumes`.
    #[error("cannot list the {what} of `{instance}` on the Docker engine")]
    List {
        what: &'static str,
        instance: String,
        source: Box<EngineError>,
    },
    /// `what`: `container`, `network` or `volume`.
    #[error("cannot remove {what} `{name}`")]
    Remove {
        what: &'static str,
        name: String,
        source: Box<EngineError>,
    },
    #[error("cannot remove the state directory `{}`", path.display())]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl CleanupError {
    pub fn hint(&self) -> Option<String> {
        match self {
            CleanupError::List { source, .. } | CleanupError::Remove { source, .. } => {
                Some(source.hint().to_string())
            }
            CleanupError::StateDir { .. } => None,
        }
    }
}

/// One thing removed (or to be removed).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Removal {
    pub instance: String,
    /// `process`, `container`, `network`, `volume`, `state`, `ledger`.
    pub kind: String,
    pub what: String,
}

impl Removal {
    pub fn new(instance: &str, kind: &str, what: impl Into<String>) -> Self {
        Removal {
            instance: instance.to_string(),
            kind: kind.to_string(),
            what: what.into(),
        }
    }
}

/// Stops every process of the instance that no live supervisor owns: a supervisor still
/// running for it (found by its command line, which names the state directory) gets
/// SIGTERM and a grace period, then whatever is left in the instance's cgroup is killed
/// and the cgroup removed. Processes are never chosen by their environment: a user's
/// shell opened with `berth shell` carries the instance's variables too. Every signal
/// checks the PID's start time first.
pub fn stray_processes(name: &str, root: &Path, dry_run: bool) -> Vec<Removal> {
    let dir = InstancePaths::new(root, name).dir;
    let dir_text = dir.display().to_string();
    let supervisors: Vec<(ProcessIdentity, String)> = process::all_pids()
        .into_iter()
        .filter(|pid| *pid != std::process::id())
        .filter_map(|pid| {
            let command = process::command_line(pid)?;
            if !command.ends_with(&format!("__supervise {dir_text}")) {
                return None;
            }
            Some((ProcessIdentity::of(pid)?, command))
        })
        .collect();
    let cgroup = Cgroup::instance(name, &dir).filter(Cgroup::exists);
    let members = || -> Vec<(ProcessIdentity, String)> {
        let Some(cgroup) = &cgroup else {
            return Vec::new();
        };
        cgroup
            .procs()
            .into_iter()
            .filter(|pid| *pid != std::process::id())
            .filter_map(|pid| {
                let command = process::command_line(pid).unwrap_or_default();
                Some((ProcessIdentity::of(pid)?, command))
            })
            .collect()
    };
    let mut removed: Vec<Removal> = supervisors.iter().map(describe(name)).collect();
    for member in members() {
        if !supervisors
            .iter()
            .any(|(identity, _)| *identity == member.0)
        {
            removed.push(describe(name)(&member));
        }
    }
    if dry_run {
        return removed;
    }
    for (identity, _) in &supervisors {
        identity.signal(Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while supervisors.iter().any(|(identity, _)| identity.is_alive()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    for (identity, _) in &supervisors {
        identity.signal(Signal::SIGKILL);
    }
    if let Some(cgroup) = &cgroup {
        cgroup.kill_all();
        cgroup.remove();
    }
    removed
}

fn describe(name: &str) -> impl Fn(&(ProcessIdentity, String)) -> Removal + '_ {
    move |(identity, command)| {
        Removal::new(name, "process", format!("PID {} ({command})", identity.pid))
    }
}

/// The instance's containers and networks, and with `volumes` its own volumes, by the
/// labels berth puts on them: never another instance's, never an external or shared
/// volume (those carry no instance label).
pub fn engine_objects(
    engine: &Engine,
    name: &str,
    root: &Path,
    volumes: bool,
    dry_run: bool,
) -> Result<Vec<Removal>> {
    let root_text = root.display().to_string();
    let labels = [(LABEL_INSTANCE, name), (LABEL_ROOT, root_text.as_str())];
    let mut removed = Vec::new();
    let containers = engine
        .containers(&labels, true)
        .map_err(list_error("containers", name))?;
    for container in containers {
        if !dry_run {
            engine
                .remove_container(&container.id)
                .map_err(remove_error("container", &container.name))?;
        }
        removed.push(Removal::new(name, "container", container.name));
    }
    let networks = engine
        .networks(&labels)
        .map_err(list_error("networks", name))?;
    for network in networks {
        if !dry_run {
            engine
                .remove_network(&network.id)
                .map_err(remove_error("network", &network.name))?;
        }
        removed.push(Removal::new(name, "network", network.name));
    }
    if volumes {
        removed.extend(remove_volumes(engine, name, &labels, dry_run)?);
    }
    Ok(removed)
}

/// Removes the volumes carrying every one of `labels`.
fn remove_volumes(
    engine: &Engine,
    name: &str,
    labels: &[(&str, &str)],
    dry_run: bool,
) -> Result<Vec<Removal>> {
    let mut removed = Vec::new();
    let volumes = engine
        .volumes(labels)
        .map_err(list_error("volumes", name))?;
    for volume in volumes {
        if !dry_run {
            engine
                .remove_volume(&volume.name)
                .map_err(remove_error("volume", &volume.name))?;
        }
        removed.push(Removal::new(name, "volume", volume.name));
    }
    Ok(removed)
}

fn list_error(what: &'static str, instance: &str) -> impl FnOnce(EngineError) -> CleanupError {
    let instance = instance.to_string();
    move |source| CleanupError::List {
        what,
        instance,
        source: Box::new(source),
    }
}

fn remove_error(what: &'static str, name: &str) -> impl FnOnce(EngineError) -> CleanupError {
    let name = name.to_string();
    move |source| CleanupError::Remove {
        what,
        name,
        source: Box::new(source),
    }
}

/// The volumes berth named for paths the instance's images declare (never one the user
/// named), by their labels: for an instance whose work tree is gone.
pub fn image_volumes(
    engine: &Engine,
    name: &str,
    root: &Path,
    dry_run: bool,
) -> Result<Vec<Removal>> {
    let root_text = root.display().to_string();
    let labels = [
        (LABEL_INSTANCE, name),
        (LABEL_ROOT, root_text.as_str()),
        (LABEL_IMAGE_VOLUME, "true"),
    ];
    remove_volumes(engine, name, &labels, dry_run)
}

/// Deletes `.berth/<instance>/` (logs, data, the instance's Compose file, state).
pub fn state_dir(name: &str, root: &Path, dry_run: bool) -> Result<Vec<Removal>> {
    let dir = InstancePaths::new(root, name).dir;
    if !dir.exists() {
        return Ok(Vec::new());
    }
    if !dry_run {
        std::fs::remove_dir_all(&dir).map_err(|source| CleanupError::StateDir {
            path: dir.clone(),
            source,
        })?;
    }
    Ok(vec![Removal::new(name, "state", dir.display().to_string())])
}

/// A one-line summary: `2 containers, 1 network, 5 processes`.
pub fn summary(removed: &[Removal]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for removal in removed {
        match counts.iter_mut().find(|(kind, _)| *kind == removal.kind) {
            Some((_, count)) => *count += 1,
            None => counts.push((removal.kind.clone(), 1)),
        }
    }
    if counts.is_empty() {
        return "nothing".to_string();
    }
    counts
        .iter()
        .map(|(kind, count)| {
            let noun = match (kind.as_str(), *count) {
                ("process", 1) => "process".to_string(),
                ("process", _) => "processes".to_string(),
                ("state", _) => "state directory".to_string(),
                ("ledger", _) => "ledger entry".to_string(),
                (other, 1) => other.to_string(),
                (other, _) => format!("{other}s"),
            };
            format!("{count} {noun}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}
