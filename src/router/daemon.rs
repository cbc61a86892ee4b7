//! Starting and stopping the router process of a `BERTH_HOME`.
//!
//! `start` binds the listeners and takes the router's lock itself, so a port that is
//! taken is an error of `berth router start` (exit 3) and no second router can start, then
//! hands both to the detached `berth __route` on fixed descriptors: the lock stays held by
//! the router for as long as it lives, and `router.json` is written before `start`
//! returns, so a `router status` right after sees it.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;

use super::error::RouterError;
use super::routes::RouterAddress;
use super::serve::LOCK_FD;
use super::state::{RouterFile, RouterPaths, running};
use super::tls::Authority;
use crate::durable::{FileLock, create_private_dir};
use crate::ledger::LedgerData;
use crate::ports::Holder;
use crate::process::ProcessIdentity;

/// How long `stop` waits for the router to exit after SIGTERM, then after SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Starts the router of `home` on `address` (port 0: any free port). A router already
/// running with the same settings is left as it is and returned.
pub fn start(
    home: &Path,
    address: RouterAddress,
    ledger: &LedgerData,
) -> Result<RouterFile, RouterError> {
    let paths = RouterPaths::new(home);
    create_private_dir(&paths.dir)?;
    if let Some(file) = running(&paths)? {
        return same_or_conflict(file, address);
    }
    // Two `router start` at once: the second waits for the first to finish starting.
    let Some(lock) = FileLock::try_acquire_within(&paths.lock(), Duration::from_secs(2))? else {
        return match running(&paths)? {
            Some(file) => same_or_conflict(file, address),
            None => Err(RouterError::AlreadyRunning {
                port: address.port,
                https: address.https,
            }),
        };
    };
    if address.https {
        // Made (or checked) here, so a broken CA is this command's error.
        Authority::load_or_create(&paths)?;
    }
    let listeners = bind(address.port, ledger)?;
    let port = listeners[0]
        .local_addr()
        .map_err(|source| RouterError::Listen {
            address: format!("127.0.0.1:{}", address.port),
            source,
        })?
        .port();
    let address = RouterAddress { port, ..address };
    let pid = spawn(&paths, home, address, lock, &listeners)?;
    let file = RouterFile::new(
        ProcessIdentity::of(pid).unwrap_or(ProcessIdentity { pid, start_time: 0 }),
        address,
        listeners
            .iter()
            .filter_map(|listener| listener.local_addr().ok())
            .map(|address| address.to_string())
            .collect(),
    );
    file.write(&paths)?;
    Ok(file)
}

fn same_or_conflict(file: RouterFile, address: RouterAddress) -> Result<RouterFile, RouterError> {
    let same_port = address.port == 0 || address.port == file.port;
    if same_port && address.https == file.https {
        Ok(file)
    } else {
        Err(RouterError::AlreadyRunning {
            port: file.port,
            https: file.https,
        })
    }
}

/// Binds 127.0.0.1:PORT, and [::1]:PORT where the machine has IPv6 (on the port the first
/// got, when asked for any). Never a wildcard address: the router serves this machine only.
fn bind(port: u16, ledger: &LedgerData) -> Result<Vec<TcpListener>, RouterError> {
    let taken = |port: u16| {
        let holder = match ledger.lease_holder(port, "") {
            Some((entry, lease)) => Holder::Instance {
                name: entry.name.clone(),
                service: lease.service.clone(),
            },
            None => match crate::process::listener_of(port) {
                Some(pid) => Holder::Process {
                    pid,
                    command: crate::process::command_line(pid).unwrap_or_else(|| "?".to_string()),
                },
                None => Holder::Unknown,
            },
        };
        RouterError::PortTaken { port, holder }
    };
    if port != 0 && ledger.lease_holder(port, "").is_some() {
        // Leased to an instance, even one that is down now: its next `up` needs it back.
        return Err(taken(port));
    }
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let first = TcpListener::bind(v4).map_err(|source| match source.kind() {
        std::io::ErrorKind::AddrInUse => taken(port),
        _ => RouterError::Listen {
            address: v4.to_string(),
            source,
        },
    })?;
    let port = first
        .local_addr()
        .map_err(|source| RouterError::Listen {
            address: v4.to_string(),
            source,
        })?
        .port();
    let mut listeners = vec![first];
    let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
    match TcpListener::bind(v6) {
        Ok(listener) => listeners.push(listener),
        Err(source) if source.kind() == std::io::ErrorKind::AddrInUse => return Err(taken(port)),
        // No IPv6 on this machine: 127.0.0.1 alone.
        Err(_) => {}
    }
    Ok(listeners)
}

/// Starts `berth __route` detached (a new session, no terminal, output to `router.log`)
/// with the lock on [`LOCK_FD`] and the listeners right after it.
fn spawn(
    paths: &RouterPaths,
    home: &Path,
    address: RouterAddress,
    lock: FileLock,
    listeners: &[TcpListener],
) -> Result<u32, RouterError> {
    let error = |source| RouterError::Spawn { source };
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(paths.log())
        .map_err(error)?;
    let lock = lock.hand_over().map_err(error)?;
    let mut sources: [RawFd; 3] = [-1; 3];
    sources[0] = lock.as_raw_fd();
    for (slot, listener) in sources[1..].iter_mut().zip(listeners) {
        *slot = listener.as_raw_fd();
    }
    let count = 1 + listeners.len().min(2);
    let mut command = Command::new(std::env::current_exe().map_err(error)?);
    command
        .arg("__route")
        .arg("--port")
        .arg(address.port.to_string())
        .arg("--listeners")
        .arg((count - 1).to_string())
        .env(crate::env_vars::BERTH_HOME, home)
        // Not the directory `router start` ran in: a long-lived process there would keep
        // a removed worktree's directory, or its filesystem, busy.
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(error)?)
        .stderr(log);
    if address.https {
        command.arg("--https");
    }
    // SAFETY: between fork and exec the child only makes async-signal-safe system calls
    // (setsid, fcntl, dup2, close_range) on descriptors it already has.
    unsafe {
        command.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Copied out of the way first, so that moving one onto 3, 4 or 5 cannot
            // overwrite another still to be moved.
            let mut high: [RawFd; 3] = [-1; 3];
            for (copy, source) in high.iter_mut().zip(sources).take(count) {
                *copy = libc::fcntl(source, libc::F_DUPFD_CLOEXEC, 64);
                if *copy < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // dup2 leaves the new descriptor open across exec.
            for (target, copy) in (LOCK_FD..).zip(high).take(count) {
                if libc::dup2(copy, target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            crate::supervisor::close_inherited_on_exec((LOCK_FD as usize + count) as u32);
            Ok(())
        });
    }
    let child = command.spawn().map_err(error)?;
    // Not waited for: a daemon; init collects its status once this process exits.
    Ok(child.id())
}

/// Stops the router of `home`: SIGTERM, then SIGKILL after [`STOP_GRACE`]. Returns what
/// ran, or `None` when none did.
pub fn stop(home: &Path) -> Result<Option<RouterFile>, RouterError> {
    let paths = RouterPaths::new(home);
    let Some(file) = running(&paths)? else {
        remove_stale(&paths);
        return Ok(None);
    };
    for signal in [Signal::SIGTERM, Signal::SIGKILL] {
        // The identity (PID and start time) is checked through a pidfd: a PID reused by
        // another process never gets the signal.
        file.pid.signal(signal);
        if let Some(_released) = FileLock::try_acquire_within(&paths.lock(), STOP_GRACE)? {
            let _ = std::fs::remove_file(paths.state());
            return Ok(Some(file));
        }
    }
    Err(RouterError::StopTimeout {
        pid: file.pid.pid,
        waited_ms: (STOP_GRACE * 2).as_millis(),
    })
}

/// Removes a `router.json` that a router which died left behind (under its lock, so a
/// router starting now keeps its own).
fn remove_stale(paths: &RouterPaths) {
    if let Ok(Some(_lock)) = FileLock::try_acquire(&paths.lock()) {
        let _ = std::fs::remove_file(paths.state());
    }
}
