//! What every command starts from: the directory, the ledger, and how the instance is chosen.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{GlobalArgs, MAX_OFFSET};
use crate::config::find_project_root;
use crate::env_vars;
use crate::error::{Error, Result};
use crate::identity::validate_name;
use crate::ledger::{Ledger, LedgerError};

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
    pub selector: Selector,
    pub lock_timeout: Duration,
}

impl Context {
    pub fn from_args(global: &GlobalArgs) -> Result<Self> {
        let cwd = match &global.directory {
            Some(directory) => checked_directory(directory)?,
            None => std::env::current_dir()?,
        };
        if global.name.is_some() && global.instance.is_some() {
            return Err(Error::usage(
                "use either --name or --instance, not both",
                None,
            ));
        }
        let selector = selector(global.name.as_deref(), global.instance)?;
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
            selector,
            lock_timeout,
        })
    }

    /// The context of one call of a long-running caller (an MCP tool): `directory` (made
    /// canonical; one that does not exist is a usage error, as for `-C`) and the instance
    /// picked by `name` or `instance`, with this context's ledger and lock timeout.
    pub fn at(&self, directory: &Path, name: Option<&str>, instance: Option<u32>) -> Result<Self> {
        if name.is_some() && instance.is_some() {
            return Err(Error::usage(
                "use either `name` or `instance`, not both",
                None,
            ));
        }
        if let Some(index) = instance.filter(|index| *index > MAX_OFFSET) {
            return Err(Error::usage(
                format!("`instance` {index} is past {MAX_OFFSET}"),
                Some("an index is also a port offset (N × stride), so it is small".to_string()),
            ));
        }
        let hint = || Some("pass the project's directory, as an absolute path".to_string());
        let cwd = std::fs::canonicalize(directory).map_err(|error| {
            Error::usage(format!("`path` `{}`: {error}", directory.display()), hint())
        })?;
        if !cwd.is_dir() {
            return Err(Error::usage(
                format!("`path` `{}` is not a directory", directory.display()),
                hint(),
            ));
        }
        Ok(Context {
            cwd,
            ledger: self.ledger.clone(),
            selector: selector(name, instance)?,
            lock_timeout: self.lock_timeout,
        })
    }

    /// The context of the instance `name` at `root`, with this context's ledger and lock
    /// timeout: what one instance of an `--all` operation runs in.
    pub fn for_instance(&self, name: &str, root: &Path) -> Self {
        Context {
            cwd: root.to_path_buf(),
            ledger: self.ledger.clone(),
            selector: Selector::Name(name.to_string()),
            lock_timeout: self.lock_timeout,
        }
    }

    pub fn project_root(&self) -> Result<PathBuf> {
        Ok(find_project_root(&self.cwd)?)
    }
}

/// `--name NAME` (validated) or `--instance N`; neither: the only instance of the root.
fn selector(name: Option<&str>, instance: Option<u32>) -> Result<Selector> {
    Ok(match (name, instance) {
        (Some(name), _) => {
            validate_name(name).map_err(|message| {
                Error::usage(
                    message,
                    Some("names are lowercase slugs such as `agent-3`".to_string()),
                )
            })?;
            Selector::Name(name.to_string())
        }
        (None, Some(index)) => Selector::Index(index),
        (None, None) => Selector::Only,
    })
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
pub fn ledger_dir() -> Result<PathBuf, LedgerError> {
    if let Some(home) = std::env::var_os(env_vars::BERTH_HOME).filter(|value| !value.is_empty()) {
        let home = PathBuf::from(home);
        return std::path::absolute(&home)
            .map_err(|source| LedgerError::Home { path: home, source });
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
        None => Err(LedgerError::NoHome),
    }
}
