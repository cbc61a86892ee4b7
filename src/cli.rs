//! Command-line types (clap derive). Doc comments are the help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The largest `--port-offset` or `--instance` that can mean anything: a port plus any
/// larger offset is past 65535.
pub const MAX_OFFSET: u32 = 65535;

/// The hidden subcommand that runs an instance's supervisor (`berth __supervise DIR`).
pub const SUPERVISE: &str = "__supervise";

/// Run many isolated instances of one project's development stack side by side.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: CommandKind,
}

/// Flags every command accepts.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Run as if started in DIR.
    #[arg(short = 'C', long = "directory", global = true, value_name = "DIR")]
    pub directory: Option<PathBuf>,
    /// The instance to act on (also BERTH_INSTANCE).
    #[arg(long, global = true, env = "BERTH_INSTANCE", value_name = "NAME")]
    pub name: Option<String>,
    /// The instance with this index; for `up`, also its port offset (N × stride).
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_OFFSET)))]
    pub instance: Option<u32>,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print no notes: only data, warnings and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum CommandKind {
    /// Write a commented berth.toml from what the directory holds: Compose files, a
    /// Procfile, .env files. Never overwrites one.
    Init(InitArgs),
    /// Create a git worktree beside the main one on a new branch NAME, copy and link the
    /// files `[worktree]` lists, run its setup, and bring its instance NAME up.
    New(NewArgs),
    /// Plan and lease ports, write the env files and `compose.yml`; start nothing.
    Prepare(PrepareArgs),
    /// Plan ports, start every service, wait until ready, print services, ports and URLs.
    Up(UpArgs),
    /// Stop everything of this instance; keep data and port leases unless asked.
    Down(DownArgs),
    /// Restart services (all when none named) and wait until they are ready.
    Restart(RestartArgs),
    /// Show this instance: each service's state, ports, PID and restarts.
    Status,
    /// List every instance on this machine.
    Ls,
    /// Print one port of a service, for scripts.
    Port(PortArgs),
    /// Print the URL of a service, for scripts: its router name while the router runs.
    Url(UrlArgs),
    /// Print the instance's variables.
    Env(EnvArgs),
    /// Print service logs, prefixed with the service name.
    Logs(LogsArgs),
    /// Run a command in a compose service's container, or with a process service's
    /// environment and directory. Exits with the command's status.
    Exec(ExecArgs),
    /// Open a shell in a compose service's container, or with a process service's (or
    /// the instance's) environment.
    Shell(ShellArgs),
    /// Remove the instance: its processes, containers, networks, own volumes, state
    /// directory and port leases, and nothing else.
    Rm(RmArgs),
    /// Clean up after instances that died or whose root is gone: ledger entries, left
    /// processes, and berth-labelled containers and networks no instance owns.
    Gc(GcArgs),
    /// Save, restore, list and remove snapshots of the instance's data (process data
    /// directories and its own Compose volumes).
    Snapshot(SnapshotArgs),
    /// Dump, restore or open a shell on a service's database (`database = "postgres"`)
    /// with the database's own tools, against the instance's port.
    Db(DbArgs),
    /// Check Docker, the Compose tool, the ledger and its directory, and who holds each
    /// port the current project plans.
    Doctor,
    /// Serve the operations as MCP tools on stdin and stdout, for coding agents (Claude
    /// Code, Cursor, Codex, goose, …): up, down, restart, status, logs, env, url, port,
    /// snapshots and the list of instances. Runs until the client closes the connection.
    Mcp,
    /// Print a shell completion script: `berth completions bash > /etc/bash_completion.d/berth`.
    Completions(CompletionsArgs),
    /// Print berth's man page (roff): `berth man | man -l -`.
    Man,
    /// The router: `SERVICE.INSTANCE.localhost` and `INSTANCE.localhost` to every
    /// instance's services, one background process per BERTH_HOME, on 127.0.0.1 and [::1].
    Router(RouterArgs),
    /// Run the router (started by `router start`; not for direct use).
    #[command(name = "__route", hide = true)]
    Route {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        https: bool,
        /// How many listening sockets follow the lock on descriptor 3.
        #[arg(long)]
        listeners: usize,
    },
    /// Run the supervisor of an instance (started by `up`; not for direct use).
    #[command(name = SUPERVISE, hide = true)]
    Supervise {
        /// The instance's state directory.
        dir: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Start only these services (and what they depend on).
    pub services: Vec<String>,
    /// Use exactly this port offset.
    #[arg(long, value_name = "N", conflicts_with = "strict_ports", value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_OFFSET)))]
    pub port_offset: Option<u32>,
    /// Fail instead of moving to another offset when a base port is taken.
    #[arg(long)]
    pub strict_ports: bool,
    /// Seconds to wait for every service to be ready.
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    pub timeout: u64,
    /// Stay in the foreground following logs; Ctrl-C brings the instance down.
    #[arg(long)]
    pub attach: bool,
    /// Start a new instance with a copy of the data of another instance of the project
    /// or of a snapshot (`instance:NAME` or `snapshot:NAME` when both exist).
    #[arg(long, value_name = "INSTANCE|SNAPSHOT")]
    pub from: Option<String>,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The instance's name, and the new branch's unless --branch is given.
    pub name: String,
    /// Check out this branch instead: an existing one, or a new one from HEAD.
    #[arg(long, value_name = "BRANCH")]
    pub branch: Option<String>,
    /// Seed the instance with the data of an instance or snapshot of the project, or
    /// load a database dump FILE (pg_dump's plain or custom format).
    #[arg(long, value_name = "INSTANCE|SNAPSHOT|FILE")]
    pub from: Option<String>,
    /// Make the worktree, and do not start the instance.
    #[arg(long, conflicts_with = "from")]
    pub no_up: bool,
    /// Seconds to wait for every service to be ready.
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct PrepareArgs {
    /// Use exactly this port offset.
    #[arg(long, value_name = "N", conflicts_with = "strict_ports", value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_OFFSET)))]
    pub port_offset: Option<u32>,
    /// Fail instead of moving to another offset when a base port is taken.
    #[arg(long)]
    pub strict_ports: bool,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Every instance of this project.
    #[arg(long)]
    pub all: bool,
    /// Also delete volumes (Compose services; no effect on process services).
    #[arg(long)]
    pub volumes: bool,
    /// Also give up the instance's port leases.
    #[arg(long)]
    pub release: bool,
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    /// Services to restart; all when none are named.
    pub services: Vec<String>,
    /// Seconds to wait for the restarted services to be ready.
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct PortArgs {
    pub service: String,
    /// A named port of the service (default: its first port).
    pub port_name: Option<String>,
}

#[derive(Debug, Args)]
pub struct UrlArgs {
    #[command(flatten)]
    pub target: PortArgs,
    /// Print `http://127.0.0.1:PORT` even while the router runs.
    #[arg(long)]
    pub direct: bool,
}

#[derive(Debug, Args)]
pub struct RouterArgs {
    #[command(subcommand)]
    pub command: RouterCommand,
}

#[derive(Debug, Subcommand)]
pub enum RouterCommand {
    /// Start the router in the background (nothing happens when it already runs so).
    Start(RouterStartArgs),
    /// Stop the router.
    Stop,
    /// Show the router (port, PID) and every name it routes, with the service's state.
    Status,
    /// Make the local CA of `--https` if there is none, and say how to trust it: the
    /// system, browsers, Node.js. Installs nothing itself.
    Trust,
    /// Print `/etc/hosts` lines for every routed name (glibc does not resolve
    /// `*.localhost`); `--write` keeps a marked block of them in the hosts file in sync.
    Hosts(RouterHostsArgs),
}

#[derive(Debug, Args)]
pub struct RouterStartArgs {
    /// The port to listen on (0: any free port).
    #[arg(long, default_value_t = crate::router::DEFAULT_PORT)]
    pub port: u16,
    /// Serve HTTPS (HTTP/2 and HTTP/1.1) with certificates from a local CA; `berth router
    /// trust` says how to trust it.
    #[arg(long)]
    pub https: bool,
}

#[derive(Debug, Args)]
pub struct RouterHostsArgs {
    /// Write the lines into the hosts file (BERTH_HOSTS_FILE, default /etc/hosts) as a
    /// marked block, which the router then keeps in sync as instances come and go.
    #[arg(long, conflicts_with = "remove")]
    pub write: bool,
    /// Take berth's block out of the hosts file, and stop keeping it in sync.
    #[arg(long)]
    pub remove: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum EnvFormat {
    #[default]
    Dotenv,
    Shell,
    Json,
}

#[derive(Debug, Args)]
pub struct EnvArgs {
    /// A process service: exactly the environment berth gives its process (env files,
    /// `PORT`, its `env`, `PATH`); the instance's `BERTH_*` variables when omitted.
    pub service: Option<String>,
    /// Output format; `shell` is safe to `eval`.
    #[arg(long, value_enum, default_value_t = EnvFormat::Dotenv)]
    pub format: EnvFormat,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The Procfile to import (default: `Procfile.dev`, else `Procfile`).
    #[arg(long, value_name = "FILE")]
    pub procfile: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Services to show; all when none are named.
    pub services: Vec<String>,
    /// Keep following new lines.
    #[arg(short, long)]
    pub follow: bool,
    /// Lines to show from the end of each log [default: 100; with --since-start, all of
    /// the current run].
    #[arg(short = 'n', long = "lines", value_name = "N")]
    pub lines: Option<usize>,
    /// Only the lines of each service's current run: those since it last started.
    #[arg(long)]
    pub since_start: bool,
    /// Every instance of this project, each line prefixed with `instance/service`.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    pub service: String,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ShellArgs {
    /// The service; the instance's environment in its root when omitted.
    pub service: Option<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Do not ask for confirmation (berth asks only when stdin is a terminal).
    #[arg(short, long)]
    pub yes: bool,
    /// Also remove the git worktree the instance runs in (`git worktree remove`); its
    /// branch stays. Refused while it has uncommitted changes, unless --force.
    #[arg(long, conflicts_with = "all")]
    pub worktree: bool,
    /// With --worktree: remove it even with uncommitted changes or untracked files.
    #[arg(long, requires = "worktree")]
    pub force: bool,
    /// Every instance of this project.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Print what would be removed, and remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write completions for.
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    pub command: SnapshotCommand,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Copy the instance's data into a snapshot; a running instance is stopped for the
    /// copy and started again.
    Save {
        #[arg(value_name = "NAME")]
        snapshot: String,
        /// Only these services' data (repeatable); all of it by default.
        #[arg(long = "service", value_name = "SERVICE")]
        services: Vec<String>,
        /// Replace an existing snapshot of that name.
        #[arg(long)]
        force: bool,
    },
    /// Replace the instance's data with a snapshot's.
    Restore {
        #[arg(value_name = "NAME")]
        snapshot: String,
        /// Restore into a running instance: stop it, restore, start it again.
        #[arg(long)]
        force: bool,
    },
    /// List the project's snapshots with their size and date.
    Ls,
    /// Delete a snapshot.
    Rm {
        #[arg(value_name = "NAME")]
        snapshot: String,
    },
}

#[derive(Debug, Args)]
pub struct DbArgs {
    /// The service whose database to use (default: the only one with `database`).
    #[arg(long, global = true, value_name = "SERVICE")]
    pub service: Option<String>,
    #[command(subcommand)]
    pub command: DbCommand,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Write the database to FILE (pg_dump's custom format; plain SQL when FILE ends in
    /// `.sql`), as plain SQL to stdout with `-`, or without FILE into the dump store
    /// (`berth db dumps`), which outlives the instance. A file appears only once complete.
    Dump { file: Option<PathBuf> },
    /// List the project's stored dumps, newest first.
    Dumps,
    /// Load a dump made by `db dump` (either format) into the database, replacing the
    /// objects it holds, in one transaction.
    Restore { file: PathBuf },
    /// Open psql on the database; arguments after `--` go to psql.
    Shell {
        #[arg(last = true, value_name = "ARGS")]
        args: Vec<String>,
    },
}
