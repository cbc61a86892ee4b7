//! `db dump|restore|shell`: the database's own client tools (pg_dump, pg_restore, psql
//! from the machine) against the instance's port, for a process or compose service that
//! declares `database = "postgres"`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use super::{Progress, select};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::external::{Call, CallKind, ExternalError};
use crate::state::{DatabaseSpec, InstanceFile};

/// The first bytes of a pg_dump custom-format archive.
const CUSTOM_FORMAT_MAGIC: &[u8] = b"PGDMP";

/// What a dump or restore did.
#[derive(Debug, Serialize)]
pub struct DbReport {
    pub action: &'static str,
    pub service: String,
    pub file: PathBuf,
}

/// The running database of `service` (the only one when `None`) of the selected instance.
fn running(
    context: &Context,
    service: Option<&str>,
    progress: &dyn Progress,
) -> Result<(String, DatabaseSpec)> {
    let selected = select(context, progress)?;
    let file = selected.started()?;
    let (service, database) = pick(file, service)?;
    // A shared service's state is its shared instance's; the client reports if it is down.
    let state = file.services.get(&service).map(|record| record.state);
    if !file.supervisor_alive() || state.is_some_and(|state| !state.is_up()) {
        return Err(Error::failed(
            format!(
                "the database of `{service}` in `{}` is not running (state {})",
                file.name,
                state.map_or("stopped", |state| state.as_str())
            ),
            Some("start it with `berth up`".to_string()),
        ));
    }
    Ok((service, database.clone()))
}

/// Dumps the database into `path` (plain SQL for `.sql`, else pg_dump's custom format).
pub fn dump(
    context: &Context,
    service: Option<&str>,
    path: &Path,
    progress: &dyn Progress,
) -> Result<DbReport> {
    let (service, database) = running(context, service, progress)?;
    dump_to_file(&database, path)?;
    Ok(DbReport {
        action: "dump",
        service,
        file: path.to_path_buf(),
    })
}

/// A dump in the project's dump store.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct StoredDump {
    /// Its file name in the store, which `berth new --from` accepts.
    pub name: String,
    pub file: PathBuf,
    pub size: u64,
    /// When it was written (RFC 3339, UTC).
    pub created: String,
}

/// Where the dumps of `project` are kept: under the ledger directory, so they outlive
/// every instance and work tree, like snapshots.
pub(super) fn dump_store(context: &Context, project: &str) -> PathBuf {
    context.ledger.dir().join("dumps").join(project)
}

/// Dumps the database into the project's dump store, as
/// `{instance}-{service}-{YYYYMMDDTHHMMSSZ}.dump` (pg_dump's custom format).
pub fn dump_to_store(
    context: &Context,
    service: Option<&str>,
    progress: &dyn Progress,
) -> Result<DbReport> {
    let entry = select(context, progress)?.entry;
    let (service, database) = running(context, service, progress)?;
    let store = dump_store(context, &entry.project);
    crate::state::create_private_dir(&store)?;
    let stamp: String = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    let base = format!("{}-{service}-{stamp}", entry.name);
    let path = (1..)
        .map(|n| match n {
            1 => store.join(format!("{base}.dump")),
            n => store.join(format!("{base}-{n}.dump")),
        })
        .find(|path| path.symlink_metadata().is_err())
        .unwrap_or_else(|| store.join(format!("{base}.dump")));
    dump_to_file(&database, &path)?;
    Ok(DbReport {
        action: "dump",
        service,
        file: path,
    })
}

/// The project's stored dumps, newest first.
pub fn dumps(context: &Context, progress: &dyn Progress) -> Result<Vec<StoredDump>> {
    let project = super::select::project_name(context, progress)?;
    let store = dump_store(context, &project);
    let entries = match std::fs::read_dir(&store) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error.into()),
    };
    let mut found: Vec<(std::time::SystemTime, StoredDump)> = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = entry.metadata()?;
        // Partial dumps are hidden files; anything else put there is not berth's.
        if name.starts_with('.') || !meta.is_file() || !name.ends_with(".dump") {
            continue;
        }
        let modified = meta.modified()?;
        found.push((
            modified,
            StoredDump {
                file: entry.path(),
                name,
                size: meta.len(),
                created: humantime::format_rfc3339_seconds(modified).to_string(),
            },
        ));
    }
    found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.name.cmp(&b.1.name)));
    Ok(found.into_iter().map(|(_, dump)| dump).collect())
}

/// Loads the dump at `path` into the database.
pub fn restore(
    context: &Context,
    service: Option<&str>,
    path: &Path,
    progress: &dyn Progress,
) -> Result<DbReport> {
    let (service, database) = running(context, service, progress)?;
    load(&database, path)?;
    Ok(DbReport {
        action: "restore",
        service,
        file: path.to_path_buf(),
    })
}

/// Writes a plain SQL dump of the database to berth's stdout, within the data deadline;
/// returns pg_dump's exit status.
pub fn dump_to_stdout(
    context: &Context,
    service: Option<&str>,
    progress: &dyn Progress,
) -> Result<std::process::ExitStatus> {
    let (_, database) = running(context, service, progress)?;
    let mut command = client(&database, "pg_dump");
    command.args(["--clean", "--if-exists", "--no-owner", "--no-privileges"]);
    let finished = data_call(command, "pg_dump")
        .stdout(std::process::Stdio::inherit())
        .run()
        .map_err(|error| client_error("pg_dump", error))?;
    Ok(finished.status)
}

/// psql on the database of `service`, with the connection options, for the caller to
/// run attached to its terminal.
pub fn shell_command(
    context: &Context,
    service: Option<&str>,
    progress: &dyn Progress,
) -> Result<Command> {
    let (_, database) = running(context, service, progress)?;
    Ok(client(&database, "psql"))
}

/// The service named by `--service`, or the only one with a database (its own, or its
/// database on a shared service).
fn pick<'a>(file: &'a InstanceFile, wanted: Option<&str>) -> Result<(String, &'a DatabaseSpec)> {
    let own = file
        .services
        .iter()
        .filter_map(|(name, record)| Some((name, record.database.as_ref()?)));
    let shared = file
        .shared
        .iter()
        .filter_map(|usage| Some((&usage.service, usage.database.as_ref()?)));
    let with_database: Vec<(&String, &DatabaseSpec)> = own.chain(shared).collect();
    let names = || {
        with_database
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match wanted {
        Some(wanted) => with_database
            .iter()
            .find(|(name, _)| *name == wanted)
            .map(|(name, database)| ((*name).clone(), *database))
            .ok_or_else(|| {
                Error::usage(
                    format!("service `{wanted}` of `{}` declares no database", file.name),
                    Some(if with_database.is_empty() {
                        "add `database = \"postgres\"` to the service in berth.toml".to_string()
                    } else {
                        format!("services with a database: {}", names())
                    }),
                )
            }),
        None => match with_database.as_slice() {
            [(name, database)] => Ok(((*name).clone(), *database)),
            [] => Err(Error::usage(
                format!("no service of `{}` declares a database", file.name),
                Some(
                    "add `database = \"postgres\"` to the database's service in berth.toml"
                        .to_string(),
                ),
            )),
            _ => Err(Error::usage(
                format!("`{}` has several databases: {}", file.name, names()),
                Some("pick one with --service SERVICE".to_string()),
            )),
        },
    }
}

/// `program` (pg_dump, pg_restore, psql) with the connection options and password.
fn client(database: &DatabaseSpec, program: &str) -> Command {
    let mut command = Command::new(program);
    command
        .arg("-h")
        .arg(&database.host)
        .arg("-p")
        .arg(database.port.to_string())
        .arg("-U")
        .arg(&database.user)
        .arg("-d")
        .arg(&database.name)
        .env("PGCONNECT_TIMEOUT", "10");
    match &database.password {
        Some(password) => command.env("PGPASSWORD", password),
        None => command.env_remove("PGPASSWORD"),
    };
    command
}

/// Dumps into a temporary file next to `path` and renames it into place once pg_dump
/// succeeded, so a failed dump never leaves a truncated file under the asked name.
fn dump_to_file(database: &DatabaseSpec, path: &Path) -> Result<()> {
    let plain = path.extension().is_some_and(|extension| extension == "sql");
    let file_name = path
        .file_name()
        .ok_or_else(|| Error::usage(format!("`{}` is not a file name", path.display()), None))?;
    let partial: PathBuf = path.with_file_name(format!(
        ".{}.berth-partial-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let mut command = client(database, "pg_dump");
    command.args(["--clean", "--if-exists", "--no-owner", "--no-privileges"]);
    if !plain {
        command.arg("--format=custom");
    }
    command.arg("--file").arg(&partial);
    let result = run_checked(data_call(command, "pg_dump"));
    if let Err(error) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(error);
    }
    // A dump holds the data: private, like the rest of berth's files.
    use std::os::unix::fs::PermissionsExt;
    fs_err::set_permissions(&partial, std::fs::Permissions::from_mode(0o600))?;
    fs_err::File::open(&partial)?.sync_all()?;
    fs_err::rename(&partial, path)?;
    Ok(())
}

/// Loads a dump: custom format through pg_restore, plain SQL through psql; either way in
/// one transaction that stops at the first error.
fn load(database: &DatabaseSpec, path: &Path) -> Result<()> {
    let mut head = [0u8; 5];
    let read = fs_err::File::open(path)?.read(&mut head)?;
    let (command, program) = if head[..read] == *CUSTOM_FORMAT_MAGIC {
        let mut command = client(database, "pg_restore");
        command.args([
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
        ]);
        command.arg(path);
        (command, "pg_restore")
    } else {
        let mut command = client(database, "psql");
        command.args(["--quiet", "--no-psqlrc", "--single-transaction"]);
        command.args(["-v", "ON_ERROR_STOP=1", "--file"]).arg(path);
        (command, "psql")
    };
    run_checked(data_call(command, program).stdout(std::process::Stdio::null()))
}

/// A client tool's run as a copy of data: within the data deadline, in a process group
/// that dies with berth, its stderr passing through (its own words are the best report).
fn data_call(command: Command, program: &str) -> Call {
    Call::new(command, program, CallKind::Data).stderr(std::process::Stdio::inherit())
}

/// Runs a client tool; a failure is exit 1.
fn run_checked(call: Call) -> Result<()> {
    let program = call.display().to_string();
    let finished = call.run().map_err(|error| client_error(&program, error))?;
    if finished.status.success() {
        Ok(())
    } else {
        Err(Error::failed(
            format!("`{program}` failed ({})", finished.status),
            Some("its message is above".to_string()),
        ))
    }
}

/// A client that could not be started is named with how to install it.
fn client_error(program: &str, error: ExternalError) -> Error {
    match error {
        ExternalError::Spawn { source, .. } => missing_tool(program, source),
        other => other.into(),
    }
}

/// A client tool that could not be started, named with how to install it.
pub fn missing_tool(program: &str, error: std::io::Error) -> Error {
    let hint = if error.kind() == std::io::ErrorKind::NotFound {
        Some(format!(
            "`{program}` is PostgreSQL's own client; install it (Debian: `apt-get install postgresql-client`)"
        ))
    } else {
        None
    };
    Error::failed(format!("cannot run `{program}`: {error}"), hint)
}
