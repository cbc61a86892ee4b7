//! What can go wrong starting, stopping or asking the router.

use std::path::PathBuf;

use crate::durable::StateError;
use crate::input::InputError;
use crate::ports::Holder;

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("port {port} for the router is taken by {holder}")]
    PortTaken { port: u16, holder: Holder },
    #[error("cannot listen on {address}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
    #[error("a router already runs for this BERTH_HOME on port {port}{}", if *https { " (https)" } else { "" })]
    AlreadyRunning { port: u16, https: bool },
    #[error("cannot start the router process")]
    Spawn { source: std::io::Error },
    #[error("the router (PID {pid}) did not stop within {waited_ms} ms")]
    StopTimeout { pid: u32, waited_ms: u128 },
    #[error("{what}: {detail}")]
    Certificate { what: String, detail: String },
    #[error("cannot write the hosts file `{}`", path.display())]
    HostsFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the hosts file `{}` has a berth block without its end marker", path.display())]
    HostsBlock { path: PathBuf },
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Input(#[from] InputError),
}

impl RouterError {
    pub fn hint(&self) -> Option<String> {
        match self {
            RouterError::PortTaken { .. } => Some(
                "pick another port with `berth router start --port N`, or stop that program"
                    .to_string(),
            ),
            RouterError::AlreadyRunning { .. } => Some(
                "`berth router status` shows it; `berth router stop` first to start it with other settings"
                    .to_string(),
            ),
            RouterError::HostsFile { source, .. }
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                Some("editing the hosts file needs root: `sudo -E berth router hosts --write` (-E keeps BERTH_HOME)".to_string())
            }
            RouterError::HostsBlock { .. } => Some(
                "remove the lines from `# BEGIN berth router` on by hand, then run the command again"
                    .to_string(),
            ),
            RouterError::StopTimeout { pid, .. } => Some(format!(
                "`ps -o pid,stat,cmd -p {pid}` shows what it is doing; `berth router stop` tries again"
            )),
            RouterError::State(error) => error.hint(),
            RouterError::Input(error) => error.hint(),
            _ => None,
        }
    }

    /// Exit code 3 for a port that is taken (SPEC §8), 1 for the rest.
    pub fn is_port_unavailable(&self) -> bool {
        matches!(self, RouterError::PortTaken { .. })
    }
}
