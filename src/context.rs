//! What every command starts from: directories, the ledger, output mode, the instance chosen.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::GlobalArgs;
use crate::config::find_project_root;
use crate::env_vars;
use crate::error::{Error, Result};
use crate::identity::validate_name;
use crate::ledger::{Ledger, LedgerEntry};
use crate::output;
use crate::state::{FileLock, InstanceFile, InstancePaths};
use crate::supervisor;

const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// How the user picked an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Name(String),
    Index(u32),
    /// The only instance of the current project root.
    Only,
}

pub struct Context {
    pub cwd: PathBuf,
    pub ledger: Ledger,
    pub json: bool,
    pub selector: Selector,
    pub lock_timeout: Duration,
}

/// An existing instance: its ledger entry and, once it has been started, its state file.
pub struct Selected {
    pub entry: LedgerEntry,
    pub paths: InstancePaths,
    pub file: Option<InstanceFile>,
}

impl Selected {
    /// The instance's state file, or a usage error when it has never been started.
    pub fn started(&self) -> Result<&InstanceFile> {
        self.file.as_ref().ok_or_else(|| {
            Error::usage(
                format!("`{}` has never been started", self.entry.name),
                Some("run `berth up`".to_string()),
            )
        })
    }

    /// Like [`Selected::started`], and every name in `services` must be one of its services.
    pub fn started_with(&self, services: &[String]) -> Result<&InstanceFile> {
        let file = self.started()?;
        match services
            .iter()
            .find(|name| !file.services.contains_key(*name))
        {
            Some(unknown) => Err(Error::usage(
                format!("`{unknown}` is not a service of `{}`", file.name),
                Some(format!(
                    "services: {}",
                    file.services.keys().cloned().collect::<Vec<_>>().join(", ")
                )),
            )),
            None => Ok(file),
        }
    }
}

impl Context {
    pub fn from_args(global: &GlobalArgs) -> Result<Self> {
        let cwd = match &global.directory {
            Some(directory) => checked_directory(directory)?,
            None => std::env::current_dir()?,
        };
        let selector = match (&global.name, global.instance) {
            (Some(_), Some(_)) => {
                return Err(Error::usage(
                    "use either --name or --instance, not both",
                    None,
                ));
            }
            (Some(name), None) => {
                validate_name(name).map_err(|message| {
                    Error::usage(
                        message,
                        Some("names are lowercase slugs such as `agent-3`".to_string()),
                    )
                })?;
                Selector::Name(name.clone())
            }
            (None, Some(index)) => Selector::Index(index),
            (None, None) => Selector::Only,
        };
        let lock_timeout = std::env::var(env_vars::BERTH_LOCK_TIMEOUT_MS)
            .ok()
            .and_then(|value| value.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_LOCK_TIMEOUT);
        let ledger_dir = ledger_dir()?;
        if std::env::var_os(env_vars::BERTH_HOME)
            .is_some_and(|home| !home.is_empty() && home != ledger_dir.as_os_str())
        {
            // Every process berth starts (the supervisor, services, `exec`, `shell`) runs
            // in another directory: it gets the absolute path, so a `berth` it runs finds
            // the same ledger.
            // SAFETY: berth runs one thread until a command starts, and this runs before
            // any command does.
            unsafe { std::env::set_var(env_vars::BERTH_HOME, &ledger_dir) };
        }
        crate::state::seal::init(&ledger_dir);
        Ok(Context {
            cwd,
            ledger: Ledger::new(ledger_dir, lock_timeout),
            json: global.json,
            selector,
            lock_timeout,
        })
    }

    pub fn project_root(&self) -> Result<PathBuf> {
        Ok(find_project_root(&self.cwd)?)
    }

    /// The instance the command acts on, as the selector says. If its supervisor died
    /// and left processes behind, they are stopped first.
    pub fn select(&self) -> Result<Selected> {
        let ledger = self.ledger.read()?;
        let entry = match &self.selector {
            Selector::Name(name) => ledger.find(name).cloned().ok_or_else(|| {
                Error::usage(
                    format!("no instance named `{name}`"),
                    Some("`berth ls` lists every instance".to_string()),
                )
            })?,
            selector => {
                let root = self.project_root()?;
                let here: Vec<&LedgerEntry> = ledger.at_root(&root).collect();
                let chosen = match selector {
                    Selector::Index(index) => here.iter().find(|entry| entry.index == *index),
                    _ if here.len() == 1 => here.first(),
                    _ => None,
                };
                match (chosen, here.len()) {
                    (Some(entry), _) => (*entry).clone(),
                    (None, 0) => {
                        return Err(Error::usage(
                            format!("no instance of `{}` yet", root.display()),
                            Some("run `berth up` first".to_string()),
                        ));
                    }
                    (None, _) => {
                        let names: Vec<String> = here
                            .iter()
                            .map(|entry| format!("{} (index {})", entry.name, entry.index))
                            .collect();
                        return Err(Error::usage(
                            format!(
                                "`{}` has several instances: {}",
                                root.display(),
                                names.join(", ")
                            ),
                            Some("pick one with --name NAME or --instance N".to_string()),
                        ));
                    }
                }
            }
        };
        let paths = InstancePaths::new(&entry.root, &entry.name);
        let mut file = InstanceFile::read(&paths.instance_json())?;
        if let Some(current) = &mut file {
            self.reap_if_orphaned(&paths, current)?;
        }
        Ok(Selected { entry, paths, file })
    }

    /// Stops processes and containers left by a dead supervisor ("the next berth command
    /// reaps it"), under the instance's operation lock.
    pub fn reap_if_orphaned(&self, paths: &InstancePaths, file: &mut InstanceFile) -> Result<()> {
        if !file.is_orphaned() {
            return Ok(());
        }
        let _lock = FileLock::acquire(&self.ledger.operation_lock(&file.name)?, self.lock_timeout)?;
        reap_orphaned_locked(&self.ledger, paths, file)
    }
}

/// Like [`Context::reap_if_orphaned`], for a caller that already holds the instance's
/// operation lock (taking it again would wait on itself).
pub fn reap_orphaned_locked(
    ledger: &Ledger,
    paths: &InstancePaths,
    file: &mut InstanceFile,
) -> Result<()> {
    if !file.is_orphaned() {
        return Ok(());
    }
    let Some(mut fresh) = InstanceFile::read(&paths.instance_json())? else {
        return Ok(());
    };
    let ignored_pids = fresh.services.values().any(|record| record.pid.is_some())
        && !fresh.pids_trusted()
        && supervisor::instance_cgroup(&fresh).is_none();
    if supervisor::reap_orphans(&mut fresh) {
        if ignored_pids {
            output::note(&format!(
                "warning: `{}` was not written by berth under this BERTH_HOME (its seal does \
                 not match): the process IDs in it were ignored",
                paths.instance_json().display()
            ));
        }
        fresh.write(&paths.instance_json())?;
        let mut locked = ledger.lock()?;
        if let Some(entry) = locked.data.find_mut(&fresh.name) {
            entry.started_at = None;
            locked.save()?;
        }
        drop(locked);
        // Its containers outlived it too: the supervisor would have taken them down.
        let containers = crate::lifecycle::remove_containers(&fresh, false).or_else(|error| {
            // The Compose tool failed (a busy engine, say): remove them by their labels,
            // which needs no Compose tool, and say why.
            output::note(&format!(
                "note: `compose down` failed ({error}); removing the containers by their labels"
            ));
            let engine =
                crate::docker::Engine::from_env().map_err(crate::compose::ComposeError::from)?;
            crate::cleanup::engine_objects(&engine, &fresh.name, &fresh.root, false, false)
                .map(drop)
        });
        output::note(&format!(
            "note: the supervisor of `{}` had died; stopped the processes{} it left",
            fresh.name,
            if fresh.compose.is_some() {
                " and containers"
            } else {
                ""
            }
        ));
        containers?;
        *file = fresh;
    }
    Ok(())
}

/// `-C DIR`: a directory, never a file (whose directory berth would otherwise use).
fn checked_directory(directory: &Path) -> Result<PathBuf> {
    match std::fs::metadata(directory) {
        Ok(meta) if meta.is_dir() => Ok(directory.to_path_buf()),
        Ok(_) => Err(Error::usage(
            format!(
                "`-C` takes a directory, and `{}` is not one",
                directory.display()
            ),
            Some("pass the project's directory, such as `-C path/to/project`".to_string()),
        )),
        Err(error) => Err(Error::usage(
            format!("`-C {}`: {error}", directory.display()),
            Some("pass the project's directory, such as `-C path/to/project`".to_string()),
        )),
    }
}

/// `$BERTH_HOME`, else `$XDG_STATE_HOME/berth`, else `~/.local/state/berth`. A relative
/// `BERTH_HOME` is made absolute once, against the directory berth was started in, so
/// every `-C` directory (and every process berth starts) means the same ledger.
pub fn ledger_dir() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os(env_vars::BERTH_HOME).filter(|value| !value.is_empty()) {
        return Ok(std::path::absolute(PathBuf::from(home))?);
    }
    // The XDG base directory specification says to ignore a relative path.
    if let Some(state) = std::env::var_os("XDG_STATE_HOME")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .filter(|state| state.is_absolute())
    {
        return Ok(state.join("berth"));
    }
    match std::env::var_os("HOME").filter(|value| !value.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/state/berth")),
        None => Err(Error::usage(
            "cannot tell where the ledger lives: neither BERTH_HOME, XDG_STATE_HOME nor HOME is set",
            Some("set BERTH_HOME to a directory".to_string()),
        )),
    }
}
