//! The real port probe: ledger leases, then binding 127.0.0.1, 0.0.0.0 and [::].

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;

use crate::docker::{Container, Engine};
use crate::ledger::LedgerData;
use crate::ports::{Holder, PortProbe};
use crate::process;

/// Checks ports for the instance `instance`, against what the ledger leases to others and
/// what the machine has bound.
pub struct SystemProbe<'a> {
    pub ledger: &'a LedgerData,
    pub instance: &'a str,
    /// Host ports published by Docker containers (of other instances or of anything
    /// else), with the container's name.
    pub published: &'a HashMap<u16, String>,
}

impl PortProbe for SystemProbe<'_> {
    fn check(&self, port: u16) -> Result<(), Holder> {
        if let Some((entry, lease)) = self.ledger.lease_holder(port, self.instance) {
            return Err(Holder::Instance {
                name: entry.name.clone(),
                service: lease.service.clone(),
            });
        }
        if let Some(container) = self.published.get(&port) {
            return Err(Holder::Container {
                name: container.clone(),
            });
        }
        if is_bindable(port) {
            return Ok(());
        }
        Err(match process::listener_of(port) {
            Some(pid) => Holder::Process {
                pid,
                command: process::command_line(pid).unwrap_or_else(|| "?".to_string()),
            },
            None => Holder::Unknown,
        })
    }
}

/// Host ports published by running containers on the engine, except the containers of
/// `instance` itself. Empty when there is no engine: a project without compose services
/// runs fine without Docker.
pub fn published_ports(engine: Option<&Engine>, instance: &str) -> HashMap<u16, String> {
    let containers = running_containers(engine);
    ports_outside(&containers, instance)
}

fn running_containers(engine: Option<&Engine>) -> Vec<Container> {
    engine
        .and_then(|engine| engine.containers(&[], false).ok())
        .unwrap_or_default()
}

fn ports_outside(containers: &[Container], instance: &str) -> HashMap<u16, String> {
    containers
        .iter()
        .filter(|container| container.label(crate::compose::LABEL_INSTANCE) != Some(instance))
        .flat_map(|container| {
            container
                .ports
                .iter()
                .filter_map(|port| Some((port.public_port?, container.name.clone())))
        })
        .collect()
}

/// [`published_ports`] asked of the engine on a thread of its own, so `up` goes on
/// loading its project while the engine answers (1 to 5 ms), and waited for when the
/// ports are planned.
pub struct PublishedPorts {
    query: Mutex<Option<JoinHandle<Vec<Container>>>>,
    containers: OnceLock<Vec<Container>>,
}

impl PublishedPorts {
    /// Starts asking `engine`; with no engine (or no thread to spare), nothing is
    /// published.
    pub fn query(engine: Option<&Engine>) -> Self {
        let query = engine.and_then(|engine| {
            let engine = engine.clone();
            std::thread::Builder::new()
                .name("published-ports".to_string())
                .spawn(move || running_containers(Some(&engine)))
                .ok()
        });
        PublishedPorts {
            query: Mutex::new(query),
            containers: OnceLock::new(),
        }
    }

    /// The ports, once the engine has answered, except those of `instance`.
    pub fn outside(&self, instance: &str) -> HashMap<u16, String> {
        let containers = self.containers.get_or_init(|| {
            let query = self
                .query
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take();
            query
                .and_then(|query| query.join().ok())
                .unwrap_or_default()
        });
        ports_outside(containers, instance)
    }
}

/// True when `port` can be bound on 127.0.0.1, 0.0.0.0 and [::]. An address family the
/// machine lacks (no IPv6) does not count against the port.
pub fn is_bindable(port: u16) -> bool {
    let addresses = [
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)),
    ];
    addresses
        .iter()
        .all(|address| match TcpListener::bind(address) {
            Ok(_) => true,
            Err(error) => {
                matches!(
                    error.kind(),
                    ErrorKind::AddrNotAvailable | ErrorKind::Unsupported
                ) || error.raw_os_error() == Some(libc::EAFNOSUPPORT)
            }
        })
}

/// The kernel's ephemeral port range, from /proc (Linux default when unreadable).
pub fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut numbers = text
                .split_ascii_whitespace()
                .map(|word| word.parse::<u16>());
            Some((numbers.next()?.ok()?, numbers.next()?.ok()?))
        })
        .unwrap_or((32768, 60999))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_port_is_taken_and_names_this_process() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(!is_bindable(port));
        let ledger = LedgerData::default();
        let holder = SystemProbe {
            ledger: &ledger,
            instance: "x",
            published: &HashMap::new(),
        }
        .check(port)
        .unwrap_err();
        assert!(
            matches!(holder, Holder::Process { pid, .. } if pid == std::process::id()),
            "{holder:?}"
        );
        drop(listener);
        assert!(is_bindable(port));
    }
}
