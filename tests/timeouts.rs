//! End-to-end: every external command berth runs has a deadline and dies with berth.
//! Stand-ins for the Compose tool, `pg_dump` and a `per_instance` command hang with a
//! child of their own (`sleep MARKER & wait`, so killing the script alone would leave the
//! `sleep`); berth must stop within the deadline set by its variable, say which command
//! and which variable, exit with the README's code, and leave no `sleep MARKER` behind,
//! also when berth itself is killed with SIGKILL while it waits.
//!
//! No fixed ports: every service takes an "auto" port.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::*;

/// A number no other process has on its command line, for `sleep` to carry.
fn marker(case: u32) -> String {
    format!("{}{case}", 6_000_000 + std::process::id())
}

/// Writes an executable shell script `name` into `dir`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// PATH with `dir` first, so a stand-in there wins over the real program.
fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Runs berth to its end; the run and how long it took. A berth still running after a
/// minute (no deadline at all) is killed and fails the test.
fn timed(mut command: std::process::Command) -> (Run, Duration) {
    let limit = Duration::from_secs(60);
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run berth");
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "berth hung for {limit:?}\nstderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = started.elapsed();
    (
        Run::from_output(child.wait_with_output().expect("output")),
        took,
    )
}

/// Waits until no process has `needle` on its command line.
#[track_caller]
fn assert_gone(needle: &str) {
    wait_for(
        &format!("no process with `{needle}` left"),
        Duration::from_secs(5),
        || pids_matching(needle).is_empty(),
    );
}

/// A process service with a database, for `berth db`.
fn database_project(sandbox: &Sandbox, name: &str) -> PathBuf {
    let config = format!(
        "[services.db]\ncommand = \"{} serve --port {{{{ port.db }}}}\"\nport = \"auto\"\ndatabase = \"postgres\"\n",
        helper()
    );
    sandbox.project(name, &config)
}

#[test]
fn a_hanging_compose_up_fails_up_within_its_deadline_and_leaves_nothing() {
    if !support::docker::available("timeouts::compose_up") {
        return;
    }
    let mut sandbox = Sandbox::new();
    let hang = marker(1);
    // `config` answers like the real tool; `up` hangs; the rest succeed.
    let tool = script(
        &sandbox.dir.path().join("bin"),
        "fake-compose",
        &format!(
            "case \" $* \" in\n\
             *\" config \"*) printf 'name: hang\\nservices:\\n  web:\\n    image: berth-never-pulled:1\\n' ;;\n\
             *\" up \"*) sleep {hang} & wait ;;\n\
             *) exit 0 ;;\n\
             esac"
        ),
    );
    sandbox.compose = Some(tool.display().to_string());
    let root = sandbox.project_files("hang", &[("compose.yml", "services: {}\n")]);
    let mut up = sandbox.command(&root, &["up", "--timeout", "60"]);
    up.env("BERTH_COMPOSE_TIMEOUT_MS", "1000");
    let (run, took) = timed(up);
    let run = run.code(4);
    assert!(
        run.stderr.contains(
            "up -d --remove-orphans` did not finish within 1 s, so berth stopped it \
             (BERTH_COMPOSE_TIMEOUT_MS allows more time)"
        ),
        "{}",
        run.stderr
    );
    // The deadline, the grace period and berth's own start-up; never the default 10 min.
    assert!(took < Duration::from_secs(20), "`up` took {took:?}");
    assert_gone(&hang);
    sandbox.berth(&root, &["down"]).success();
}

#[test]
fn a_hanging_compose_version_is_reported_by_doctor_within_its_deadline() {
    let mut sandbox = Sandbox::new();
    let hang = marker(2);
    let tool = script(
        &sandbox.dir.path().join("bin"),
        "fake-compose",
        &format!("sleep {hang} & wait"),
    );
    sandbox.compose = Some(tool.display().to_string());
    let empty = sandbox.project_files("empty", &[]);
    let mut doctor = sandbox.command(&empty, &["doctor"]);
    doctor.env("BERTH_DOCKER_TIMEOUT_MS", "500");
    let (run, took) = timed(doctor);
    let text = format!("{}{}", run.stdout, run.stderr);
    assert!(
        text.contains(
            "version` did not finish within 0.5 s, so berth stopped it (BERTH_DOCKER_TIMEOUT_MS allows more time)"
        ),
        "{text}"
    );
    assert!(took < Duration::from_secs(15), "`doctor` took {took:?}");
    assert_gone(&hang);
}

#[test]
fn a_hanging_pg_dump_is_stopped_at_its_deadline_and_dies_with_a_killed_berth() {
    let sandbox = Sandbox::new();
    let root = database_project(&sandbox, "dump");
    sandbox.berth(&root, &["up"]).success();
    let bin = sandbox.dir.path().join("bin");
    let hang = marker(3);
    script(&bin, "pg_dump", &format!("sleep {hang} & wait"));

    // The deadline: exit 1, the command and the variable named, no partial file.
    let mut dump = sandbox.command(&root, &["db", "dump", "out.sql"]);
    dump.env("PATH", path_with(&bin))
        .env("BERTH_DATA_TIMEOUT_MS", "700");
    let (run, took) = timed(dump);
    let run = run.code(1);
    assert!(
        run.stderr.contains(
            "error: `pg_dump` did not finish within 0.7 s, so berth stopped it \
             (BERTH_DATA_TIMEOUT_MS allows more time)"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hint: ") && run.stderr.contains("BERTH_DATA_TIMEOUT_MS=MILLISECONDS"),
        "{}",
        run.stderr
    );
    assert!(took < Duration::from_secs(15), "`db dump` took {took:?}");
    assert_gone(&hang);
    let left: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("out.sql"))
        .collect();
    assert!(left.is_empty(), "a dump that timed out left {left:?}");

    // berth is SIGKILLed while it waits (no deadline reached): the script and its
    // `sleep` go with it.
    let hang = marker(4);
    script(&bin, "pg_dump", &format!("sleep {hang} & wait"));
    let mut dump = sandbox.command(&root, &["db", "dump", "out.sql"]);
    let mut berth = dump
        .env("PATH", path_with(&bin))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the stand-in to start", Duration::from_secs(10), || {
        !pids_matching(&hang).is_empty()
    });
    berth.kill().unwrap();
    berth.wait().unwrap();
    assert_gone(&hang);
    // Nothing of the stand-in is left either: no shell still running the script, and no
    // guard (a fork of berth, with berth's command line).
    assert_gone(&bin.join("pg_dump").display().to_string());
    assert_gone(&format!("{} db dump out.sql", root.display()));
    sandbox.berth(&root, &["down"]).success();
}

#[test]
fn an_interactive_command_has_no_deadline_but_dies_with_a_killed_berth() {
    let sandbox = Sandbox::new();
    let root = database_project(&sandbox, "interactive");
    sandbox.berth(&root, &["up"]).success();
    let wait = marker(5);
    let mut exec = sandbox.command(&root, &["exec", "db", "--", "sleep", &wait]);
    // Deadlines of every kind set short: none applies to an interactive command.
    for variable in [
        "BERTH_DATA_TIMEOUT_MS",
        "BERTH_DOCKER_TIMEOUT_MS",
        "BERTH_COMPOSE_TIMEOUT_MS",
        "BERTH_PER_INSTANCE_TIMEOUT_MS",
    ] {
        exec.env(variable, "100");
    }
    let mut berth = exec
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the command to start", Duration::from_secs(10), || {
        !pids_matching(&wait).is_empty()
    });
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        berth.try_wait().unwrap().is_none() && !pids_matching(&wait).is_empty(),
        "an interactive command was stopped by a deadline"
    );
    berth.kill().unwrap();
    berth.wait().unwrap();
    assert_gone(&wait);
    sandbox.berth(&root, &["down"]).success();
}

#[test]
fn a_hanging_per_instance_create_fails_up_within_its_deadline() {
    let sandbox = Sandbox::new();
    let hang = marker(6);
    let config = format!(
        "[services.db]\ncommand = \"{} serve --port {{{{ port.db }}}}\"\nport = \"auto\"\nshared = true\n\n\
         [services.db.per_instance]\ncreate = \"sh -c 'sleep {hang} & wait'\"\n",
        helper()
    );
    let root = sandbox.project("tenant", &config);
    let mut up = sandbox.command(&root, &["up"]);
    up.env("BERTH_PER_INSTANCE_TIMEOUT_MS", "800");
    let (run, took) = timed(up);
    let run = run.code(4);
    assert!(
        run.stderr.contains(&format!(
            "`sh -c sleep {hang} & wait` did not finish within 0.8 s, so berth stopped it \
             (BERTH_PER_INSTANCE_TIMEOUT_MS allows more time)"
        )),
        "{}",
        run.stderr
    );
    assert!(took < Duration::from_secs(20), "`up` took {took:?}");
    assert_gone(&hang);
}
