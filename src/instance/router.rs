//! The router's operations: start, stop, status, trust and hosts. Each returns the struct
//! its table and `--json` are drawn from.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Serialize;

use crate::context::Context;
use crate::error::Result;
use crate::router::follow::{Follower, Target};
use crate::router::state::{HostsSync, ROUTER_FORMAT_VERSION, running};
use crate::router::tls::Authority;
use crate::router::{RouterAddress, RouterPaths, daemon, hosts};

/// The router of this `BERTH_HOME`, and what it routes.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RouterStatus {
    pub running: bool,
    pub pid: Option<u32>,
    pub port: Option<u16>,
    pub https: bool,
    /// The addresses it listens on: loopback only.
    pub listen: Vec<String>,
    pub started_at: Option<String>,
    /// The local CA's certificate, once `--https` or `router trust` made it.
    pub ca: Option<PathBuf>,
    /// The hosts file whose berth block the router keeps in sync, if any.
    pub hosts_file: Option<PathBuf>,
    pub routes: Vec<RouteView>,
}

/// One routed name, where it goes and whether it is served now.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RouteView {
    pub host: String,
    /// The URL a browser opens (while the router runs).
    pub url: Option<String>,
    pub instance: String,
    pub service: String,
    /// The service's host port: what the router connects to.
    pub port: u16,
    /// `ready` when the router passes requests on; otherwise the state its page names.
    pub state: String,
}

/// `router start`: the port (0: any free one) and whether to serve HTTPS.
#[derive(Debug, Clone, Copy)]
pub struct StartOptions {
    pub port: u16,
    pub https: bool,
}

pub fn start(context: &Context, options: StartOptions) -> Result<RouterStatus> {
    let ledger = context.ledger.read()?;
    daemon::start(
        context.ledger.dir(),
        RouterAddress {
            port: options.port,
            https: options.https,
        },
        &ledger,
    )?;
    status(context)
}

/// `router stop`: what ran (`running: false` afterwards), or a status that says none ran.
pub fn stop(context: &Context) -> Result<RouterStatus> {
    daemon::stop(context.ledger.dir())?;
    status(context)
}

pub fn status(context: &Context) -> Result<RouterStatus> {
    let home = context.ledger.dir();
    let paths = RouterPaths::new(home);
    let file = running(&paths)?;
    let address = file.as_ref().map(|file| file.address());
    let follower = Follower::new(home);
    let routes = follower
        .routes()?
        .into_iter()
        .map(|route| {
            // `routes` has just looked at every file: those looks are reused.
            let state = match follower.target(&route.host, false) {
                Target::Proxy(_) => "ready".to_string(),
                Target::Unavailable(unavailable) => unavailable.state,
                Target::Unknown { .. } => "unknown".to_string(),
            };
            RouteView {
                url: address.map(|address| address.url(&route.host)),
                host: route.host,
                instance: route.instance,
                service: route.service,
                port: route.port,
                state,
            }
        })
        .collect();
    let ca = paths.ca_certificate();
    Ok(RouterStatus {
        running: file.is_some(),
        pid: file.as_ref().map(|file| file.pid.pid),
        port: file.as_ref().map(|file| file.port),
        https: file.as_ref().is_some_and(|file| file.https),
        listen: file
            .as_ref()
            .map(|file| file.listen.clone())
            .unwrap_or_default(),
        started_at: file.as_ref().map(|file| file.started_at.clone()),
        ca: ca.exists().then_some(ca),
        hosts_file: HostsSync::read(&paths)?.map(|sync| sync.path),
        routes,
    })
}

/// `router trust`: the CA to install, and how, per system and browser.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Trust {
    pub ca: PathBuf,
    pub steps: Vec<TrustStep>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TrustStep {
    /// Who trusts the CA after this step.
    #[serde(rename = "for")]
    pub for_: String,
    pub command: String,
}

/// Makes the CA if there is none yet, and says where to install it. Installs nothing:
/// adding a CA to a trust store is the user's decision, made with their own privileges.
pub fn trust(context: &Context) -> Result<Trust> {
    let paths = RouterPaths::new(context.ledger.dir());
    Authority::load_or_create(&paths)?;
    let ca = paths.ca_certificate();
    let file = ca.display().to_string();
    let quoted =
        shlex::try_quote(&file).map_or_else(|_| file.clone(), |quoted| quoted.into_owned());
    let step = |for_: &str, command: String| TrustStep {
        for_: for_.to_string(),
        command,
    };
    let steps = vec![
        step(
            "Debian and Ubuntu: the system, curl, wget, Python's ssl, Go",
            format!("sudo cp {quoted} /usr/local/share/ca-certificates/berth-router.crt && sudo update-ca-certificates"),
        ),
        step(
            "Fedora, RHEL and Arch: the system",
            format!("sudo trust anchor --store {quoted}"),
        ),
        step(
            "macOS: the system, Safari and Chrome",
            format!("sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain {quoted}"),
        ),
        step(
            "Chrome, Chromium and Edge on Linux (NSS, per user; certutil is in libnss3-tools)",
            format!("certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n 'berth router' -i {quoted}"),
        ),
        step(
            "Firefox (per profile)",
            "Settings → Privacy & Security → Certificates → View Certificates → Authorities → Import".to_string(),
        ),
        step("Node.js", format!("export NODE_EXTRA_CA_CERTS={quoted}")),
        step(
            "one curl call",
            format!("curl --cacert {quoted} https://NAME.localhost:PORT/"),
        ),
    ];
    Ok(Trust { ca, steps })
}

/// `router hosts`: print the lines, write them into the hosts file, or take them out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostsAction {
    Print,
    Write,
    Remove,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct HostsView {
    /// The hosts file edited, when one was.
    pub file: Option<PathBuf>,
    /// Whether the file changed.
    pub changed: bool,
    pub lines: Vec<String>,
}

pub fn hosts(context: &Context, action: HostsAction) -> Result<HostsView> {
    let home = context.ledger.dir();
    let paths = RouterPaths::new(home);
    let follower = Follower::new(home);
    let lines = hosts::lines(&follower.names()?);
    let file = hosts::hosts_file();
    let changed = match action {
        HostsAction::Print => {
            return Ok(HostsView {
                file: None,
                changed: false,
                lines,
            });
        }
        HostsAction::Write => {
            let changed = hosts::sync(&file, home, Some(&lines))?;
            crate::durable::create_private_dir(&paths.dir)?;
            crate::durable::write_json_atomic(
                &paths.hosts_sync(),
                &HostsSync {
                    version: ROUTER_FORMAT_VERSION,
                    path: file.clone(),
                },
            )?;
            changed
        }
        HostsAction::Remove => {
            let changed = hosts::sync(&file, home, None)?;
            match std::fs::remove_file(paths.hosts_sync()) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(error.into()),
            }
            changed
        }
    };
    Ok(HostsView {
        file: Some(file),
        changed,
        lines: if action == HostsAction::Remove {
            Vec::new()
        } else {
            lines
        },
    })
}
