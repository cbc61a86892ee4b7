//! The per-instance supervisor: the `berth` binary run as a hidden subcommand on an
//! instance's state directory. It owns the service processes and writes their state back.
//!
//! One event loop ([`run`]) runs every process service as a task ([`service`]); the
//! compose services have one thread ([`compose`]); the log pump and the `instance.json`
//! writer ([`shared`]) have one each. What stops it from starting is a
//! [`SupervisorError`].

mod children;
mod compose;
mod control;
mod error;
mod readiness;
mod reap;
mod run;
mod service;
mod shared;
mod unix;

pub use control::{Request, send, wait_for_write};
pub use error::SupervisorError;
pub use reap::{instance_cgroup, reap_orphans, remove_cgroup, stop_processes};
pub use run::run;
pub use unix::{GO, Orders, PUBLISHED, await_go, close_inherited_on_exec, spawn_supervisor};

use std::time::Duration;

/// First wait before restarting a service that exited; doubled on each restart.
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(250);
/// Longest wait between restarts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(8);
/// Restarts allowed within [`BURST_WINDOW`]; one more exit and the service is failed.
pub const BURST_LIMIT: usize = 5;
pub const BURST_WINDOW: Duration = Duration::from_secs(60);
/// How long a service's task waits for the log sink to write what an exited process
/// left in its pipe.
pub const LOG_FLUSH_WAIT: Duration = Duration::from_secs(1);
