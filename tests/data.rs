//! Instance data, end to end with a real PostgreSQL: snapshots (save, mutate, restore,
//! compare), clones with `up --from` that leave their source alone, `berth db`, and
//! snapshots of compose named volumes.

mod support;

use std::path::Path;

use support::postgres::{self, server_bin};
use support::{Run, Sandbox};

/// Runs one SQL statement through `berth db shell` and returns psql's unaligned output.
fn sql(sandbox: &Sandbox, dir: &Path, name: &str, query: &str) -> String {
    sandbox
        .berth(dir, &["--name", name, "db", "shell", "--", "-Atc", query])
        .success()
        .stdout
        .trim()
        .to_string()
}

fn status(sandbox: &Sandbox, dir: &Path, name: &str) -> serde_json::Value {
    sandbox
        .berth(dir, &["--name", name, "status", "--json"])
        .success()
        .json()
}

fn state_of(status: &serde_json::Value, service: &str) -> String {
    status["services"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|entry| entry["name"] == service)
        .and_then(|entry| entry["state"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// A project whose PostgreSQL has its base port at `port`. Its instances are 10 ports
/// apart, so that a test's three instances stay within its own hundred (17100-17199
/// holds main, feature and third) and never take another test's fixed port (the
/// compose tests' 17200, the shared instance's 17300).
fn config(bin: &Path, port: u16) -> String {
    format!(
        "[project]\nname = \"pgshop\"\n\n[ports]\nstride = 10\n\n{}database = {{ kind = \"postgres\", user = \"app\", name = \"postgres\" }}\n",
        postgres::process_service(bin, "db", port)
    )
}

#[test]
fn process_postgres_snapshot_restore_clone_and_dump() {
    let Some(bin) = server_bin("process_postgres_snapshot_restore_clone_and_dump") else {
        return;
    };
    let sandbox = Sandbox::new();
    let main = sandbox.project("main", &config(&bin, 17100));
    sandbox.berth(&main, &["up"]).success();
    let name = "main";
    sql(&sandbox, &main, name, "create table orders(id int)");
    sql(&sandbox, &main, name, "insert into orders values (1)");

    // Save while running: the instance is stopped for the copy and comes back.
    let saved = sandbox
        .berth(&main, &["snapshot", "save", "one-order", "--json"])
        .success()
        .json();
    assert_eq!(saved["name"], "one-order");
    assert_eq!(saved["data"]["paths"], serde_json::json!([""]));
    assert!(saved["bytes"].as_u64().unwrap() > 1_000_000, "{saved}");
    assert_eq!(state_of(&status(&sandbox, &main, name), "db"), "ready");
    let again = sandbox.berth(&main, &["snapshot", "save", "one-order"]);
    again.code(2);

    sql(&sandbox, &main, name, "insert into orders values (2)");
    assert_eq!(
        sql(&sandbox, &main, name, "select count(*) from orders"),
        "2"
    );

    // A restore into a running instance needs --force.
    let refused = sandbox.berth(&main, &["snapshot", "restore", "one-order"]);
    let refused = refused.code(2);
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    assert_eq!(
        sql(&sandbox, &main, name, "select count(*) from orders"),
        "2"
    );
    sandbox
        .berth(&main, &["snapshot", "restore", "one-order", "--force"])
        .success();
    assert_eq!(
        sql(&sandbox, &main, name, "select count(*) from orders"),
        "1"
    );

    // db dump and restore with PostgreSQL's own tools, both formats.
    let dumps = sandbox.dir.path().join("dumps");
    std::fs::create_dir_all(&dumps).unwrap();
    let custom = dumps.join("one.dump");
    let plain = dumps.join("one.sql");
    for file in [&custom, &plain] {
        sandbox
            .berth(&main, &["db", "dump", file.to_str().unwrap()])
            .success();
    }
    assert!(std::fs::read(&custom).unwrap().starts_with(b"PGDMP"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&custom).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "a dump holds the data: private");
    assert!(
        std::fs::read_to_string(&plain)
            .unwrap()
            .contains("CREATE TABLE public.orders")
    );
    let listed: Vec<String> = std::fs::read_dir(&dumps)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(listed.len(), 2, "no partial files left: {listed:?}");
    for file in [&custom, &plain] {
        sql(&sandbox, &main, name, "insert into orders values (3), (4)");
        sandbox
            .berth(&main, &["db", "restore", file.to_str().unwrap()])
            .success();
        assert_eq!(
            sql(&sandbox, &main, name, "select count(*) from orders"),
            "1"
        );
    }
    let stdout_dump = sandbox.berth(&main, &["db", "dump", "-"]).success().stdout;
    assert!(stdout_dump.contains("COPY public.orders"), "{stdout_dump}");
    // Without FILE the dump goes into the project's store, which outlives the instance.
    let stored = sandbox.berth(&main, &["db", "dump"]).success();
    assert!(
        stored.stderr.contains("dumped the database of `db` to")
            && stored.stderr.contains("dumps/pgshop/main-db-"),
        "{}",
        stored.stderr
    );
    let store = sandbox
        .berth(&main, &["db", "dumps", "--json"])
        .success()
        .json();
    assert_eq!(store.as_array().map(Vec::len), Some(1), "{store}");
    let stored_name = store[0]["name"].as_str().unwrap().to_string();
    assert!(stored_name.starts_with("main-db-") && stored_name.ends_with(".dump"));
    let stored_file = std::path::PathBuf::from(store[0]["file"].as_str().unwrap());
    assert!(std::fs::read(&stored_file).unwrap().starts_with(b"PGDMP"));
    let bad = dumps.join("bad.sql");
    std::fs::write(&bad, "insert into orders values (9);\nthis is not sql;\n").unwrap();
    sandbox
        .berth(&main, &["db", "restore", bad.to_str().unwrap()])
        .code(1);
    assert_eq!(
        sql(&sandbox, &main, name, "select count(*) from orders"),
        "1",
        "a failed restore changes nothing (one transaction)"
    );

    // A clone in another worktree of the project starts from main's data...
    let clone = sandbox.project("feature", &config(&bin, 17100));
    let cloned = sandbox.berth(&clone, &["up", "--from", "main"]).success();
    assert!(
        cloned.stderr.contains("starts from instance `main`"),
        "{}",
        cloned.stderr
    );
    assert_eq!(
        sql(&sandbox, &clone, "feature", "select count(*) from orders"),
        "1"
    );
    // ...and changing the clone leaves main alone.
    sql(
        &sandbox,
        &clone,
        "feature",
        "insert into orders values (10), (11)",
    );
    assert_eq!(
        sql(&sandbox, &clone, "feature", "select count(*) from orders"),
        "3"
    );
    assert_eq!(
        sql(&sandbox, &main, name, "select count(*) from orders"),
        "1"
    );
    assert_eq!(state_of(&status(&sandbox, &main, name), "db"), "ready");
    // --from seeds only a new instance.
    sandbox.berth(&clone, &["up", "--from", "main"]).code(2);

    // Snapshots and stored dumps outlive their instance: rm main, then restore its
    // snapshot elsewhere.
    sandbox.berth(&main, &["rm", "--yes"]).success();
    let table = sandbox.berth(&clone, &["db", "dumps"]).success().stdout;
    assert!(table.contains(&stored_name), "{table}");
    sandbox
        .berth(&clone, &["db", "restore", stored_file.to_str().unwrap()])
        .success();
    assert_eq!(
        sql(&sandbox, &clone, "feature", "select count(*) from orders"),
        "1",
        "the stored dump holds main's one order"
    );
    let listed = sandbox
        .berth(&clone, &["snapshot", "ls", "--json"])
        .success()
        .json();
    assert_eq!(listed[0]["name"], "one-order");
    assert_eq!(listed[0]["instance"], "main");
    let table = sandbox.berth(&clone, &["snapshot", "ls"]).success().stdout;
    assert!(
        table.contains("one-order") && table.contains("MiB"),
        "{table}"
    );
    sandbox.berth(&clone, &["down"]).success();
    sandbox
        .berth(&clone, &["snapshot", "restore", "one-order"])
        .success();
    sandbox.berth(&clone, &["up"]).success();
    assert_eq!(
        sql(&sandbox, &clone, "feature", "select count(*) from orders"),
        "1"
    );
    let third = sandbox.project("third", &config(&bin, 17100));
    sandbox
        .berth(&third, &["up", "--from", "snapshot:one-order"])
        .success();
    assert_eq!(
        sql(&sandbox, &third, "third", "select count(*) from orders"),
        "1"
    );

    sandbox
        .berth(&clone, &["snapshot", "rm", "one-order"])
        .success();
    let empty: Run = sandbox
        .berth(&clone, &["snapshot", "ls", "--json"])
        .success();
    assert_eq!(empty.json(), serde_json::json!([]));
    sandbox
        .berth(&clone, &["snapshot", "rm", "one-order"])
        .code(2);
}

fn compose_postgres(port: u16) -> String {
    format!(
        r#"services:
  db:
    image: {image}
    environment:
      POSTGRES_USER: app
      POSTGRES_PASSWORD: secret
      POSTGRES_DB: shop
    ports:
      - "{port}:5432"
    volumes:
      - pgdata:/var/lib/postgresql/data
    healthcheck:
      test: ["CMD", "pg_isready", "-q", "-h", "127.0.0.1", "-U", "app", "-d", "shop"]
      interval: 1s
      retries: 60
      start_period: 60s
volumes:
  pgdata: {{}}
"#,
        image = postgres::IMAGE
    )
}

/// A compose PostgreSQL with a named volume: `db` commands find user, password and
/// database in the Compose file; snapshots save, restore and clone the volume.
fn compose_postgres_volume(tool: &str, project: &str, port: u16) {
    let mut sandbox = Sandbox::new();
    sandbox.compose = Some(tool.to_string());
    let berth_toml =
        format!("[project]\nname = \"{project}\"\n\n[services.db]\ndatabase = \"postgres\"\n");
    let compose = compose_postgres(port);
    let files = [
        ("berth.toml", berth_toml.as_str()),
        ("compose.yaml", compose.as_str()),
    ];
    let main = sandbox.project_files(&format!("{project}-main"), &files);
    let name = format!("{project}-main");
    sandbox.berth(&main, &["up"]).success();
    sql(&sandbox, &main, &name, "create table items(id int)");
    sql(&sandbox, &main, &name, "insert into items values (1)");

    let saved = sandbox
        .berth(
            &main,
            &["snapshot", "save", "first", "--service", "db", "--json"],
        )
        .success()
        .json();
    assert_eq!(saved["volumes"][0]["key"], "pgdata", "{saved}");
    assert_eq!(saved["volumes"][0]["services"], serde_json::json!(["db"]));
    assert_eq!(state_of(&status(&sandbox, &main, &name), "db"), "ready");
    assert_eq!(
        support::docker::containers_of(&name).len(),
        1,
        "only the service's container: the copy's temporary one is gone"
    );

    sql(&sandbox, &main, &name, "drop table items");
    sandbox
        .berth(&main, &["snapshot", "restore", "first", "--force"])
        .success();
    assert_eq!(
        sql(&sandbox, &main, &name, "select count(*) from items"),
        "1"
    );
    let volume = format!("{name}_pgdata");
    let labels =
        support::docker::lines(&["volume", "inspect", &volume, "--format", "{{json .Labels}}"]);
    assert!(
        labels[0].contains("\"com.docker.compose.project\":\"") && labels[0].contains(&name),
        "the recreated volume is Compose's own and the instance's: {labels:?}"
    );

    // Destroyed with its volume, then restored: the volume comes back from the snapshot.
    sandbox.berth(&main, &["down", "--volumes"]).success();
    assert!(!support::docker::volume_exists(&volume));
    sandbox
        .berth(&main, &["snapshot", "restore", "first"])
        .success();
    sandbox.berth(&main, &["up"]).success();
    assert_eq!(
        sql(&sandbox, &main, &name, "select count(*) from items"),
        "1"
    );

    // A clone gets its own volume with the same content; the source is unchanged.
    let clone_dir = sandbox.project_files(&format!("{project}-feature"), &files);
    let clone = format!("{project}-feature");
    sandbox
        .berth(&clone_dir, &["up", "--from", &name])
        .success();
    assert!(support::docker::volume_exists(&format!("{clone}_pgdata")));
    assert_eq!(
        sql(&sandbox, &clone_dir, &clone, "select count(*) from items"),
        "1"
    );
    sql(
        &sandbox,
        &clone_dir,
        &clone,
        "insert into items values (2), (3)",
    );
    assert_eq!(
        sql(&sandbox, &clone_dir, &clone, "select count(*) from items"),
        "3"
    );
    assert_eq!(
        sql(&sandbox, &main, &name, "select count(*) from items"),
        "1"
    );

    let dump = sandbox.dir.path().join("items.dump");
    sandbox
        .berth(&clone_dir, &["db", "dump", dump.to_str().unwrap()])
        .success();
    sandbox
        .berth(&main, &["db", "restore", dump.to_str().unwrap()])
        .success();
    assert_eq!(
        sql(&sandbox, &main, &name, "select count(*) from items"),
        "3"
    );

    for (dir, instance) in [(&main, &name), (&clone_dir, &clone)] {
        sandbox.berth(dir, &["rm", "--yes"]).success();
        assert!(support::docker::containers_of(instance).is_empty());
        assert!(!support::docker::volume_exists(&format!(
            "{instance}_pgdata"
        )));
    }
    let listed = sandbox
        .berth(&main, &["snapshot", "ls", "--json"])
        .success()
        .json();
    assert_eq!(listed[0]["name"], "first", "snapshots outlive the instance");
}

#[test]
fn compose_postgres_volume_with_compose_v2() {
    if !support::docker::available("compose_postgres_volume_with_compose_v2")
        || server_bin("compose_postgres_volume_with_compose_v2").is_none()
    {
        return;
    }
    postgres::ensure_image();
    if support::docker::compose_tools().contains(&"docker compose") {
        compose_postgres_volume("docker compose", "cpg2", 17200);
    }
}

#[test]
fn compose_postgres_volume_with_compose_v1() {
    if !support::docker::available("compose_postgres_volume_with_compose_v1")
        || server_bin("compose_postgres_volume_with_compose_v1").is_none()
    {
        return;
    }
    postgres::ensure_image();
    if support::docker::compose_tools().contains(&"docker-compose") {
        compose_postgres_volume("docker-compose", "cpg1", 17210);
    }
}

/// A stand-in for the docker CLI of an engine that dies during a volume copy: every
/// call goes to the real CLI except those whose first argument is in `DYING_AT`, which
/// fail as the CLI does when the daemon has gone away. berth's own check of the engine,
/// before the copy, still passes.
fn dying_docker(dir: &Path) -> std::path::PathBuf {
    let real = std::process::Command::new("sh")
        .args(["-c", "command -v docker"])
        .output()
        .expect("find docker");
    let real = String::from_utf8_lossy(&real.stdout).trim().to_string();
    let bin = dir.join("dying-docker");
    std::fs::create_dir_all(&bin).unwrap();
    let script = format!(
        "#!/bin/sh\ncase \" $DYING_AT \" in\n  *\" $1 \"*)\n    echo \"Cannot connect to the Docker daemon at $DOCKER_HOST. Is the docker daemon running?\" >&2\n    exit 1;;\nesac\nexec {real} \"$@\"\n"
    );
    std::fs::write(bin.join("docker"), script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("docker"), std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// `berth ARGS…` with extra variables.
fn berth_with(sandbox: &Sandbox, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = sandbox.command(dir, args);
    command.envs(env.iter().copied());
    Run::from_output(command.output().expect("run berth"))
}

/// Docker failing during a snapshot is exit 5 ("Docker or Compose unavailable"), whether
/// the engine is gone from the start or stops answering during the volume copy; the
/// failed save lists nothing, the instance runs again, and the snapshot still restores.
#[test]
fn a_docker_failure_during_a_snapshot_exits_5() {
    if !support::docker::available("a_docker_failure_during_a_snapshot_exits_5") {
        return;
    }
    let mut sandbox = Sandbox::new();
    sandbox.compose = Some(support::docker::compose_tools()[0].to_string());
    let compose = format!(
        "services:\n  box:\n    image: {}\n    command: [\"sh\", \"-c\", \"test -f /data/mark || echo first > /data/mark; exec sleep 100000\"]\n    stop_grace_period: 1s\n    volumes: [data:/data]\nvolumes:\n  data:\n",
        support::docker::IMAGE
    );
    let dir = sandbox.project_files("snapfail", &[("compose.yml", &compose)]);
    sandbox.berth(&dir, &["up"]).success();
    sandbox
        .berth(&dir, &["snapshot", "save", "first"])
        .success();
    let listed = |sandbox: &Sandbox| -> Vec<String> {
        let list = sandbox
            .berth(&dir, &["snapshot", "ls", "--json"])
            .success()
            .json();
        list.as_array()
            .unwrap()
            .iter()
            .map(|snapshot| snapshot["name"].as_str().unwrap().to_string())
            .collect()
    };

    // No engine at all: refused before anything is copied.
    sandbox.berth(&dir, &["down"]).success();
    let no_docker = format!("unix://{}/no-docker.sock", sandbox.dir.path().display());
    let gone = [("DOCKER_HOST", no_docker.as_str())];
    for args in [
        &["snapshot", "save", "second"][..],
        &["snapshot", "restore", "first"][..],
    ] {
        let run = berth_with(&sandbox, &dir, args, &gone).code(5);
        assert!(
            run.stderr
                .contains("error: the Docker engine is not available")
                && run
                    .stderr
                    .contains("caused by: the Docker engine is not reachable"),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert_eq!(listed(&sandbox), ["first"]);

    // The engine stops answering during the copy: at the copy itself (export, then
    // import), or when asked whether the volume exists (which must not pass for "no").
    sandbox.berth(&dir, &["up"]).success();
    let bin = dying_docker(sandbox.dir.path());
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    for (dying_at, args) in [
        ("cp", &["snapshot", "save", "second"][..]),
        ("cp", &["snapshot", "restore", "first", "--force"][..]),
        ("volume", &["snapshot", "save", "second"][..]),
        ("volume", &["snapshot", "restore", "first", "--force"][..]),
    ] {
        let dying = [("PATH", path.as_str()), ("DYING_AT", dying_at)];
        let run = berth_with(&sandbox, &dir, args, &dying).code(5);
        assert!(
            run.stderr.contains(&format!("error: `docker {dying_at} "))
                && run.stderr.contains("Cannot connect to the Docker daemon")
                && run
                    .stderr
                    .contains("hint: check the Docker engine with `docker info`"),
            "{dying_at}, {args:?}: {}",
            run.stderr
        );
        let status = sandbox.berth(&dir, &["status", "--json"]).success().json();
        assert_eq!(status["state"], "running", "started again: {status}");
        assert_eq!(
            support::docker::containers_of("snapfail").len(),
            1,
            "the copy's temporary container is gone"
        );
    }
    assert_eq!(listed(&sandbox), ["first"], "a failed save lists nothing");

    // The snapshot is intact: restoring it again, with the engine back, completes it.
    sandbox
        .berth(&dir, &["snapshot", "restore", "first", "--force"])
        .success();
    let mark = support::docker::lines(&[
        "run",
        "--rm",
        "-v",
        "snapfail_data:/data",
        support::docker::IMAGE,
        "cat",
        "/data/mark",
    ]);
    assert_eq!(mark, ["first"]);
}

/// psql as `user` straight on `port` (not through berth); (success, output).
fn psql_as(port: u16, user: &str, database: &str, query: &str) -> (bool, String) {
    let output = std::process::Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            user,
            "-d",
            database,
        ])
        .args(["-Atc", query])
        .env_remove("PGPASSWORD")
        .output()
        .expect("run psql");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text.trim().to_string())
}

/// Runs `berth up` in every directory at the same time; each must succeed.
fn up_all_at_once(sandbox: &Sandbox, dirs: &[std::path::PathBuf]) {
    std::thread::scope(|scope| {
        let ups: Vec<_> = dirs
            .iter()
            .map(|dir| scope.spawn(|| sandbox.berth(dir, &["up"])))
            .collect();
        for up in ups {
            up.join().unwrap().success();
        }
    });
}

/// PostgreSQL servers whose data is in this sandbox: here only the shared instance's
/// (other tests run servers of their own meanwhile).
fn postmasters(sandbox: &Sandbox) -> usize {
    let data = sandbox.dir.path().canonicalize().unwrap();
    support::pids_matching(&format!("postgres -D {}", data.display())).len()
}

#[test]
fn shared_postgres_gives_each_instance_its_own_database() {
    let Some(bin) = server_bin("shared_postgres_gives_each_instance_its_own_database") else {
        return;
    };
    let sandbox = Sandbox::new();
    let psql = "psql -h 127.0.0.1 -p {{ port.db }} -U app -d postgres -v ON_ERROR_STOP=1";
    let config = format!(
        r#"[project]
name = "tenants"

{db}shared = true
database = {{ kind = "postgres", user = "app_{{{{ instance.index }}}}", name = "app_{{{{ instance.index }}}}" }}

[services.db.per_instance]
create = "{psql} -c 'CREATE ROLE app_{{{{ instance.index }}}} LOGIN' -c 'CREATE DATABASE app_{{{{ instance.index }}}} OWNER app_{{{{ instance.index }}}}' -c 'REVOKE CONNECT ON DATABASE app_{{{{ instance.index }}}} FROM PUBLIC'"
drop = "{psql} -c 'DROP DATABASE IF EXISTS app_{{{{ instance.index }}}}' -c 'DROP ROLE IF EXISTS app_{{{{ instance.index }}}}'"

[services.api]
command = "{helper} print-env DATABASE_URL"
env = {{ DATABASE_URL = "postgres://app_{{{{ instance.index }}}}@127.0.0.1:{{{{ port.db }}}}/app_{{{{ instance.index }}}}" }}
port = 17310
depends_on = ["db"]
ready = {{ log = "DATABASE_URL=" }}
"#,
        db = postgres::process_service(&bin, "db", 17300),
        helper = support::helper(),
    );
    let dirs: Vec<_> = ["t1", "t2", "t3"]
        .iter()
        .map(|name| sandbox.project(name, &config))
        .collect();
    // All three at once: exactly one shared server, every instance registered.
    up_all_at_once(&sandbox, &dirs);
    assert_eq!(
        postmasters(&sandbox),
        1,
        "one PostgreSQL for every instance"
    );
    let ledger = sandbox.ledger();
    let shared = ledger["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["name"] == "tenants-shared")
        .expect("the shared instance is in the ledger")
        .clone();
    let mut users: Vec<&str> = shared["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| user.as_str().unwrap())
        .collect();
    users.sort();
    assert_eq!(users, ["t1", "t2", "t3"]);
    let port = shared["leases"][0]["port"].as_u64().unwrap() as u16;
    let ls = sandbox.berth(&dirs[0], &["ls"]).success().stdout;
    assert!(
        ls.lines()
            .any(|line| line.starts_with("tenants-shared") && line.contains(" shared ")),
        "{ls}"
    );

    for (position, dir) in dirs.iter().enumerate() {
        let name = format!("t{}", position + 1);
        let env = sandbox.berth(dir, &["env"]).success().stdout;
        assert!(env.contains(&format!("BERTH_PORT_DB={port}")), "{env}");
        let index = sandbox.berth(dir, &["status", "--json"]).success().json()["index"]
            .as_u64()
            .unwrap();
        let log = std::fs::read_to_string(dir.join(format!(".berth/{name}/logs/api.log"))).unwrap();
        assert!(
            log.contains(&format!(
                "DATABASE_URL=postgres://app_{index}@127.0.0.1:{port}/app_{index}"
            )),
            "{log}"
        );
        assert_eq!(
            sql(
                &sandbox,
                dir,
                &name,
                "select current_user || ' ' || current_database()"
            ),
            format!("app_{index} app_{index}")
        );
        sql(
            &sandbox,
            dir,
            &name,
            &format!("create table own_{index}(x int)"),
        );
    }
    // Each sees only its own tables, and may not even connect to another's database.
    for (position, dir) in dirs.iter().enumerate() {
        let name = format!("t{}", position + 1);
        let tables = sql(
            &sandbox,
            dir,
            &name,
            "select string_agg(tablename, ',') from pg_tables where tablename like 'own_%'",
        );
        assert_eq!(tables.split(',').count(), 1, "{name} sees {tables}");
    }
    // Concurrent ups took the indices in any order.
    let indices: Vec<u64> = dirs
        .iter()
        .map(|dir| {
            sandbox.berth(dir, &["status", "--json"]).success().json()["index"]
                .as_u64()
                .unwrap()
        })
        .collect();
    let (allowed, message) = psql_as(
        port,
        &format!("app_{}", indices[0]),
        &format!("app_{}", indices[1]),
        "select 1",
    );
    assert!(
        !allowed && message.contains("permission denied"),
        "{message}"
    );

    // Down of one: the others keep the shared server. rm of one drops its database.
    sandbox.berth(&dirs[0], &["down"]).success();
    assert_eq!(postmasters(&sandbox), 1);
    sandbox.berth(&dirs[1], &["rm", "--yes"]).success();
    let (_, databases) = psql_as(
        port,
        "app",
        "postgres",
        "select string_agg(datname, ',' order by datname) from pg_database where datname like 'app_%'",
    );
    let mut kept = [indices[0], indices[2]];
    kept.sort();
    assert_eq!(
        databases,
        format!("app_{},app_{}", kept[0], kept[1]),
        "t2's database is dropped"
    );
    let t3 = sql(
        &sandbox,
        &dirs[2],
        "t3",
        &format!("select count(*) from own_{}", indices[2]),
    );
    assert_eq!(t3, "0");
    // The shared instance refuses rm while an instance uses it.
    let refused = sandbox.berth(&dirs[2], &["--name", "tenants-shared", "rm", "--yes"]);
    assert!(refused.code(2).stderr.contains("used by t3"));

    // The last one down stops it; the next up starts it again with the data kept.
    let last = sandbox.berth(&dirs[2], &["down"]).success();
    assert!(
        last.stderr.contains("stopped the shared instance"),
        "{}",
        last.stderr
    );
    support::wait_for(
        "the shared server to stop",
        std::time::Duration::from_secs(20),
        || postmasters(&sandbox) == 0,
    );
    sandbox.berth(&dirs[0], &["up"]).success();
    assert_eq!(postmasters(&sandbox), 1);
    let t1 = sandbox
        .berth(&dirs[0], &["status", "--json"])
        .success()
        .json()["index"]
        .as_u64()
        .unwrap();
    let own = format!("select count(*) from own_{t1}");
    assert_eq!(sql(&sandbox, &dirs[0], "t1", &own), "0");

    // The shared instance has data of its own: a snapshot of it stops and restarts only it.
    let saved = sandbox
        .berth(
            &dirs[0],
            &["--name", "tenants-shared", "snapshot", "save", "shared-db"],
        )
        .success();
    assert!(
        saved.stdout.contains("of `tenants-shared`"),
        "{}",
        saved.stdout
    );
    assert_eq!(postmasters(&sandbox), 1);
    let shared_status = sandbox
        .berth(&dirs[0], &["--name", "tenants-shared", "status", "--json"])
        .success()
        .json();
    let names: Vec<&str> = shared_status["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|service| service["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["db"],
        "the shared instance runs only the shared services"
    );
    assert_eq!(sql(&sandbox, &dirs[0], "t1", &own), "0");

    // Removing the shared instance (once unused) removes its data; the next up starts
    // afresh and creates the instance's database again.
    sandbox.berth(&dirs[0], &["down"]).success();
    sandbox
        .berth(&dirs[0], &["--name", "tenants-shared", "rm", "--yes"])
        .success();
    sandbox.berth(&dirs[0], &["up"]).success();
    assert_eq!(
        sql(&sandbox, &dirs[0], "t1", "select current_database()"),
        format!("app_{t1}")
    );
    let (_, tables) = psql_as(
        port,
        "app",
        &format!("app_{t1}"),
        "select count(*) from pg_tables where tablename like 'own_%'",
    );
    assert_eq!(tables, "0", "a fresh shared server");

    // A user whose worktree is deleted: gc forgets it, and stops the now idle server.
    std::fs::remove_dir_all(&dirs[0]).unwrap();
    let gc = sandbox.berth(&dirs[2], &["gc"]).success();
    assert!(gc.stdout.contains("tenants-shared"), "{}", gc.stdout);
    support::wait_for(
        "the idle shared server to stop",
        std::time::Duration::from_secs(20),
        || postmasters(&sandbox) == 0,
    );
}

#[test]
fn snapshot_and_from_mistakes_are_clear_and_change_nothing() {
    let sandbox = Sandbox::new();
    let config = format!(
        r#"[project]
name = "files"

[services.writer]
command = "{helper} write-file --path {{{{ instance.data }}}}/notes/a.txt --text hello"
setup = "mkdir -p {{{{ instance.data }}}}/notes"

[services.other]
command = "{helper} sleep"
"#,
        helper = support::helper()
    );
    let dir = sandbox.project("files", &config);
    sandbox.berth(&dir, &["up"]).success();
    let data = dir.join(".berth/files/data");
    support::wait_for(
        "the writer's file",
        std::time::Duration::from_secs(10),
        || data.join("notes/a.txt").is_file(),
    );
    std::fs::write(data.join("notes/b.txt"), "kept").unwrap();
    std::fs::write(data.join("top.txt"), "top").unwrap();

    for bad in ["bad name", ".hidden", "a/b"] {
        let run = sandbox.berth(&dir, &["snapshot", "save", bad]);
        assert!(run.code(2).stderr.contains("not a valid snapshot name"));
    }
    let no_files = sandbox.berth(&dir, &["snapshot", "save", "x", "--service", "other"]);
    assert!(no_files.code(2).stderr.contains("keeps no files"));
    let unknown = sandbox.berth(&dir, &["snapshot", "save", "x", "--service", "nope"]);
    assert!(unknown.code(2).stderr.contains("not a service"));
    let saved = sandbox
        .berth(
            &dir,
            &["snapshot", "save", "notes", "--service", "writer", "--json"],
        )
        .success()
        .json();
    assert_eq!(saved["data"]["paths"], serde_json::json!(["notes"]));
    sandbox.berth(&dir, &["snapshot", "save", "all"]).success();
    let missing = sandbox.berth(&dir, &["snapshot", "restore", "nope"]);
    assert!(missing.code(2).stderr.contains("no snapshot named `nope`"));

    // A part restores only itself: notes come back, top.txt stays as it is now.
    sandbox.berth(&dir, &["down"]).success();
    std::fs::write(data.join("notes/b.txt"), "changed").unwrap();
    std::fs::write(data.join("notes/c.txt"), "new").unwrap();
    std::fs::write(data.join("top.txt"), "top changed").unwrap();
    sandbox
        .berth(&dir, &["snapshot", "restore", "notes"])
        .success();
    assert_eq!(
        std::fs::read_to_string(data.join("notes/b.txt")).unwrap(),
        "kept"
    );
    assert!(!data.join("notes/c.txt").exists());
    assert_eq!(
        std::fs::read_to_string(data.join("top.txt")).unwrap(),
        "top changed"
    );

    // A damaged snapshot is refused before anything changes.
    let snapshots = sandbox.home().join("snapshots/files");
    let tar = snapshots.join("all/data.tar");
    let bytes = std::fs::read(&tar).unwrap();
    std::fs::write(&tar, &bytes[..bytes.len() / 2]).unwrap();
    let damaged = sandbox.berth(&dir, &["snapshot", "restore", "all"]).code(1);
    assert!(damaged.stderr.contains("is damaged"), "{}", damaged.stderr);
    assert_eq!(
        std::fs::read_to_string(data.join("top.txt")).unwrap(),
        "top changed"
    );

    // A partial snapshot left by a killed save is never listed, and the next save sweeps it.
    std::fs::create_dir_all(snapshots.join(".partial-ghost-999999999")).unwrap();
    let listed = sandbox
        .berth(&dir, &["snapshot", "ls", "--json"])
        .success()
        .json();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    sandbox
        .berth(&dir, &["snapshot", "save", "third"])
        .success();
    assert!(!snapshots.join(".partial-ghost-999999999").exists());

    // --from: an unknown source reserves nothing; an instance cannot start from itself.
    let other = sandbox.project("other", &config);
    let ledger_before = sandbox.ledger();
    let unknown = sandbox.berth(&other, &["up", "--from", "nosuch"]);
    assert!(
        unknown
            .code(2)
            .stderr
            .contains("no instance or snapshot named `nosuch`")
    );
    assert_eq!(sandbox.ledger(), ledger_before);
    let itself = sandbox
        .berth(&dir, &["up", "--from", "instance:files"])
        .code(2);
    assert!(itself.stderr.contains("its own data"), "{}", itself.stderr);
    // From a stopped instance: its data, and setup counts as done in the copy.
    sandbox.berth(&other, &["up", "--from", "files"]).success();
    let copied = other.join(".berth/other/data");
    assert_eq!(
        std::fs::read_to_string(copied.join("notes/b.txt")).unwrap(),
        "kept"
    );
    assert!(other.join(".berth/other/setup/writer.done").is_file());
    let status = sandbox.berth(&dir, &["status", "--json"]).success().json();
    assert_eq!(
        status["state"], "stopped",
        "the stopped source stays stopped"
    );
}

/// A compose PostgreSQL marked `shared = true`: one container and one volume for the
/// project, each instance with its own database on it; the container goes with the last
/// instance and the volume stays.
#[test]
fn shared_compose_postgres_serves_every_instance() {
    if !support::docker::available("shared_compose_postgres_serves_every_instance")
        || server_bin("shared_compose_postgres_serves_every_instance").is_none()
    {
        return;
    }
    postgres::ensure_image();
    let mut sandbox = Sandbox::new();
    sandbox.compose = Some(support::docker::compose_tools()[0].to_string());
    let psql = "PGPASSWORD=secret psql -h 127.0.0.1 -p {{ port.db.5432 }} -U app -d shop -v ON_ERROR_STOP=1";
    let berth_toml = r#"[project]
name = "cshared"

[services.db]
shared = true
database = { kind = "postgres", name = "app_{{ instance.index }}" }

[services.db.per_instance]
create = '''sh -c 'PSQL -c "CREATE DATABASE app_{{ instance.index }}"' '''
drop = '''sh -c 'PSQL -c "DROP DATABASE IF EXISTS app_{{ instance.index }}"' '''

[services.api]
command = "HELPER print-env DATABASE_URL"
env = { DATABASE_URL = "postgres://app@127.0.0.1:{{ port.db.5432 }}/app_{{ instance.index }}" }
depends_on = ["db"]
ready = { log = "DATABASE_URL=" }
"#
    .replace("PSQL", psql)
    .replace("HELPER", &support::helper());
    let compose = compose_postgres(17400);
    let files = [
        ("berth.toml", berth_toml.as_str()),
        ("compose.yaml", compose.as_str()),
    ];
    let dirs: Vec<_> = ["cs-a", "cs-b"]
        .iter()
        .map(|name| sandbox.project_files(name, &files))
        .collect();
    up_all_at_once(&sandbox, &dirs);
    assert_eq!(
        support::docker::containers_of("cshared-shared").len(),
        1,
        "one database container for the project"
    );
    for name in ["cs-a", "cs-b"] {
        assert!(
            support::docker::containers_of(name).is_empty(),
            "{name} runs no database container of its own"
        );
    }
    for (dir, name) in dirs.iter().zip(["cs-a", "cs-b"]) {
        let index = sandbox.berth(dir, &["status", "--json"]).success().json()["index"]
            .as_u64()
            .unwrap();
        // User and password come from the Compose file's POSTGRES_* variables.
        assert_eq!(
            sql(
                &sandbox,
                dir,
                name,
                "select current_user || ' ' || current_database()"
            ),
            format!("app app_{index}")
        );
        sql(
            &sandbox,
            dir,
            name,
            &format!(
                "create table only_{name_}(x int)",
                name_ = name.replace('-', "_")
            ),
        );
    }
    let tables = |dir: &Path, name: &str| {
        sql(
            &sandbox,
            dir,
            name,
            "select string_agg(tablename, ',') from pg_tables where tablename like 'only_%'",
        )
    };
    assert_eq!(tables(&dirs[0], "cs-a"), "only_cs_a");
    assert_eq!(tables(&dirs[1], "cs-b"), "only_cs_b");
    assert_eq!(
        sql(
            &sandbox,
            &dirs[0],
            "cshared-shared",
            "select current_database()"
        ),
        "shop",
        "the shared server's own db commands use its default database"
    );

    sandbox.berth(&dirs[1], &["rm", "--yes"]).success();
    let databases = sql(
        &sandbox,
        &dirs[0],
        "cs-a",
        "select string_agg(datname, ',') from pg_database where datname like 'app_%'",
    );
    assert_eq!(
        databases.split(',').count(),
        1,
        "cs-b's database is dropped: {databases}"
    );
    let down = sandbox.berth(&dirs[0], &["down"]).success();
    assert!(
        down.stderr.contains("stopped the shared instance"),
        "{}",
        down.stderr
    );
    assert!(support::docker::containers_of("cshared-shared").is_empty());
    assert!(
        support::docker::volume_exists("cshared-shared_pgdata"),
        "the shared data stays"
    );
    sandbox.berth(&dirs[0], &["up"]).success();
    assert_eq!(tables(&dirs[0], "cs-a"), "only_cs_a");
    sandbox.berth(&dirs[0], &["rm", "--yes"]).success();
    sandbox
        .berth(&dirs[0], &["--name", "cshared-shared", "rm", "--yes"])
        .success();
    assert!(!support::docker::volume_exists("cshared-shared_pgdata"));
}

/// `berth snapshot save` killed at any moment: no half-written snapshot is ever listed,
/// the data is untouched, and `berth up` brings the (possibly stopped) instance back.
#[test]
fn a_killed_snapshot_save_leaves_no_partial_snapshot_and_no_damage() {
    let sandbox = Sandbox::new();
    let config = format!(
        "[project]\nname = \"killsave\"\n\n[services.writer]\ncommand = \"{helper} sleep\"\nenv = {{ STORE = \"{{{{ instance.data }}}}/blob\" }}\n",
        helper = support::helper()
    );
    let dir = sandbox.project("killsave", &config);
    sandbox.berth(&dir, &["up"]).success();
    let data = dir.join(".berth/killsave/data");
    let blob: Vec<u8> = (0..48 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    std::fs::create_dir_all(data.join("blob")).unwrap();
    std::fs::write(data.join("blob/bytes"), &blob).unwrap();
    for (round, delay) in [0u64, 30, 80, 150, 300, 600].into_iter().enumerate() {
        let name = format!("k{round}");
        let mut child = sandbox
            .command(&dir, &["snapshot", "save", &name])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay));
        let _ = child.kill();
        let _ = child.wait();
        let listed = sandbox
            .berth(&dir, &["snapshot", "ls", "--json"])
            .success()
            .json();
        for manifest in listed.as_array().unwrap() {
            let tar = sandbox
                .home()
                .join("snapshots/killsave")
                .join(manifest["name"].as_str().unwrap())
                .join("data.tar");
            assert_eq!(
                std::fs::metadata(&tar).unwrap().len(),
                manifest["data"]["bytes"].as_u64().unwrap(),
                "a listed snapshot is whole"
            );
        }
        sandbox.berth(&dir, &["up"]).success();
        assert_eq!(
            std::fs::read(data.join("blob/bytes")).unwrap(),
            blob,
            "round {round}"
        );
    }
    // Whatever was listed restores to the same bytes; the partial ones were swept.
    sandbox.berth(&dir, &["snapshot", "save", "last"]).success();
    let leftovers: Vec<String> = std::fs::read_dir(sandbox.home().join("snapshots/killsave"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    std::fs::write(data.join("blob/bytes"), b"changed").unwrap();
    sandbox
        .berth(&dir, &["snapshot", "restore", "last", "--force"])
        .success();
    assert_eq!(std::fs::read(data.join("blob/bytes")).unwrap(), blob);
}

/// In a git repository, the shared instance (and its data) lives in the main work tree's
/// copy of the project, even when a linked worktree needs it first: removing that
/// worktree never takes the shared data with it.
#[test]
fn the_shared_instance_lives_in_the_main_work_tree() {
    let sandbox = Sandbox::new();
    let config = format!(
        r#"[project]
name = "gitshared"

[services.cache]
command = "{helper} serve"
port = 17500
shared = true

[services.app]
command = "{helper} sleep"
depends_on = ["cache"]
"#,
        helper = support::helper()
    );
    let main = sandbox.project("gs-main", &config);
    support::git(&main, &["init", "-q", "-b", "main"]);
    support::git(&main, &["add", "berth.toml"]);
    support::git(&main, &["commit", "-q", "-m", "berth"]);
    let feature = sandbox.dir.path().join("gs-feat");
    support::git(
        &main,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "feat",
            feature.to_str().unwrap(),
        ],
    );
    let feature = feature.canonicalize().unwrap();
    sandbox.berth(&feature, &["up"]).success();
    let ledger = sandbox.ledger();
    let shared = ledger["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["name"] == "gitshared-shared")
        .unwrap()
        .clone();
    assert_eq!(shared["root"], main.display().to_string());
    assert!(main.join(".berth/gitshared-shared/instance.json").is_file());
    assert!(support::accepts(17500));

    sandbox.berth(&feature, &["rm", "--yes"]).success();
    support::git(
        &main,
        &["worktree", "remove", "--force", feature.to_str().unwrap()],
    );
    sandbox.berth(&main, &["up"]).success();
    let status = sandbox
        .berth(&main, &["--name", "gitshared-shared", "status", "--json"])
        .success()
        .json();
    assert_eq!(status["root"], main.display().to_string());
}

/// `berth db` picks the one database, or asks which; a database needs a port.
#[test]
fn db_names_its_choices_and_needs_a_port() {
    let sandbox = Sandbox::new();
    let helper = support::helper();
    let service = |name: &str, port: u16| {
        format!(
            "[services.{name}]\ncommand = \"{helper} sleep\"\nport = {port}\nready = {{ log = \"helper sleep\" }}\ndatabase = \"postgres\"\n"
        )
    };
    let config = format!(
        "[project]\nname = \"dbmix\"\n\n{}{}[services.web]\ncommand = \"{helper} sleep\"\n",
        service("main", 17600),
        service("audit", 17601)
    );
    let dir = sandbox.project("dbmix", &config);
    sandbox.berth(&dir, &["up"]).success();
    let several = sandbox.berth(&dir, &["db", "shell"]).code(2);
    assert!(
        several.stderr.contains("several databases: main, audit")
            && several.stderr.contains("--service"),
        "{}",
        several.stderr
    );
    let none = sandbox
        .berth(&dir, &["db", "--service", "web", "dump"])
        .code(2);
    assert!(
        none.stderr
            .contains("`web` of `dbmix` declares no database"),
        "{}",
        none.stderr
    );
    sandbox.berth(&dir, &["down"]).success();
    let stopped = sandbox
        .berth(&dir, &["db", "--service", "main", "dump"])
        .code(1);
    assert!(
        stopped.stderr.contains("is not running"),
        "{}",
        stopped.stderr
    );

    let portless = sandbox.project(
        "portless",
        &format!("[services.db]\ncommand = \"{helper} sleep\"\ndatabase = \"postgres\"\n"),
    );
    let error = sandbox.berth(&portless, &["up"]).code(2);
    assert!(
        error.stderr.contains("no port for `berth db`"),
        "{}",
        error.stderr
    );
}

/// `berth new --from DUMP`: a new worktree's instance starts with the database a stored
/// dump of main holds (ports 17700 and 17710).
#[test]
fn new_loads_a_stored_dump_into_a_new_worktree() {
    let Some(bin) = server_bin("new_loads_a_stored_dump_into_a_new_worktree") else {
        return;
    };
    let sandbox = Sandbox::new();
    let main = sandbox.project("shop", &config(&bin, 17700));
    support::git(&main, &["init", "-q", "-b", "main"]);
    support::git(&main, &["add", "-A"]);
    support::git(&main, &["commit", "-qm", "a database"]);
    sandbox.berth(&main, &["up"]).success();
    sql(&sandbox, &main, "shop", "create table orders(id int)");
    sql(
        &sandbox,
        &main,
        "shop",
        "insert into orders values (1), (2)",
    );
    sandbox.berth(&main, &["db", "dump"]).success();
    let stored = sandbox
        .berth(&main, &["db", "dumps", "--json"])
        .success()
        .json();
    let name = stored[0]["name"].as_str().unwrap().to_string();

    let created = sandbox
        .berth(&main, &["new", "feature", "--from", &name, "--json"])
        .success()
        .json();
    assert_eq!(created["restored"], stored[0]["file"], "{created}");
    let tree = main.with_file_name("shop-feature");
    assert_eq!(
        sql(&sandbox, &tree, "feature", "select count(*) from orders"),
        "2"
    );
    // The worktree's database is its own.
    sql(&sandbox, &tree, "feature", "insert into orders values (3)");
    assert_eq!(
        sql(&sandbox, &main, "shop", "select count(*) from orders"),
        "2"
    );
    sandbox
        .berth(&tree, &["rm", "--worktree", "--yes"])
        .success();
    sandbox.berth(&main, &["rm", "--yes"]).success();
    let kept = sandbox
        .berth(&main, &["db", "dumps", "--json"])
        .success()
        .json();
    assert_eq!(kept, stored, "stored dumps outlive both instances");
}
