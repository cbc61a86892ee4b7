//! PostgreSQL test support: Debian's server binaries run as a process service, and the
//! `berth-test-postgres:15` image built FROM scratch out of them for compose tests.
//!
//! PostgreSQL refuses to run as root and the tests run as root, so the server runs as the
//! `postgres` user through `setpriv`, keeping only the ambient capability to search
//! directories: berth's state directory stays private (0700, root's) and the server can
//! still reach its data inside it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The compose image, built by `postgres-image.sh`.
pub const IMAGE: &str = "berth-test-postgres:15";

/// Runs what follows as the `postgres` user, able to traverse root's private directories.
pub const AS_POSTGRES: &str = "setpriv --reuid=postgres --regid=postgres --init-groups --inh-caps=+dac_read_search --ambient-caps=+dac_read_search";

/// The directory of the newest installed server's binaries, when there is one. Without
/// it the tests skip loudly, unless BERTH_REQUIRE_POSTGRES=1 (set by CI) makes that a
/// failure.
pub fn server_bin(test: &str) -> Option<PathBuf> {
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("postgres").is_file() && bin.join("initdb").is_file())
        .max();
    let clients = ["psql", "pg_dump", "pg_restore", "pg_isready"]
        .iter()
        .all(|tool| which(tool));
    match newest {
        Some(bin) if clients && which("setpriv") => Some(bin),
        _ if std::env::var("BERTH_REQUIRE_POSTGRES").as_deref() == Ok("1") => {
            panic!(
                "{test}: PostgreSQL (server, clients, setpriv) is missing, and BERTH_REQUIRE_POSTGRES=1 requires it"
            )
        }
        _ => {
            eprintln!(
                "\n*** SKIPPED {test}: PostgreSQL is not installed (apt-get install postgresql) ***\n"
            );
            None
        }
    }
}

fn which(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|output| output.status.success())
}

/// A process service running PostgreSQL on `port` with its cluster in
/// `{{ instance.data }}/pg`, created by `setup` with superuser `app` (trust auth on
/// 127.0.0.1 only), ready once `pg_isready` says so.
pub fn process_service(bin: &Path, name: &str, port: u16) -> String {
    let bin = bin.display();
    format!(
        r#"[services.{name}]
command = "{AS_POSTGRES} {bin}/postgres -D {{{{ instance.data }}}}/pg -p {{{{ port.{name} }}}} -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c fsync=off"
port = {port}
setup = "sh -c 'install -d -o postgres -g postgres -m 700 {{{{ instance.data }}}}/pg && {AS_POSTGRES} {bin}/initdb -D {{{{ instance.data }}}}/pg -U app --auth=trust -E UTF8 --no-locale >/dev/null'"
ready = {{ exec = "pg_isready -q -h 127.0.0.1 -p {{{{ port.{name} }}}}" }}
stop_grace = "20s"
"#
    )
}

/// Builds the compose image unless it exists (the script is idempotent and locked).
pub fn ensure_image() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/postgres-image.sh");
    let output = Command::new("bash")
        .arg(&script)
        .output()
        .expect("run postgres-image.sh");
    assert!(
        output.status.success(),
        "postgres-image.sh failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
