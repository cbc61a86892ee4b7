//! Shared infrastructure: services with `shared = true` run once per project per
//! machine, in the project's *shared instance* `{project}-shared`, and every instance
//! that needs them uses it.
//!
//! - `up` of an instance brings the shared instance up first (from the root it already
//!   runs from, or this one), records the instance among its users, and runs each shared
//!   service's `per_instance.create` for the instance once (a marker in the shared
//!   instance's state remembers it, and goes with the shared data).
//! - `down` removes the instance from the users; the last one out stops the shared
//!   instance. `rm` also runs `per_instance.drop` first.
//! - One lock per project (`shared-<project>.lock` in the ledger directory) covers each
//!   of these steps, so an instance coming up never sees the shared instance stopped
//!   under it by another going down.

use std::path::{Path, PathBuf};
use std::process::Command;

use indexmap::IndexMap;

use super::Progress;
use crate::cleanup;
use crate::config::Config;
use crate::context::{Context, Selector};
use crate::error::{Error, Result};
use crate::external::{Call, CallKind, ExternalError};
use crate::ledger::LedgerEntry;
use crate::model::Identity;
use crate::state::{FileLock, InstanceFile, InstancePaths};

use super::lifecycle;
use super::up::{Part, UpOptions, start_part};

/// The name of a project's shared instance.
pub fn name_for(project: &str) -> String {
    format!("{project}-shared")
}

/// The shared instance, up and ready.
#[derive(Debug, Clone)]
pub(crate) struct SharedInstance {
    pub name: String,
    pub root: PathBuf,
    /// Its services' host ports, by service and port name.
    pub ports: IndexMap<String, IndexMap<String, u16>>,
}

fn lock(context: &Context, project: &str) -> Result<FileLock> {
    context.ledger.ensure_dir()?;
    let path = context.ledger.dir().join(format!("shared-{project}.lock"));
    Ok(FileLock::acquire(&path, context.lock_timeout)?)
}

/// Finds or records the shared instance in the ledger. It takes no index from the
/// project's instances and is never "the instance of this directory".
pub(crate) fn reserve(context: &Context, config: &Config) -> Result<Identity> {
    let name = name_for(&config.project);
    let mut ledger = context.ledger.lock()?;
    match ledger.data().find(&name) {
        Some(entry) if !entry.shared => Err(taken(entry)),
        Some(entry) => Ok(Identity {
            name,
            index: entry.index,
        }),
        None => {
            ledger.upsert(LedgerEntry {
                name: name.clone(),
                project: config.project.clone(),
                root: config.root.clone(),
                index: 0,
                port_offset: 0,
                leases: Vec::new(),
                created_at: super::up::now(),
                started_at: None,
                git: None,
                shared: true,
                users: Vec::new(),
                env_files: Vec::new(),
            });
            ledger.save()?;
            Ok(Identity { name, index: 0 })
        }
    }
}

fn taken(entry: &LedgerEntry) -> Error {
    Error::usage(
        format!(
            "the shared instance's name `{}` is taken by an instance of `{}`",
            entry.name,
            entry.root.display()
        ),
        Some(format!(
            "`berth rm --name {}` that instance, or rename the project",
            entry.name
        )),
    )
}

/// Brings the project's shared instance up (it runs from the root it already runs from;
/// when there is none, or that root is gone, from the main work tree's copy of `root`
/// in a git repository, else from `root`) and records `user` among its users.
pub(crate) fn ensure(
    context: &Context,
    project: &str,
    root: &Path,
    user: &str,
    timeout: std::time::Duration,
    progress: &dyn Progress,
) -> Result<SharedInstance> {
    let name = name_for(project);
    let _lock = lock(context, project)?;
    let existing = context.ledger.read()?.find(&name).cloned();
    // Its data lives in its root's `.berth/`: in a git repository, the main work tree's
    // copy of the project, which outlives the linked worktrees that come and go.
    // (Only when it holds the same project: its berth.toml may differ or be missing.)
    let same_project = |twin: &PathBuf| {
        crate::config::find_project_root(twin).ok().as_ref() == Some(twin)
            && crate::compose::load_project(twin).is_ok_and(|(config, _)| config.project == project)
    };
    let home_root = || {
        crate::git::main_worktree_twin(root)
            .filter(same_project)
            .unwrap_or_else(|| root.to_path_buf())
    };
    let shared_root = match existing {
        Some(entry) if !entry.shared => return Err(taken(&entry)),
        Some(entry) if entry.root.is_dir() => entry.root,
        Some(entry) => {
            // Its root is gone: stop what it left and start it again, keeping users.
            cleanup::stray_processes(&entry.name, &entry.root, false);
            let mut ledger = context.ledger.lock()?;
            ledger.forget(&name);
            ledger.save()?;
            let home = home_root();
            progress.note(&format!(
                "`{name}` ran from `{}`, which is gone; starting it from `{}`",
                entry.root.display(),
                home.display()
            ));
            home
        }
        None => home_root(),
    };
    let paths = InstancePaths::new(&shared_root, &name);
    let was_running = InstanceFile::read(&paths.instance_json())
        .ok()
        .flatten()
        .is_some_and(|file| file.supervisor_alive());
    let shared_context = Context {
        cwd: shared_root.clone(),
        ledger: context.ledger.clone(),
        selector: Selector::Name(name.clone()),
        lock_timeout: context.lock_timeout,
    };
    let mut options = UpOptions::plain(Vec::new());
    options.timeout = timeout;
    let file = start_part(&shared_context, &options, Part::Shared, progress)?;
    let mut ledger = context.ledger.lock()?;
    if ledger.add_user(&name, user) {
        ledger.save()?;
    }
    drop(ledger);
    let ports: IndexMap<String, IndexMap<String, u16>> = file
        .services
        .iter()
        .map(|(service, record)| (service.clone(), record.ports.clone()))
        .collect();
    if !was_running {
        let listed: Vec<String> = ports
            .iter()
            .map(|(service, ports)| {
                let numbers: Vec<String> = ports.values().map(u16::to_string).collect();
                format!("{service} on 127.0.0.1:{}", numbers.join(","))
            })
            .collect();
        progress.note(&format!(
            "started the shared instance `{name}`: {}",
            listed.join(", ")
        ));
    }
    Ok(SharedInstance {
        name,
        root: shared_root,
        ports,
    })
}

/// Runs each shared service's `per_instance.create` for the instance, unless it already
/// ran for it (against this shared data).
pub(crate) fn create_resources(file: &InstanceFile) -> Result<()> {
    for usage in &file.shared {
        let Some(create) = &usage.create else {
            continue;
        };
        let marker = usage.created_marker(&file.name);
        if marker.exists() {
            continue;
        }
        run_command(file, create).map_err(|details| Error::ServiceFailed {
            message: format!(
                "creating `{}`'s resources on the shared service `{}` failed",
                file.name, usage.service
            ),
            details,
            hint: Some(format!(
                "fix `[services.{}.per_instance] create` in berth.toml, then `berth up` again",
                usage.service
            )),
        })?;
        if let Some(parent) = marker.parent() {
            fs_err::create_dir_all(parent)?;
        }
        crate::state::write_atomic(&marker, b"created\n")?;
    }
    Ok(())
}

/// Runs each shared service's `per_instance.drop` for the instance being removed, where
/// its `create` ran; the shared instance is started for it if it is down. A failure is a
/// warning: the instance is removed all the same.
pub(crate) fn drop_resources(
    context: &Context,
    file: &InstanceFile,
    progress: &dyn Progress,
) -> Result<()> {
    let pending: Vec<_> = file
        .shared
        .iter()
        .filter(|usage| usage.drop.is_some() && usage.created_marker(&file.name).exists())
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    ensure(
        context,
        &file.project,
        &file.root,
        &file.name,
        std::time::Duration::from_secs(120),
        progress,
    )?;
    for usage in pending {
        let Some(drop) = &usage.drop else {
            continue;
        };
        match run_command(file, drop) {
            Ok(()) => {
                let _ = std::fs::remove_file(usage.created_marker(&file.name));
            }
            Err(details) => progress.warning(&format!(
                "dropping `{}`'s resources on the shared service `{}` failed; they are left in place:\n{}",
                file.name,
                usage.service,
                details.join("\n")
            )),
        }
    }
    Ok(())
}

/// Takes the instance off its shared instance's users; the last one out stops it.
pub(crate) fn release(
    context: &Context,
    file: &InstanceFile,
    progress: &dyn Progress,
) -> Result<()> {
    if file.shared.is_empty() {
        return Ok(());
    }
    let name = name_for(&file.project);
    let _lock = lock(context, &file.project)?;
    let mut ledger = context.ledger.lock()?;
    // Users whose instance was removed behind berth's back count no more.
    let Some((remaining, root)) = ledger.release_user(&name, &file.name) else {
        return Ok(());
    };
    ledger.save()?;
    drop(ledger);
    if remaining > 0 || !root.is_dir() {
        return Ok(());
    }
    let paths = InstancePaths::new(&root, &name);
    let _operation =
        FileLock::acquire(&context.ledger.operation_lock(&name)?, context.lock_timeout)?;
    let was_running =
        InstanceFile::read(&paths.instance_json())?.is_some_and(|shared| shared.supervisor_alive());
    lifecycle::stop(&paths)?;
    if was_running {
        progress.note(&format!(
            "stopped the shared instance `{name}`: no instance uses it any more"
        ));
    }
    Ok(())
}

/// The instances (still in the ledger) that use the shared instance `entry`.
pub(crate) fn users(context: &Context, entry: &LedgerEntry) -> Result<Vec<String>> {
    let ledger = context.ledger.read()?;
    Ok(entry
        .users
        .iter()
        .filter(|user| ledger.find(user).is_some())
        .cloned()
        .collect())
}

/// Runs a `per_instance` command in the instance's root with its environment; on
/// failure, what to show: the exit status and the output's last lines.
fn run_command(file: &InstanceFile, argv: &[String]) -> std::result::Result<(), Vec<String>> {
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .current_dir(&file.root)
        .envs(&file.env);
    let output = Call::new(command, argv.join(" "), CallKind::PerInstance)
        .run()
        .map_err(|error| match error {
            ExternalError::Spawn { source, .. } => {
                vec![format!("cannot run `{}`: {source}", argv[0])]
            }
            other => vec![other.to_string()],
        })?;
    if output.status.success() {
        return Ok(());
    }
    let mut details = vec![format!(
        "`{}` exited with {}",
        argv.join(" "),
        output.status
    )];
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    details.extend(
        lines[lines.len().saturating_sub(10)..]
            .iter()
            .map(|line| format!("  | {line}")),
    );
    Err(details)
}
