//! berth runs many isolated instances of one project's development stack on one machine.
//!
//! How `berth up` flows, one direction only:
//! - [`context`] resolves directories, the ledger and output mode from arguments and env;
//! - [`config`] loads and validates `berth.toml` (every error located);
//! - [`identity`] names the instance; [`ledger`] records it under the machine-wide lock,
//!   where [`ports`] plans its host ports (probing with [`probe`]) and leases them;
//! - [`compose`] resolves the project's Compose files with the Compose tool, and after
//!   planning writes the per-instance Compose file;
//! - [`model`] renders the instance model, which [`state`] writes as `instance.json`;
//! - [`supervisor`] (the same binary, detached) starts and watches the processes and
//!   writes their state back (compose services through the Compose tool, watched with
//!   [`docker`] engine queries while they start and the engine's events once settled);
//!   `up` waits for readiness and [`output`] renders the result.
//!
//! - [`envfiles`] writes the per-instance dotenv copies (edited by [`dotenv`]), each
//!   reached with [`beneath`] (no symlink followed) and recorded in the ledger.
//!
//! Every file berth reads from the work tree goes through [`input`]: regular files only,
//! of bounded size.
//! Every file berth owns is written atomically, read by format version and locked through
//! [`durable`].
//! Every program berth runs for itself (the Compose tool, the docker CLI, PostgreSQL's
//! clients, `per_instance` commands) goes through [`external`]: a deadline per kind of
//! call, bounded output, a process group that dies with berth.
//! - [`logs`] writes every service's output through one pump thread of the supervisor
//!   into size-capped, rotated files, and reads them back for `logs`, `up` and readiness.
//!
//! Every other command in [`commands`] starts from `instance.json` plus the ledger;
//! `rm` and `gc` remove what instances leave with [`cleanup`].

pub mod beneath;
pub mod cgroup;
pub mod cleanup;
pub mod cli;
pub mod commands;
pub mod compose;
pub mod config;
pub mod context;
pub mod docker;
pub mod dotenv;
pub mod durable;
pub mod env_vars;
pub mod envfiles;
pub mod error;
pub mod external;
pub mod git;
pub mod graph;
pub mod identity;
pub mod input;
pub mod ledger;
pub mod lifecycle;
pub mod logs;
pub mod membership;
pub mod model;
pub mod output;
pub mod ports;
pub mod probe;
pub mod process;
pub mod snapshot;
pub mod state;
pub mod supervisor;

pub use error::{Error, ExitCode, Result};

/// Runs one parsed command line.
pub fn run(cli: cli::Cli) -> Result<()> {
    commands::dispatch(cli)
}
