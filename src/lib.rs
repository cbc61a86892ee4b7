//! berth runs many isolated instances of one project's development stack on one machine.
//!
//! Three layers, each importing only from the ones below it:
//! - [`commands`]: one thin module per subcommand: arguments → options → one operation
//!   → rendered through [`output`] (a [`output::Printer`]: data on stdout, notes on
//!   stderr, a spinner on a terminal). Commands never import each other. Beside them,
//!   [`mcp`] (`berth mcp`) serves the same operations as MCP tools on stdio: each call
//!   runs one operation on a blocking thread with a progress sink of its own, and
//!   answers with the struct `--json` prints.
//! - [`instance`]: the operations (up, down, restart, status, list, logs, env, port/url,
//!   exec, snapshots, db, rm, gc, doctor, init). Each takes a [`context::Context`], an
//!   options struct and an [`instance::Progress`] sink, never prints, and returns the
//!   serde structs that tables and `--json` render; an MCP server or a router calls them
//!   alike.
//! - the domain modules below, which know nothing of commands or exit codes
//!   ([`error`] maps every module's error to one).
//!
//! How `berth up` flows, one direction only (`instance::up`):
//! - [`context`] resolves the directory, the ledger and the instance selector;
//! - [`config`] loads and validates `berth.toml` (every error located), and [`compose`]
//!   resolves the project's Compose files with the Compose tool;
//! - [`identity`] names the instance and [`ledger`] records it under the machine-wide
//!   lock; the shared instance, when the project has shared services, is brought up
//!   first, as its own phase;
//! - under the ledger lock, [`ports`] plans the host ports (probing with [`probe`]) and
//!   the leases are recorded with the env files [`envfiles`] rendered for the plan;
//! - [`model`] builds the instance model once, purely (git head, run token and `PATH`
//!   passed in); then every file is written from it: the env files (edited by
//!   [`dotenv`], reached with [`beneath`]), the per-instance Compose file, and
//!   `instance.json` through [`state`];
//! - [`supervisor`] (the same binary, detached) starts and watches the processes and
//!   writes their state back (compose services through the Compose tool, watched with
//!   [`docker`] engine queries while they start and the engine's events once settled);
//!   `up` waits for readiness and returns the instance's status.
//!
//! Every other operation starts from `instance.json` plus the ledger. Every file berth
//! reads from the work tree goes through [`input`]: regular files only, of bounded size.
//! Every file berth owns is written atomically, read by format version and locked through
//! [`durable`].
//! Every program berth runs for itself (the Compose tool, the docker CLI, PostgreSQL's
//! clients, `per_instance` commands) goes through [`external`]: a deadline per kind of
//! call, bounded output, a process group that dies with berth. [`logs`] writes every
//! service's output through one pump thread of the supervisor into size-capped, rotated
//! files; `rm` and `gc` remove what instances leave with [`cleanup`].
//! A PID is trusted only together with its start time ([`process`]), and a process is
//! signalled through a [`pidfd`], so a PID the kernel has reused never gets berth's signal.
//! [`router`] (`berth router`, a detached process per `BERTH_HOME`, like a supervisor per
//! instance) answers for `SERVICE.INSTANCE.localhost` on the loopback addresses, reading
//! the ledger and `instance.json` again whenever they change.

/// `eprintln!` for the daemons (the supervisor, the router): their standard error is a
/// log file, and a write the disk refuses (full) must not panic the process, as
/// `eprintln!` does: the line is dropped.
macro_rules! daemon_log {
    ($($argument:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($argument)*);
    }};
}
pub(crate) use daemon_log;

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
pub mod instance;
pub mod ledger;
pub mod logs;
pub mod mcp;
pub mod membership;
pub mod model;
pub mod output;
pub mod pidfd;
pub mod ports;
pub mod probe;
pub mod process;
pub mod router;
pub mod snapshot;
pub mod spawn;
pub mod state;
pub mod supervisor;
pub mod worktree;

pub use error::{Error, ExitCode, Result};

/// Runs one parsed command line.
pub fn run(cli: cli::Cli, printer: &output::Printer) -> Result<()> {
    commands::dispatch(cli, printer)
}
