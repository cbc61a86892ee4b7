//! The operations: one function per thing berth does to instances (up, down, restart,
//! status, list, snapshots, …). Each takes a [`Context`](crate::context::Context), an
//! options struct where it needs one and a [`Progress`] sink; none prints; each returns
//! the serde structs that tables and `--json` render. Commands and long-running callers
//! (the MCP server, a router) call them alike.

pub mod address;
mod copy;
mod lease;
pub mod lifecycle;
mod progress;
mod reserve;
mod select;
mod shared;
mod source;
mod views;

pub mod db;
pub mod doctor;
pub mod down;
pub mod env;
pub mod exec;
pub mod gc;
pub mod init;
pub mod list;
pub mod logs;
pub mod restart;
pub mod rm;
pub mod router;
pub mod snapshot;
pub mod status;
pub mod up;
pub mod worktree;

pub use doctor::{Check, doctor};
pub use down::{DownOptions, Stopped, down};
pub use env::env;
pub use exec::{exec, shell};
pub use gc::{Collected, gc};
pub use init::{Written, init};
pub use list::list;
pub use progress::{Progress, Silent};
pub use restart::restart;
pub use rm::{RemovedInstance, rm};
pub use select::{Selected, reap_if_orphaned, select};
pub use status::status;
pub use up::{UpOptions, up};
pub use views::{GitView, LsRow, ServiceView, StatusView};
