//! What the router knows of the machine's instances, kept current without a restart: the
//! ledger and each instance's `instance.json` are looked at again (a `stat`) when a
//! request comes and the last look is older than 50 ms, and parsed again only when they
//! changed; nothing runs on a timer.
//!
//! Where a name goes (the host port) comes from the ledger's leases, under `BERTH_HOME`;
//! `instance.json`, a view in the work tree, only says whether the service is up and which
//! service the bare instance name reaches, so an edited copy can at most change a page.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::pages::Unavailable;
use super::routes::{self, HostName, Route};
use crate::durable::{FileLock, StateError, read_versioned};
use crate::ledger::{LEDGER_FORMAT_VERSION, LedgerData, LedgerEntry};
use crate::state::{InstanceFile, InstancePaths, InstanceState, ServiceState};

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// To the service's port.
    Proxy(Route),
    /// The name is the service's, but it does not serve now: an error page.
    Unavailable(Unavailable),
    /// No instance has this name: the 404 page.
    Unknown { host: String },
}

/// A file's identity and version, as `stat` tells them: a rename replaces the inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileKey {
    device: u64,
    inode: u64,
    modified_ns: i128,
    length: u64,
}

fn file_key(path: &Path) -> Option<FileKey> {
    let metadata = std::fs::metadata(path).ok()?;
    Some(FileKey {
        device: metadata.dev(),
        inode: metadata.ino(),
        modified_ns: i128::from(metadata.mtime()) * 1_000_000_000
            + i128::from(metadata.mtime_nsec()),
        length: metadata.len(),
    })
}

/// How long one look at a file (or at a supervisor's lock) answers for on the way to a
/// service: the requests of a burst share it. A request that would be refused (an
/// unknown name, a service that is not up, a port that does not answer) looks again at
/// once, so no answer but a successful one ever comes from an old look.
const FRESH: Duration = Duration::from_millis(50);

/// A value read from a file, with when and at what version of the file.
struct Looked<T> {
    at: Instant,
    key: Option<FileKey>,
    value: T,
}

/// The ledger, the instance files and the supervisors' liveness, each looked at again
/// when older than [`FRESH`] (or when asked to), and parsed again only when changed.
pub struct Follower {
    home: PathBuf,
    ledger: Mutex<Option<Looked<Arc<LedgerData>>>>,
    instances: Mutex<HashMap<PathBuf, Looked<Option<Arc<InstanceFile>>>>>,
    alive: Mutex<HashMap<PathBuf, (Instant, bool)>>,
}

/// A poisoned cache is still a cache: every entry is replaced whole.
fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether a look taken at `at` still answers (never when `fresh` is asked for).
fn recent(at: Instant, fresh: bool) -> bool {
    !fresh && at.elapsed() < FRESH
}

impl Follower {
    pub fn new(home: &Path) -> Self {
        Follower {
            home: home.to_path_buf(),
            ledger: Mutex::new(None),
            instances: Mutex::new(HashMap::new()),
            alive: Mutex::new(HashMap::new()),
        }
    }

    /// The ledger as it is now (`fresh`), or as it was at most [`FRESH`] ago.
    pub fn ledger(&self, fresh: bool) -> Result<Arc<LedgerData>, StateError> {
        let mut cached = locked(&self.ledger);
        if let Some(looked) = cached.as_ref()
            && recent(looked.at, fresh)
        {
            return Ok(Arc::clone(&looked.value));
        }
        let path = self.home.join("ledger.json");
        let key = file_key(&path);
        if let Some(looked) = cached.as_mut()
            && looked.key == key
        {
            looked.at = Instant::now();
            return Ok(Arc::clone(&looked.value));
        }
        let data: Arc<LedgerData> = Arc::new(
            read_versioned(&path, LEDGER_FORMAT_VERSION)?.unwrap_or_else(|| LedgerData {
                version: LEDGER_FORMAT_VERSION,
                instances: Vec::new(),
            }),
        );
        *cached = Some(Looked {
            at: Instant::now(),
            key,
            value: Arc::clone(&data),
        });
        Ok(data)
    }

    /// The instance's `instance.json`; `None` when it has none (prepared, never started)
    /// or it cannot be read.
    pub fn instance(&self, entry: &LedgerEntry, fresh: bool) -> Option<Arc<InstanceFile>> {
        let path = InstancePaths::new(&entry.root, &entry.name).instance_json();
        let mut cached = locked(&self.instances);
        if let Some(looked) = cached.get(&path)
            && recent(looked.at, fresh)
        {
            return looked.value.clone();
        }
        let key = file_key(&path);
        if let Some(looked) = cached.get_mut(&path)
            && looked.key == key
        {
            looked.at = Instant::now();
            return looked.value.clone();
        }
        let file = InstanceFile::read(&path).ok().flatten().map(Arc::new);
        cached.insert(
            path,
            Looked {
                at: Instant::now(),
                key,
                value: file.clone(),
            },
        );
        file
    }

    /// Whether the instance's supervisor lives (it holds its lock while it does).
    fn supervisor_alive(&self, file: &InstanceFile, fresh: bool) -> bool {
        let lock = file.paths().supervisor_lock();
        let mut cached = locked(&self.alive);
        if let Some((at, alive)) = cached.get(&lock)
            && recent(*at, fresh)
        {
            return *alive;
        }
        let alive = FileLock::is_held(&lock);
        cached.insert(lock, (Instant::now(), alive));
        alive
    }

    /// Every routed name on the machine now, from the ledger alone: which service a bare
    /// instance name reaches does not change the names.
    pub fn names(&self) -> Result<Vec<String>, StateError> {
        let ledger = self.ledger(true)?;
        Ok(routes::table(&ledger, &|_| None)
            .into_iter()
            .map(|route| route.host)
            .collect())
    }

    /// Every routed name on the machine now.
    pub fn routes(&self) -> Result<Vec<Route>, StateError> {
        let ledger = self.ledger(true)?;
        Ok(routes::table(&ledger, &|entry| {
            self.instance(entry, true)?.router_default.clone()
        }))
    }

    /// Where a request for `authority` (its `Host` or `:authority`) goes: as of at most
    /// [`FRESH`] ago, or as of now with `fresh`.
    pub fn target(&self, authority: &str, fresh: bool) -> Target {
        let (instance, service) = match routes::parse_host(authority) {
            HostName::Other { host } => return Target::Unknown { host },
            HostName::Instance { instance } => (instance, None),
            HostName::Service { instance, service } => (instance, Some(service)),
        };
        let unknown = || Target::Unknown {
            host: match &service {
                Some(service) => routes::service_host(&instance, service),
                None => routes::instance_host(&instance),
            },
        };
        let Ok(ledger) = self.ledger(fresh) else {
            return unknown();
        };
        let Some(entry) = ledger.find(&instance) else {
            return unknown();
        };
        let file = self.instance(entry, fresh);
        let services = routes::routed_services(entry);
        let default = file.as_ref().and_then(|file| file.router_default.clone());
        let Some((service, port)) = routes::pick(&services, service.as_deref(), default.as_deref())
        else {
            return unknown();
        };
        let route = Route {
            host: authority.to_string(),
            instance: entry.name.clone(),
            service,
            port,
        };
        match file {
            None => Target::Unavailable(unavailable(&route, "not started", None, 503)),
            Some(file) => {
                let alive = self.supervisor_alive(&file, fresh);
                judge(route, &file, alive)
            }
        }
    }
}

/// Whether the service serves now, from its instance's state and whether its supervisor
/// lives.
fn judge(route: Route, file: &InstanceFile, alive: bool) -> Target {
    let live = matches!(file.state, InstanceState::Starting | InstanceState::Running);
    if !live {
        return Target::Unavailable(unavailable(&route, file.state.as_str(), None, 503));
    }
    if !alive {
        let detail = "its supervisor is gone; `berth up` starts it again".to_string();
        return Target::Unavailable(unavailable(&route, "crashed", Some(detail), 502));
    }
    let Some(record) = file.services.get(&route.service) else {
        return Target::Unavailable(unavailable(&route, "not started", None, 503));
    };
    match record.state {
        ServiceState::Ready => Target::Proxy(route),
        ServiceState::Failed => {
            let message = record.message.clone();
            Target::Unavailable(unavailable(&route, "failed", message, 502))
        }
        other => Target::Unavailable(unavailable(
            &route,
            other.as_str(),
            record.message.clone(),
            503,
        )),
    }
}

fn unavailable(route: &Route, state: &str, detail: Option<String>, status: u16) -> Unavailable {
    Unavailable {
        instance: route.instance.clone(),
        service: route.service.clone(),
        state: state.to_string(),
        detail,
        status,
    }
}
