//! A cgroup v2 per instance, where the machine lets berth make one: the kernel's own
//! record of every process an instance started, whatever a process does to its title,
//! its environment, its process group or its session. Membership is read from
//! `cgroup.procs` and a forced stop is `cgroup.kill`.
//!
//! The layout under the cgroup v2 mount is `berth/<instance>-<key>/` with one leaf for
//! the supervisor (`supervisor`) and one per service (`svc.<service>`). The key is a
//! digest of the instance's state directory, so that it is found again from the ledger
//! alone (never from a file in the work tree), and two roots with an instance of the same
//! name never share a cgroup.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use procfs::FromRead;
use procfs::process::MountInfos;

/// The directory under the cgroup v2 mount that holds every instance's cgroup.
const BERTH_DIR: &str = "berth";
/// The leaf the supervisor is started in.
const SUPERVISOR_LEAF: &str = "supervisor";
/// Service leaves are `svc.<service>`; the prefix keeps them apart from `supervisor`.
const SERVICE_PREFIX: &str = "svc.";

/// Where the cgroup v2 hierarchy is mounted, and which hierarchy path the mount shows
/// (`/` unless berth runs in a cgroup namespace whose mount starts deeper).
#[derive(Debug)]
struct Mount {
    dir: PathBuf,
    root: String,
}

/// The cgroup v2 mount, read once from `/proc/self/mountinfo`; none at all under
/// `BERTH_NO_CGROUP=1`.
fn mount() -> Option<&'static Mount> {
    static MOUNT: OnceLock<Option<Mount>> = OnceLock::new();
    MOUNT
        .get_or_init(|| {
            if disabled() {
                return None;
            }
            find_mount(MountInfos::from_file("/proc/self/mountinfo").ok()?)
        })
        .as_ref()
}

/// Whether `BERTH_NO_CGROUP=1` asks berth to behave as on a machine without cgroups.
pub fn disabled() -> bool {
    std::env::var_os(crate::env_vars::BERTH_NO_CGROUP).is_some_and(|value| value == "1")
}

/// The first `cgroup2` entry of a mountinfo table.
fn find_mount(mountinfo: MountInfos) -> Option<Mount> {
    let entry = mountinfo
        .into_iter()
        .find(|entry| entry.fs_type == "cgroup2")?;
    Some(Mount {
        root: unescape(&entry.root),
        dir: PathBuf::from(unescape(entry.mount_point.to_str()?)),
    })
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`); procfs leaves
/// the root and the mount point as the kernel wrote them.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'\\'
            && index + 3 < bytes.len()
            && let Ok(value) = u8::from_str_radix(&field[index + 1..index + 4], 8)
        {
            out.push(value);
            index += 4;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One cgroup of an instance (the instance's own, or one of its leaves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    /// The directory on the mount.
    dir: PathBuf,
    /// The path as `/proc/PID/cgroup` shows it (`/berth/shop-1a2b…/svc.api`).
    path: String,
}

impl Cgroup {
    /// The cgroup of the instance `name` whose state directory is `state_dir`, whether or
    /// not it exists yet. `None` when the machine has no cgroup v2 hierarchy.
    pub fn instance(name: &str, state_dir: &Path) -> Option<Cgroup> {
        let mount = mount()?;
        let canonical = fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
        let digest = blake3::hash(canonical.as_os_str().as_encoded_bytes()).to_hex();
        let leaf = format!("{name}-{}", &digest[..12]);
        let dir = mount.dir.join(BERTH_DIR).join(&leaf);
        let root = mount.root.trim_end_matches('/');
        Some(Cgroup {
            dir,
            path: format!("{root}/{BERTH_DIR}/{leaf}"),
        })
    }

    /// The cgroup a process is in now (to move the supervisor back where it came from).
    pub fn of_process(pid: u32) -> Option<Cgroup> {
        let mount = mount()?;
        let path = cgroup_of(pid)?;
        let relative = path.strip_prefix(mount.root.trim_end_matches('/'))?;
        Some(Cgroup {
            dir: mount.dir.join(relative.trim_start_matches('/')),
            path,
        })
    }

    fn child(&self, leaf: &str) -> Cgroup {
        Cgroup {
            dir: self.dir.join(leaf),
            path: format!("{}/{leaf}", self.path),
        }
    }

    /// The leaf of one service.
    pub fn service(&self, service: &str) -> Cgroup {
        self.child(&format!("{SERVICE_PREFIX}{service}"))
    }

    /// The leaf the supervisor lives in.
    pub fn supervisor(&self) -> Cgroup {
        self.child(SUPERVISOR_LEAF)
    }

    /// The path as `/proc/PID/cgroup` shows it.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn exists(&self) -> bool {
        self.dir.join("cgroup.procs").is_file()
    }

    /// Creates the cgroup (and its parents). False when the machine does not allow it
    /// (not root, a read-only hierarchy): berth then tracks processes without it.
    pub fn create(&self) -> bool {
        fs::create_dir_all(&self.dir).is_ok() && self.exists()
    }

    /// Opens the cgroup's directory (`O_PATH`), for a process to be created in it
    /// ([`crate::spawn`]). The descriptor is close-on-exec.
    pub fn open_dir(&self) -> Option<std::os::fd::OwnedFd> {
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(&self.dir)
            .ok()
            .map(std::os::fd::OwnedFd::from)
    }

    /// Opens `cgroup.procs` for writing, so that a child about to run a service can move
    /// itself in (by writing `0`) between fork and exec. The descriptor is close-on-exec.
    pub fn procs_writer(&self) -> Option<fs::File> {
        fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(self.dir.join("cgroup.procs"))
            .ok()
    }

    /// Moves the calling process (all its threads) into this cgroup.
    pub fn enter(&self) -> bool {
        self.procs_writer()
            .is_some_and(|mut file| file.write_all(b"0\n").is_ok())
    }

    /// Whether `pid` is in this cgroup or one below it.
    pub fn contains(&self, pid: u32) -> bool {
        cgroup_of(pid).is_some_and(|path| self.holds(&path))
    }

    /// Whether the cgroup at `path` (as `/proc/PID/cgroup` shows it) is this one or one
    /// below it.
    pub fn holds(&self, path: &str) -> bool {
        path == self.path
            || path
                .strip_prefix(&self.path)
                .is_some_and(|rest| rest.starts_with('/'))
    }

    /// Every process in this cgroup and the ones below it (zombies have left already).
    pub fn procs(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        collect_procs(&self.dir, &mut pids);
        pids
    }

    /// Whether any process is left in it.
    pub fn is_populated(&self) -> bool {
        match fs::read_to_string(self.dir.join("cgroup.events")) {
            Ok(events) => events.lines().any(|line| line == "populated 1"),
            Err(_) => !self.procs().is_empty(),
        }
    }

    /// Sends `signal` to every process in it.
    pub fn signal(&self, signal: Signal) -> usize {
        self.procs()
            .into_iter()
            .filter(|pid| kill(Pid::from_raw(*pid as i32), signal).is_ok())
            .count()
    }

    /// SIGKILLs every process in it and waits (up to 5 s) until it is empty. Uses
    /// `cgroup.kill` (Linux 5.14), which also catches processes forked meanwhile; on
    /// older kernels, kills what `cgroup.procs` lists until nothing is left.
    pub fn kill_all(&self) {
        if !self.exists() {
            return;
        }
        let kill_file = self.dir.join("cgroup.kill");
        let killed = fs::OpenOptions::new()
            .write(true)
            .open(&kill_file)
            .and_then(|mut file| file.write_all(b"1"))
            .is_ok();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.is_populated() && Instant::now() < deadline {
            if !killed {
                self.signal(Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Removes the cgroup and every cgroup below it, when they are empty; what cannot be
    /// removed (a process still inside) stays, and the next removal tries again.
    pub fn remove(&self) {
        remove_tree(&self.dir);
    }
}

fn collect_procs(dir: &Path, pids: &mut Vec<u32>) {
    if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
        pids.extend(
            text.lines()
                .filter_map(|line| line.trim().parse::<u32>().ok()),
        );
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                collect_procs(&entry.path(), pids);
            }
        }
    }
}

fn remove_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                remove_tree(&entry.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

/// The cgroup v2 path of a process (`0::/…` in `/proc/PID/cgroup`). Read straight from
/// the path, as `crate::process` reads a process's files, since `contains` asks this
/// for every process it is given.
pub fn cgroup_of(pid: u32) -> Option<String> {
    let groups = procfs::ProcessCGroups::from_file(format!("/proc/{pid}/cgroup")).ok()?;
    groups
        .0
        .into_iter()
        .find(|group| group.hierarchy == 0)
        .map(|group| group.pathname)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount_among_v1_ones() {
        let table = "\
30 25 0:26 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
40 30 0:35 / /sys/fs/cgroup/uni\\040fied rw,nosuid shared:9 - cgroup2 cgroup2 rw
";
        let parse = |table: &str| MountInfos::from_read(table.as_bytes()).unwrap();
        let mount = find_mount(parse(table)).unwrap();
        assert_eq!(mount.dir, PathBuf::from("/sys/fs/cgroup/uni fied"));
        assert_eq!(mount.root, "/");
        assert!(find_mount(parse("31 30 0:27 / /x rw - cgroup cgroup rw,cpu\n")).is_none());
    }

    #[test]
    fn unescapes_mountinfo_paths() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
    }

    #[test]
    fn leaves_are_named_under_the_instance() {
        let Some(instance) = Cgroup::instance("shop-1", Path::new("/tmp/x/.berth/shop-1")) else {
            return;
        };
        assert!(instance.path().contains("/berth/shop-1-"));
        assert!(instance.service("api").path().ends_with("/svc.api"));
        assert!(instance.supervisor().path().ends_with("/supervisor"));
        let other = Cgroup::instance("shop-1", Path::new("/tmp/y/.berth/shop-1")).unwrap();
        assert_ne!(instance, other, "two roots never share a cgroup");
    }
}
