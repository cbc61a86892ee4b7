//! The router's files under `BERTH_HOME/router/`: `router.json` (who runs, on which port),
//! the lock its process holds for as long as it lives, its log, the local CA, and the
//! record of the hosts file it keeps in sync.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::routes::RouterAddress;
use crate::durable::{FileLock, StateError, read_versioned, write_json_atomic};
use crate::process::ProcessIdentity;

pub const ROUTER_FORMAT_VERSION: u32 = 1;

/// Where the router of one `BERTH_HOME` keeps its files.
#[derive(Debug, Clone)]
pub struct RouterPaths {
    pub dir: PathBuf,
}

impl RouterPaths {
    pub fn new(home: &Path) -> Self {
        RouterPaths {
            dir: home.join("router"),
        }
    }

    pub fn state(&self) -> PathBuf {
        self.dir.join("router.json")
    }

    /// Held by the router process for as long as it lives: the kernel drops it on death.
    pub fn lock(&self) -> PathBuf {
        self.dir.join("router.lock")
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("router.log")
    }

    /// The local CA's certificate: what `berth router trust` says to install.
    pub fn ca_certificate(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The CA's private key (mode 0600); it never leaves this directory.
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca-key.pem")
    }

    /// Which hosts file `router hosts --write` keeps in sync, when it does.
    pub fn hosts_sync(&self) -> PathBuf {
        self.dir.join("hosts.json")
    }
}

/// `router.json`: the running router.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RouterFile {
    pub version: u32,
    pub pid: ProcessIdentity,
    pub port: u16,
    pub https: bool,
    /// The addresses it listens on (`127.0.0.1:7780`, `[::1]:7780`).
    pub listen: Vec<String>,
    pub started_at: String,
}

impl RouterFile {
    pub fn new(pid: ProcessIdentity, address: RouterAddress, listen: Vec<String>) -> Self {
        RouterFile {
            version: ROUTER_FORMAT_VERSION,
            pid,
            port: address.port,
            https: address.https,
            listen,
            started_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        }
    }

    pub fn address(&self) -> RouterAddress {
        RouterAddress {
            port: self.port,
            https: self.https,
        }
    }

    pub fn write(&self, paths: &RouterPaths) -> Result<(), StateError> {
        write_json_atomic(&paths.state(), self)
    }
}

/// `hosts.json`: the hosts file whose berth block the router rewrites as instances come
/// and go.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostsSync {
    pub version: u32,
    pub path: PathBuf,
}

impl HostsSync {
    pub fn read(paths: &RouterPaths) -> Result<Option<Self>, StateError> {
        read_versioned(&paths.hosts_sync(), ROUTER_FORMAT_VERSION)
    }
}

/// The router of this `BERTH_HOME` when one runs: its lock is held and `router.json`
/// names it. A file left by a router that died is not a running router.
pub fn running(paths: &RouterPaths) -> Result<Option<RouterFile>, StateError> {
    if !FileLock::is_held(&paths.lock()) {
        return Ok(None);
    }
    read_versioned(&paths.state(), ROUTER_FORMAT_VERSION)
}

/// Where the router of `home` answers, when one runs (errors read as "none runs": a
/// URL is then printed direct, never wrong).
pub fn address(home: &Path) -> Option<RouterAddress> {
    running(&RouterPaths::new(home))
        .ok()
        .flatten()
        .map(|file| file.address())
}
