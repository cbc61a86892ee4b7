//! The machine-wide ledger: every instance and every port it leases, changed only under a lock.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::durable::{FileLock, Published, StateError, publish_json_atomic, read_versioned};

pub const LEDGER_FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot use the berth state directory `{}`", path.display())]
    Home {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Neither `BERTH_HOME`, `XDG_STATE_HOME` nor `HOME` says where the ledger lives.
    #[error(
        "cannot tell where the ledger lives: neither BERTH_HOME, XDG_STATE_HOME nor HOME is set"
    )]
    NoHome,
    #[error(transparent)]
    State(#[from] StateError),
}

impl LedgerError {
    pub fn hint(&self) -> Option<String> {
        match self {
            LedgerError::Home { .. } => Some(
                "set BERTH_HOME to a writable directory, or fix the permissions of this one"
                    .to_string(),
            ),
            LedgerError::NoHome => Some("set BERTH_HOME to a directory".to_string()),
            LedgerError::State(error) => error.hint(),
        }
    }
}

/// The ledger's content.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct LedgerData {
    pub version: u32,
    pub instances: Vec<LedgerEntry>,
}

/// One instance as the machine knows it. The name stays this root's until the entry is
/// removed; the leases stay until `down --release` or removal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LedgerEntry {
    pub name: String,
    pub project: String,
    pub root: PathBuf,
    pub index: u32,
    pub port_offset: u32,
    pub leases: Vec<Lease>,
    pub created_at: String,
    pub started_at: Option<String>,
    /// The branch and commit the root was on at the last `up`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<crate::git::GitHead>,
    /// The project's shared instance (`shared = true` services), not a copy of the stack.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
    /// For a shared instance: the instances that use it. It stops when the last goes down.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// The env files (`[[env_files]]` targets) berth wrote for this instance: the record,
    /// kept here rather than in the work tree, that lets `up` rewrite one and `rm`
    /// delete it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_files: Vec<PathBuf>,
}

/// A host port leased to one port of one service of an instance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Lease {
    pub service: String,
    pub port_name: String,
    pub port: u16,
}

impl LedgerData {
    pub fn find(&self, name: &str) -> Option<&LedgerEntry> {
        self.instances.iter().find(|entry| entry.name == name)
    }

    pub fn find_mut(&mut self, name: &str) -> Option<&mut LedgerEntry> {
        self.instances.iter_mut().find(|entry| entry.name == name)
    }

    /// The instances running from `root` (the project's shared instance, which runs from
    /// the root that first needed it, is not one of them).
    pub fn at_root<'a>(&'a self, root: &'a Path) -> impl Iterator<Item = &'a LedgerEntry> + 'a {
        self.instances
            .iter()
            .filter(move |entry| entry.root == root && !entry.shared)
    }

    /// The indexes the instances of `project` hold (its shared instance holds none).
    pub fn indexes_in_use<'a>(&'a self, project: &'a str) -> impl Iterator<Item = u32> + 'a {
        self.instances
            .iter()
            .filter(move |entry| entry.project == project && !entry.shared)
            .map(|entry| entry.index)
    }

    /// The instance and service leasing `port`, other than the instance `except`.
    pub fn lease_holder(&self, port: u16, except: &str) -> Option<(&LedgerEntry, &Lease)> {
        self.instances
            .iter()
            .filter(|entry| entry.name != except)
            .find_map(|entry| {
                entry
                    .leases
                    .iter()
                    .find(|lease| lease.port == port)
                    .map(|lease| (entry, lease))
            })
    }

    pub fn upsert(&mut self, entry: LedgerEntry) {
        match self.find_mut(&entry.name) {
            Some(existing) => *existing = entry,
            None => self.instances.push(entry),
        }
    }
}

/// The ledger's directory: `ledger.json` and `ledger.lock`.
#[derive(Debug, Clone)]
pub struct Ledger {
    dir: PathBuf,
    lock_timeout: Duration,
}

/// The ledger, locked: read on acquiring, written by `save`, unlocked on drop.
pub struct LockedLedger<'a> {
    ledger: &'a Ledger,
    /// Private: every change goes through a method below, under the lock.
    data: LedgerData,
    _lock: FileLock,
}

impl Ledger {
    pub fn new(dir: PathBuf, lock_timeout: Duration) -> Self {
        Ledger { dir, lock_timeout }
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("ledger.json")
    }

    /// The lock that serialises `up`, `down`, `restart`, `rm`, `gc` and snapshots of the
    /// instance `name`. It lives beside the ledger rather than in the instance's state
    /// directory, which `rm` deletes: an `up` waiting on it never ends up holding the
    /// lock of a deleted file while `rm` forgets the instance.
    pub fn operation_lock(&self, name: &str) -> Result<PathBuf, LedgerError> {
        self.ensure_dir()?;
        let dir = self.dir.join("locks");
        crate::durable::create_private_dir(&dir)?;
        Ok(dir.join(format!("{name}.lock")))
    }

    /// Creates the directory (mode 0700) unless it exists.
    pub fn ensure_dir(&self) -> Result<(), LedgerError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|source| LedgerError::Home {
                path: self.dir.clone(),
                source,
            })
    }

    /// A consistent snapshot without taking the lock (writes are atomic renames).
    pub fn read(&self) -> Result<LedgerData, LedgerError> {
        Ok(read_versioned(&self.path(), LEDGER_FORMAT_VERSION)?.unwrap_or_else(empty))
    }

    /// Takes the lock (waiting up to the deadline) and reads the ledger.
    pub fn lock(&self) -> Result<LockedLedger<'_>, LedgerError> {
        self.ensure_dir()?;
        let lock = FileLock::acquire(&self.dir.join("ledger.lock"), self.lock_timeout)?;
        let data = self.read()?;
        Ok(LockedLedger {
            ledger: self,
            data,
            _lock: lock,
        })
    }
}

impl LockedLedger<'_> {
    /// What the ledger holds, as read under the lock (with the changes made since).
    pub fn data(&self) -> &LedgerData {
        &self.data
    }

    /// Records a new instance, or replaces the entry of that name.
    pub fn upsert(&mut self, entry: LedgerEntry) {
        self.data.upsert(entry);
    }

    /// Forgets the instance `name`: its name, index and leases are free again.
    pub fn forget(&mut self, name: &str) -> Option<LedgerEntry> {
        let position = self.data.instances.iter().position(|e| e.name == name)?;
        Some(self.data.instances.remove(position))
    }

    /// Records that the instance `name` is not running; false when it is unknown.
    pub fn mark_stopped(&mut self, name: &str) -> bool {
        self.entry(name, |entry| entry.started_at = None)
    }

    /// Gives up the leases of the instance `name`.
    pub fn release_leases(&mut self, name: &str) -> bool {
        self.entry(name, |entry| entry.leases.clear())
    }

    /// Records a start of the instance `name`: its port offset, leases and git head, and
    /// when. False when the entry vanished (another command removed it).
    pub fn record_start(
        &mut self,
        name: &str,
        port_offset: u32,
        leases: Vec<Lease>,
        git: Option<crate::git::GitHead>,
        started_at: String,
    ) -> bool {
        self.entry(name, |entry| {
            entry.port_offset = port_offset;
            entry.started_at = Some(started_at);
            entry.git = git;
            entry.leases = leases;
        })
    }

    /// Adds `paths` to the env files the instance `name` owns.
    pub fn claim_env_files(&mut self, name: &str, paths: Vec<PathBuf>) {
        self.entry(name, |entry| {
            for path in paths {
                if !entry.env_files.contains(&path) {
                    entry.env_files.push(path);
                }
            }
        });
    }

    /// Adds `user` to the users of the shared instance `shared`; true when it changed.
    pub fn add_user(&mut self, shared: &str, user: &str) -> bool {
        let mut added = false;
        self.entry(shared, |entry| {
            if !entry.users.iter().any(|other| other == user) {
                entry.users.push(user.to_string());
                added = true;
            }
        });
        added
    }

    /// Takes `leaving` off the users of the shared instance `shared`, with every user the
    /// ledger no longer knows; with none left it is recorded as stopped. Returns how many
    /// users remain and its root, or `None` when there is no such entry.
    pub fn release_user(&mut self, shared: &str, leaving: &str) -> Option<(usize, PathBuf)> {
        let known: Vec<String> = self
            .data
            .instances
            .iter()
            .filter(|entry| entry.name != leaving)
            .map(|entry| entry.name.clone())
            .collect();
        let entry = self.data.find_mut(shared)?;
        entry.users.retain(|user| known.contains(user));
        if entry.users.is_empty() {
            entry.started_at = None;
        }
        Some((entry.users.len(), entry.root.clone()))
    }

    /// Records that the shared instance `name` stopped and has no users.
    pub fn clear_users(&mut self, name: &str) -> bool {
        self.entry(name, |entry| {
            entry.started_at = None;
            entry.users.clear();
        })
    }

    fn entry(&mut self, name: &str, change: impl FnOnce(&mut LedgerEntry)) -> bool {
        match self.data.find_mut(name) {
            Some(entry) => {
                change(entry);
                true
            }
            None => false,
        }
    }

    pub fn save(&self) -> Result<(), LedgerError> {
        Ok(self.publish()?.sync()?)
    }

    /// Writes the ledger for every reader to see, leaving its rename to be made durable
    /// (see [`crate::durable::publish_atomic`]).
    pub fn publish(&self) -> Result<Published, LedgerError> {
        let mut data = self.data.clone();
        data.version = LEDGER_FORMAT_VERSION;
        Ok(publish_json_atomic(&self.ledger.path(), &data)?)
    }
}

fn empty() -> LedgerData {
    LedgerData {
        version: LEDGER_FORMAT_VERSION,
        instances: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, project: &str, index: u32, shared: bool) -> LedgerEntry {
        LedgerEntry {
            name: name.to_string(),
            project: project.to_string(),
            root: PathBuf::from("/work").join(name),
            index,
            port_offset: index * 100,
            leases: Vec::new(),
            created_at: String::new(),
            started_at: None,
            git: None,
            shared,
            users: Vec::new(),
            env_files: Vec::new(),
        }
    }

    #[test]
    fn indexes_in_use_leave_out_other_projects_and_the_shared_instance() {
        let data = LedgerData {
            version: LEDGER_FORMAT_VERSION,
            instances: vec![
                entry("shop", "shop", 0, false),
                entry("shop-shared", "shop", 1, true),
                entry("blog-2", "blog", 2, false),
                entry("shop-3", "shop", 3, false),
            ],
        };
        let in_use: Vec<u32> = data.indexes_in_use("shop").collect();
        assert_eq!(in_use, vec![0, 3]);
    }
}
