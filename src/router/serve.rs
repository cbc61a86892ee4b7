//! The router process (`berth __route`, started by `berth router start`): accepts on the
//! loopback listeners it inherited, speaks HTTP/1.1 and HTTP/2 (cleartext, or TLS with
//! ALPN), hands each request to the [`Proxy`], and keeps the hosts file's block in sync
//! while `router hosts --write` asked for it. It stops on SIGTERM or SIGINT.

use std::os::fd::{FromRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::error::RouterError;
use super::follow::Follower;
use super::hosts;
use super::log::Log;
use super::proxy::{Peer, Proxy};
use super::routes::RouterAddress;
use super::state::{HostsSync, RouterFile, RouterPaths};
use super::tls::{self, Authority};
use crate::process::ProcessIdentity;

/// The descriptor the router's lock arrives on; its listeners follow.
pub const LOCK_FD: RawFd = 3;
pub const FIRST_LISTENER_FD: RawFd = 4;

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the router until SIGTERM or SIGINT.
pub fn run(home: &Path, address: RouterAddress, listeners: usize) -> Result<(), RouterError> {
    let paths = RouterPaths::new(home);
    let written = std::fs::metadata(paths.log()).map_or(0, |metadata| metadata.len());
    let log = Arc::new(Log::new(written));
    // SAFETY: `berth router start` passed the lock on LOCK_FD (held for as long as this
    // process lives: it is closed only when the process exits) and `listeners` bound
    // sockets after it; nothing else in this process owns those descriptors.
    let _lock = unsafe { std::fs::File::from_raw_fd(LOCK_FD) };
    let sockets: Vec<std::net::TcpListener> = (0..listeners)
        .map(|index| unsafe {
            std::net::TcpListener::from_raw_fd(FIRST_LISTENER_FD + index as RawFd)
        })
        .collect();
    // `router start` wrote this file already; written again by the router itself, so
    // that a `start` killed before writing it still leaves a router `stop` can find.
    let listen = sockets
        .iter()
        .filter_map(|socket| socket.local_addr().ok())
        .map(|local| local.to_string())
        .collect();
    if let Some(own) = ProcessIdentity::current() {
        RouterFile::new(own, address, listen).write(&paths)?;
    }
    let tls = if address.https {
        Some(TlsAcceptor::from(tls::server_config(
            Authority::load_or_create(&paths)?,
        )?))
    } else {
        None
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| RouterError::Spawn { source })?;
    let proxy = Arc::new(Proxy::new(Follower::new(home), address, Arc::clone(&log)));
    let result = runtime.block_on(async {
        let mut accepting = Vec::new();
        for socket in sockets {
            socket
                .set_nonblocking(true)
                .map_err(|source| RouterError::Spawn { source })?;
            let listener =
                TcpListener::from_std(socket).map_err(|source| RouterError::Spawn { source })?;
            if let Ok(local) = listener.local_addr() {
                log.line(&format!(
                    "listening on {local} ({})",
                    if address.https { "https" } else { "http" }
                ));
            }
            accepting.push(tokio::spawn(accept(
                listener,
                Arc::clone(&proxy),
                tls.clone(),
                Arc::clone(&log),
            )));
        }
        spawn_hosts_sync(home.to_path_buf(), Arc::clone(&log));
        stopped().await;
        log.line("stopping");
        Ok(())
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// Resolves on SIGTERM or SIGINT.
async fn stopped() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut terminate), Ok(mut interrupt)) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        }
        // Without signal handlers the default action (death) stops the router instead.
        _ => std::future::pending().await,
    }
}

async fn accept(listener: TcpListener, proxy: Arc<Proxy>, tls: Option<TlsAcceptor>, log: Arc<Log>) {
    let builder = Arc::new(connection_builder());
    loop {
        let (stream, address) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors, say: wait a moment rather than spin.
                log.line(&format!("accept: {error}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let proxy = Arc::clone(&proxy);
        let builder = Arc::clone(&builder);
        let tls = tls.clone();
        tokio::spawn(async move {
            let peer = Peer {
                address,
                tls: tls.is_some(),
            };
            let service = service_fn(move |request| Arc::clone(&proxy).handle(request, peer));
            match tls {
                Some(acceptor) => {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    else {
                        return;
                    };
                    let _ = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                }
                None => {
                    let _ = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                }
            }
        });
    }
}

/// HTTP/1.1 (keep-alive, upgrades) or HTTP/2, told apart by the connection's first
/// bytes (cleartext prior knowledge, or what ALPN chose); HTTP/2 with extended CONNECT
/// for WebSockets.
fn connection_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    builder
        .http2()
        .timer(TokioTimer::new())
        .enable_connect_protocol();
    builder
}

/// While `router hosts --write` asked for it, rewrites the hosts file's block whenever
/// the ledger changes (inotify on `BERTH_HOME`, where the ledger is replaced by rename).
fn spawn_hosts_sync(home: PathBuf, log: Arc<Log>) {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let spawned = std::thread::Builder::new()
        .name("hosts".to_string())
        .spawn(move || {
            let inotify = match Inotify::init(InitFlags::IN_CLOEXEC) {
                Ok(inotify) => inotify,
                Err(error) => {
                    log.line(&format!(
                        "cannot watch the ledger for the hosts file: {error}"
                    ));
                    return;
                }
            };
            let watched = AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CLOSE_WRITE;
            if let Err(error) = inotify.add_watch(&home, watched) {
                log.line(&format!("cannot watch `{}`: {error}", home.display()));
                return;
            }
            let follower = Follower::new(&home);
            let paths = RouterPaths::new(&home);
            let mut last: Option<Vec<String>> = None;
            loop {
                sync_hosts(&home, &paths, &follower, &mut last, &log);
                let Ok(events) = inotify.read_events() else {
                    return;
                };
                // Each event of a burst is one more reason to look; one look covers all.
                drop(events);
            }
        });
    if let Err(error) = spawned {
        // A router without hosts syncing still routes; the log says what is missing.
        crate::daemon_log!("cannot start the hosts file thread: {error}");
    }
}

fn sync_hosts(
    home: &Path,
    paths: &RouterPaths,
    follower: &Follower,
    last: &mut Option<Vec<String>>,
    log: &Log,
) {
    let Ok(Some(sync)) = HostsSync::read(paths) else {
        *last = None;
        return;
    };
    let Ok(names) = follower.names() else {
        return;
    };
    let lines = hosts::lines(&names);
    if last.as_ref() == Some(&lines) {
        return;
    }
    match hosts::sync(&sync.path, home, Some(&lines)) {
        Ok(_) => *last = Some(lines),
        Err(error) => log.line(&format!("cannot update `{}`: {error}", sync.path.display())),
    }
}
