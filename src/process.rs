//! Process identity through /proc: a PID is trusted only together with its start time.
//!
//! The `procfs` crate parses what berth reads of a process. Files under `/proc/PID` are
//! read straight from their paths (`FromRead::from_file`) rather than through
//! `procfs::process::Process`, which opens the `/proc/PID` directory first: one open and
//! one close more per read, on paths the supervisor walks for every process of every
//! service. Where procfs is slower than a plain read, or means something else, the file
//! is still read by hand, and the function says why.

use std::fs;
use std::path::Path;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use procfs::net::{TcpNetEntries, TcpNetEntry, TcpState};
use procfs::{FromRead, FromReadSI};
use serde::{Deserialize, Serialize};

use crate::pidfd::{OpenError, Pidfd};

/// Whether any process has this PID now (whatever it runs): for files named after the
/// PID of their writer, a writer that is gone left them behind.
pub fn exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// A process as berth records it: the PID and the kernel's start time of that PID
/// (field 22 of `/proc/PID/stat`, in clock ticks since boot). A PID whose current start
/// time differs has been reused by an unrelated process and is never signalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessIdentity {
    pub pid: u32,
    pub start_time: u64,
}

impl ProcessIdentity {
    /// The identity of a live PID, or `None` when no such process exists.
    pub fn of(pid: u32) -> Option<Self> {
        let start_time = start_time(pid)?;
        Some(ProcessIdentity { pid, start_time })
    }

    pub fn current() -> Option<Self> {
        Self::of(std::process::id())
    }

    /// True when the PID is alive and still the same process (not a zombie).
    pub fn is_alive(&self) -> bool {
        match read_stat(self.pid) {
            Some(stat) => stat.start_time == self.start_time && stat.state != 'Z',
            None => false,
        }
    }

    /// Signals the process group led by this process, only if it is still the same process.
    /// Returns false when the identity no longer matches (nothing was signalled).
    pub fn signal_group(&self, signal: Signal) -> bool {
        if !self.is_alive() {
            return false;
        }
        killpg(Pid::from_raw(self.pid as i32), signal).is_ok()
    }

    /// Signals this process alone, only if it is still the same process. Returns false
    /// when the identity no longer matches (nothing was signalled).
    ///
    /// The PID is pinned with a pidfd before its start time is checked, and the signal
    /// goes through the pidfd: a PID reused after the check cannot receive it. Only a
    /// kernel without pidfds falls back to checking and then calling kill(2).
    pub fn signal(&self, signal: Signal) -> bool {
        match Pidfd::open(self.pid) {
            Ok(pidfd) => self.is_alive() && pidfd.send_signal(signal).is_ok(),
            Err(OpenError::Unsupported) => {
                self.is_alive() && kill(Pid::from_raw(self.pid as i32), signal).is_ok()
            }
            // No such process (or a thread's ID): nothing to signal.
            Err(OpenError::Failed(_)) => false,
        }
    }
}

/// The fields of `/proc/PID/stat` berth uses.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    /// `R`, `S`, `D`, `Z` (zombie), …
    pub state: char,
    pub parent: u32,
    pub process_group: u32,
    pub session: u32,
    pub start_time: u64,
}

/// The stat fields of a process, or `None` when it is gone.
pub fn stat(pid: u32) -> Option<Stat> {
    read_stat(pid)
}

fn read_stat(pid: u32) -> Option<Stat> {
    // Any error means the process is gone: the file vanishes with it, and a read that
    // races its exit fails with ESRCH.
    let stat = procfs::process::Stat::from_file(format!("/proc/{pid}/stat")).ok()?;
    Stat::from_procfs(&stat)
}

impl Stat {
    fn from_procfs(stat: &procfs::process::Stat) -> Option<Stat> {
        Some(Stat {
            state: stat.state,
            parent: u32::try_from(stat.ppid).ok()?,
            process_group: u32::try_from(stat.pgrp).ok()?,
            session: u32::try_from(stat.session).ok()?,
            start_time: stat.starttime,
        })
    }
}

/// Whether `pid` is a live process (not gone, not a zombie).
pub fn is_running(pid: u32) -> bool {
    read_stat(pid).is_some_and(|stat| stat.state != 'Z')
}

/// Whether `ancestor` is `pid`'s parent, grandparent, … (followed up to 64 levels).
pub fn descends_from(pid: u32, ancestor: u32) -> bool {
    let mut current = pid;
    for _ in 0..64 {
        let Some(stat) = read_stat(current) else {
            return false;
        };
        if stat.parent == ancestor {
            return true;
        }
        if stat.parent <= 1 {
            return false;
        }
        current = stat.parent;
    }
    false
}

/// The children of this process (of every thread), as the kernel lists them.
pub fn own_children() -> Vec<u32> {
    let Ok(tasks) = procfs::process::Process::myself().and_then(|own| own.tasks()) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| task.children().ok())
        .flatten()
        .collect()
}

fn start_time(pid: u32) -> Option<u64> {
    read_stat(pid).map(|stat| stat.start_time)
}

/// The command line of a process, arguments joined by spaces, or `None` if it is gone.
///
/// Read by hand: procfs's `Process::cmdline` reads the file as UTF-8 and fails on any
/// other byte, which would make a live process whose arguments name a non-UTF-8 path (a
/// supervisor's state directory, say) look gone.
pub fn command_line(pid: u32) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let words: Vec<String> = raw
        .split(|byte| *byte == 0)
        .filter(|word| !word.is_empty())
        .map(|word| String::from_utf8_lossy(word).into_owned())
        .collect();
    if words.is_empty() {
        None
    } else {
        Some(words.join(" "))
    }
}

/// All PIDs currently visible in /proc.
///
/// Listed by hand: procfs's `all_processes` opens every `/proc/PID` directory as it goes
/// (an open and a close per process), about seven times slower than reading the names,
/// on a scan the supervisor makes for every service.
pub fn all_pids() -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// PIDs whose environment contains exactly `KEY=VALUE`. Used to find every process a
/// supervisor started, including grandchildren that left their process group.
pub fn pids_with_env(key: &str, value: &str) -> Vec<u32> {
    let own = std::process::id();
    all_pids()
        .into_iter()
        .filter(|pid| *pid != own && has_env(*pid, key, value))
        .collect()
}

/// The PID of a process listening on the TCP `port` (any address), if /proc tells.
pub fn listener_of(port: u16) -> Option<u32> {
    listener_of_preferring(port, &[])
}

/// Like [`listener_of`], but looks at `likely` PIDs first, which saves scanning every
/// process's file descriptors when the expected owner does hold the port.
pub fn listener_of_preferring(port: u16, likely: &[u32]) -> Option<u32> {
    let inodes = listening_socket_inodes(port).unwrap_or_else(|| {
        ["/proc/net/tcp", "/proc/net/tcp6"]
            .iter()
            .filter_map(|path| tcp_table(path))
            .flat_map(|table| listening_inodes(&table, port))
            .collect()
    });
    if inodes.is_empty() {
        return None;
    }
    let targets: Vec<String> = inodes
        .iter()
        .map(|inode| format!("socket:[{inode}]"))
        .collect();
    // Descriptors are read by hand: procfs's `Process::fd` opens and stats each one
    // besides reading its link (four system calls instead of one), 1.3 to 1.7 times
    // slower over a process that holds thousands of them.
    let holds = |pid: &u32| {
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            return false;
        };
        fds.filter_map(|fd| fd.ok())
            .filter_map(|fd| fs::read_link(fd.path()).ok())
            .any(|link| targets.iter().any(|target| Path::new(target) == link))
    };
    likely
        .iter()
        .copied()
        .find(holds)
        .or_else(|| all_pids().into_iter().find(holds))
}

/// The inodes of the TCP sockets (IPv4 and IPv6) listening on `port`, asked of the
/// kernel's sock_diag netlink interface for listening sockets only: the machine's few
/// listeners, where `/proc/net/tcp{,6}` lists every connection as text (milliseconds on
/// a busy machine). `None` when the kernel cannot be asked (then the tables are read).
pub fn listening_socket_inodes(port: u16) -> Option<Vec<u64>> {
    use netlink_packet_core::{
        NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    };
    use netlink_packet_sock_diag::SockDiagMessage;
    use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP};
    use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
    use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_SOCK_DIAG};

    let mut socket = Socket::new(NETLINK_SOCK_DIAG).ok()?;
    socket.bind_auto().ok()?;
    socket.connect(&SocketAddr::new(0, 0)).ok()?;
    let mut inodes = Vec::new();
    let mut receive = vec![0u8; 32 * 1024];
    for (family, socket_id) in [
        (AF_INET, SocketId::new_v4()),
        (AF_INET6, SocketId::new_v6()),
    ] {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        let request = SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            states: StateFlags::LISTEN,
            socket_id,
        });
        let mut packet = NetlinkMessage::new(header, request.into());
        packet.finalize();
        let mut bytes = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut bytes);
        socket.send(&bytes, 0).ok()?;
        'dump: loop {
            let size = socket.recv(&mut &mut receive[..], 0).ok()?;
            let mut offset = 0;
            while offset < size {
                let message =
                    NetlinkMessage::<SockDiagMessage>::deserialize(&receive[offset..size]).ok()?;
                match message.payload {
                    NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(response))
                        if response.header.socket_id.source_port == port =>
                    {
                        inodes.push(u64::from(response.header.inode));
                    }
                    NetlinkPayload::Done(_) => break 'dump,
                    NetlinkPayload::Error(_) => return None,
                    _ => {}
                }
                let length = message.header.length as usize;
                if length == 0 {
                    break;
                }
                offset += length;
            }
        }
    }
    Some(inodes)
}

/// Whether something listens on the TCP `port` in the network namespace of `pid` (a
/// container's main process, say), read from that namespace's `/proc/PID/net/tcp{,6}`
/// without sending a packet. `None` when neither table can be read.
pub fn listens_in_namespace_of(pid: u32, port: u16) -> Option<bool> {
    let tables: Vec<Vec<TcpNetEntry>> = ["tcp", "tcp6"]
        .iter()
        .filter_map(|table| tcp_table(&format!("/proc/{pid}/net/{table}")))
        .collect();
    if tables.is_empty() {
        return None;
    }
    Some(
        tables
            .iter()
            .any(|table| !listening_inodes(table, port).is_empty()),
    )
}

/// The entries of a TCP socket table (`/proc/net/tcp` or `tcp6`, of this process's
/// network namespace or of another process's), or `None` when it cannot be read.
fn tcp_table(path: &str) -> Option<Vec<TcpNetEntry>> {
    TcpNetEntries::from_file(path, procfs::current_system_info())
        .ok()
        .map(|entries| entries.0)
}

/// Socket inodes in a TCP table that listen on `port`.
fn listening_inodes(table: &[TcpNetEntry], port: u16) -> Vec<u64> {
    table
        .iter()
        .filter(|entry| entry.local_address.port() == port && entry.state == TcpState::Listen)
        .map(|entry| entry.inode)
        .collect()
}

/// Whether the environment of `pid` contains `KEY=VALUE`.
///
/// Read by hand: procfs's `Process::environ` builds a map of every variable (about 1.4
/// times slower, on a scan of every process for every service), and a map keeps one
/// value per name where the kernel's copy can hold a name twice. A process carries the
/// token when any one entry is exactly `KEY=VALUE`.
pub fn has_env(pid: u32, key: &str, value: &str) -> bool {
    let needle = format!("{key}={value}");
    fs::read(format!("/proc/{pid}/environ"))
        .map(|environ| {
            environ
                .split(|byte| *byte == 0)
                .any(|entry| entry == needle.as_bytes())
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_kernel_names_the_listening_sockets_of_a_port() {
        let v4 = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = v4.local_addr().unwrap().port();
        let v6 = std::net::TcpListener::bind(("::1", port)).ok();
        // A connection to it is not a listener.
        let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let asked = listening_socket_inodes(port).expect("sock_diag answers");
        let read: Vec<u64> = ["/proc/net/tcp", "/proc/net/tcp6"]
            .iter()
            .filter_map(|path| tcp_table(path))
            .flat_map(|table| listening_inodes(&table, port))
            .collect();
        assert_eq!(asked.len(), 1 + usize::from(v6.is_some()), "{asked:?}");
        let mut sorted = asked.clone();
        sorted.sort_unstable();
        let mut expected = read;
        expected.sort_unstable();
        assert_eq!(
            sorted, expected,
            "the same sockets as the /proc tables list"
        );
        assert_eq!(listener_of(port), Some(std::process::id()));
        drop((v4, v6));
        assert_eq!(listening_socket_inodes(port), Some(Vec::new()));
    }

    #[test]
    fn reads_listeners_from_a_process_network_namespace() {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let own = std::process::id();
        assert_eq!(listens_in_namespace_of(own, port), Some(true));
        drop(listener);
        assert_eq!(listens_in_namespace_of(own, port), Some(false));
        assert_eq!(listens_in_namespace_of(u32::MAX, port), None);
    }

    use super::*;

    #[test]
    fn own_identity_is_alive_and_a_changed_start_time_is_not() {
        let me = ProcessIdentity::current().expect("own process is in /proc");
        assert!(me.is_alive());
        let reused = ProcessIdentity {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!reused.is_alive());
    }

    /// A child that sleeps until signalled, with its identity.
    fn sleeper() -> (std::process::Child, ProcessIdentity) {
        let child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let identity = ProcessIdentity::of(child.id()).expect("the child is in /proc");
        (child, identity)
    }

    #[test]
    fn signals_a_live_child_through_its_identity() {
        use std::os::unix::process::ExitStatusExt;
        let (mut child, identity) = sleeper();
        assert!(identity.signal(Signal::SIGTERM));
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        assert!(
            !identity.signal(Signal::SIGTERM),
            "a reaped child is signalled no more"
        );
    }

    #[test]
    fn a_start_time_that_does_not_match_signals_nothing() {
        let (mut child, identity) = sleeper();
        let reused = ProcessIdentity {
            start_time: identity.start_time + 1,
            ..identity
        };
        assert!(!reused.signal(Signal::SIGKILL));
        // The child got nothing: it still sleeps until its real identity stops it.
        assert!(child.try_wait().unwrap().is_none());
        assert!(identity.is_alive());
        assert!(identity.signal(Signal::SIGKILL));
        child.wait().unwrap();
    }

    #[test]
    fn parses_stat_fields_after_a_command_with_parentheses() {
        let line = "42 (a) b) S 7 42 40 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 12345 \
                    3133440 394 18446744073709551615 1 2 3 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 \
                    4 5 6 7 8 8 9 0\n";
        let parsed = procfs::process::Stat::from_read(line.as_bytes()).unwrap();
        let stat = Stat::from_procfs(&parsed).unwrap();
        assert_eq!(
            (stat.state, stat.parent, stat.process_group, stat.session),
            ('S', 7, 42, 40)
        );
        assert_eq!(stat.start_time, 12345);
    }

    #[test]
    fn this_test_descends_from_its_parent() {
        let own = std::process::id();
        let parent = stat(own).unwrap().parent;
        assert!(descends_from(own, parent));
        assert!(!descends_from(parent, own));
    }

    #[test]
    fn parses_listening_inodes() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:0FA0 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:0FA0 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 999 1\n";
        let table = TcpNetEntries::from_read(table.as_bytes(), procfs::current_system_info())
            .unwrap()
            .0;
        assert_eq!(listening_inodes(&table, 4000), vec![12345]);
        assert!(listening_inodes(&table, 4001).is_empty());
    }
}
