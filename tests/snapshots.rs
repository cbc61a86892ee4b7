//! Snapshots of berth's human output: stdout, stderr and exit code of `up`, `status`,
//! `ls`, `down`, `rm`, `gc`, `doctor`, `init` and of the error layout for every exit code,
//! pinned with `insta` so that a refactor can show the output unchanged (issue 14).
//!
//! Each case is one string, `exit: N`, then stdout, then stderr, with filters for what
//! changes from run to run and machine to machine: the temp directory, BERTH_HOME, the
//! berth binary, PIDs, times, ports and interpreter paths. The filters keep the width of
//! table cells, so the snapshots show the columns as berth aligns them.
//!
//! Ports 19000-19999, one block per test (no other test file uses them, and they lie
//! below the `port = "auto"` range 20000-29999). Docker is kept out of every case by a
//! `DOCKER_HOST` that names a socket nobody listens on, so the output is the same on a
//! machine with or without an engine, and `gc` never touches another test's containers.
//! To accept new output: `INSTA_UPDATE=always cargo nextest run --test snapshots`, then
//! read every changed `tests/snapshots/*.snap`.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::*;

/// The width of the status table's PID/CONTAINER column when every cell holds a PID or
/// `-`: the heading's 13 characters and the two spaces between columns.
const PID_COLUMN: usize = 15;

/// One snapshot case: the exit code, stdout and stderr of a run, as one string.
fn case(run: &Run) -> String {
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        run.code, run.stdout, run.stderr
    )
}

/// The filters of every snapshot, in the order they apply (the most specific first).
fn filters(sandbox: &Sandbox) -> Vec<(String, String)> {
    let mut filters = Vec::new();
    let mut path = |path: &Path, token: &str| {
        let mut spellings = vec![path.display().to_string()];
        if let Ok(canonical) = path.canonicalize() {
            spellings.push(canonical.display().to_string());
        }
        spellings.dedup();
        for spelling in spellings {
            filters.push((regex::escape(&spelling), token.to_string()));
        }
    };
    path(&sandbox.home(), "[BERTH_HOME]");
    path(sandbox.dir.path(), "[TEMP]");
    path(&berth_exe(), "[BERTH]");
    // Hand-written patterns; none of them depends on the run.
    filters.extend(
        [
            // A listener this test process holds is named by the test binary's command line.
            (r"`[^`]*/snapshots-[0-9a-f]+[^`]*`", "`[TEST BINARY]`"),
            // `/usr/bin/python3`, `/root/.pyenv/versions/3.11.7/bin/python3.11`: `python3`.
            (r"/[^\s`()]*/python3(\.[0-9]+)?\b", "python3"),
            // `ls` STARTED and log separators; the placeholder keeps the column's width.
            (
                r"\b[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z",
                "YYYY-MM-DDTHH:MM:SSZ",
            ),
            (r"\bPID [0-9]+\b", "PID [PID]"),
        ]
        .map(|(pattern, replacement)| (pattern.to_string(), replacement.to_string())),
    );
    // A PID in the status table's PID/CONTAINER column, followed by the RESTARTS count:
    // the PID and its padding become `[PID]` and the same padding, whatever its length.
    let cells: Vec<String> = (1..=8)
        .map(|digits| format!("[0-9]{{{digits}}} {{{}}}", PID_COLUMN - digits))
        .collect();
    filters.push((
        format!(r"\b(?:{})([0-9]+)\b", cells.join("|")),
        format!("{:<PID_COLUMN$}${{1}}", "[PID]"),
    ));
    // This file's ports. One followed by a column gap gives a space back to the gap, so
    // the columns stay aligned; anywhere else it is simply `[PORT]`.
    filters.push((r"\b19[0-9]{3}  ".to_string(), "[PORT] ".to_string()));
    filters.push((r"\b19[0-9]{3}\b".to_string(), "[PORT]".to_string()));
    filters
}

/// Asserts the snapshot `name` of `run`, described by the command that made it.
fn snapshot(sandbox: &Sandbox, name: &str, command: &str, run: &Run) {
    let filters = filters(sandbox);
    let filters: Vec<(&str, &str)> = filters
        .iter()
        .map(|(pattern, replacement)| (pattern.as_str(), replacement.as_str()))
        .collect();
    insta::with_settings!({
        filters => filters,
        description => command,
        omit_expression => true,
    }, {
        insta::assert_snapshot!(name, case(run));
    });
}

/// The DOCKER_HOST of every case: a socket in the sandbox that nobody listens on.
fn no_docker(sandbox: &Sandbox) -> String {
    format!(
        "unix://{}",
        sandbox.dir.path().join("no-docker.sock").display()
    )
}

/// berth in `dir`, with no Docker engine.
fn berth_command(sandbox: &Sandbox, dir: &Path, args: &[&str]) -> Command {
    let mut command = sandbox.command(dir, args);
    command
        .env("DOCKER_HOST", no_docker(sandbox))
        .env_remove("DOCKER_CONTEXT");
    command
}

fn berth(sandbox: &Sandbox, dir: &Path, args: &[&str]) -> Run {
    Run::from_output(
        berth_command(sandbox, dir, args)
            .output()
            .expect("run berth"),
    )
}

/// Runs berth in `dir` and asserts the snapshot `name` of what it printed.
fn check(sandbox: &Sandbox, name: &str, dir: &Path, args: &[&str]) -> Run {
    let run = berth(sandbox, dir, args);
    snapshot(sandbox, name, &format!("berth {}", args.join(" ")), &run);
    run
}

/// `berth doctor`, with a Compose tool that is not there either: its `docker engine` and
/// `compose tool` rows then read the same on every machine.
fn check_doctor(sandbox: &Sandbox, name: &str, dir: &Path) -> Run {
    let run = Run::from_output(
        berth_command(sandbox, dir, &["doctor"])
            .env("BERTH_COMPOSE", "/nonexistent/compose")
            .output()
            .expect("run berth doctor"),
    );
    snapshot(
        sandbox,
        name,
        "BERTH_COMPOSE=/nonexistent/compose berth doctor",
        &run,
    );
    run
}

/// A web server that is ready once it answers HTTP, and a worker without a port.
fn web_and_worker(name: &str, port: u16, stride: u16) -> String {
    format!(
        r#"[project]
name = "{name}"

[ports]
stride = {stride}

[services.web]
command = "python3 -m http.server {{{{ port.web }}}} --bind 127.0.0.1"
port = {port}
ready = {{ http = "/" }}

[services.worker]
command = "sh -c 'while true; do sleep 5; done'"
"#
    )
}

/// One python3 web server on `port`, ready once it listens.
fn one_server(port: u16) -> String {
    format!(
        "[services.web]\ncommand = \"python3 -m http.server {{{{ port.web }}}} --bind 127.0.0.1\"\nport = {port}\n"
    )
}

/// `git` with a fixed identity and fixed dates, so that commits have the same hash on
/// every run and the GIT column needs no filter.
fn git_fixed(dir: &Path, args: &[&str]) {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
        .output()
        .expect("run git");
    assert!(output.status.success(), "git {args:?}: {output:?}");
}

fn supervisor_pid(sandbox: &Sandbox, dir: &Path) -> u32 {
    berth(sandbox, dir, &["status", "--json"]).success().json()["supervisor_pid"]
        .as_u64()
        .expect("a supervisor PID") as u32
}

fn no_supervisor_left(root: &Path) {
    wait_for("the supervisors to exit", Duration::from_secs(10), || {
        pids_matching(&format!("__supervise {}", root.display())).is_empty()
    });
}

/// Ports 19000 and 19010: two instances of one project, from `up` to `rm`.
#[test]
fn up_status_ls_down_rm_of_two_instances() {
    let sandbox = Sandbox::new();
    let root = sandbox.project("shop", &web_and_worker("shop", 19000, 10));
    git_fixed(&root, &["init", "-q", "-b", "main"]);
    git_fixed(&root, &["add", "berth.toml"]);
    git_fixed(&root, &["commit", "-qm", "shop"]);

    check(&sandbox, "status_before_up", &root, &["status"]);
    check(&sandbox, "up", &root, &["up"]);
    check(&sandbox, "up_again", &root, &["up"]);
    check(&sandbox, "status_running", &root, &["status"]);
    check(
        &sandbox,
        "up_second_instance",
        &root,
        &["--instance", "1", "up"],
    );
    check(&sandbox, "status_ambiguous", &root, &["status"]);
    check(&sandbox, "ls_two_running", &root, &["ls"]);
    check(
        &sandbox,
        "down_release",
        &root,
        &["--instance", "1", "down", "--release"],
    );
    check(&sandbox, "down", &root, &["--instance", "0", "down"]);
    check(&sandbox, "down_again", &root, &["--instance", "0", "down"]);
    check(
        &sandbox,
        "status_stopped",
        &root,
        &["--instance", "0", "status"],
    );
    check(&sandbox, "ls_stopped", &root, &["ls"]);
    check(&sandbox, "rm", &root, &["--instance", "1", "rm", "--yes"]);
    check(&sandbox, "rm_stopped_last", &root, &["rm", "--yes"]);
    check(&sandbox, "ls_empty", &root, &["ls"]);
    no_supervisor_left(&root);
}

/// Port 19100, held by this test, then 19110 (stride 10): doctor names the holder,
/// `--strict-ports` fails with exit 3, and a plain `up` moves to the next offset.
#[test]
fn a_held_port_doctor_exit_3_and_the_move_to_a_free_offset() {
    let sandbox = Sandbox::new();
    let root = sandbox.project(
        "held",
        "[ports]\nstride = 10\n\n[services.web]\ncommand = \"python3 -m http.server {{ port.web }} --bind 127.0.0.1\"\nport = 19100\n",
    );
    let listener = std::net::TcpListener::bind(("127.0.0.1", 19100)).expect("hold port 19100");

    check_doctor(&sandbox, "doctor_port_taken", &root);
    check(
        &sandbox,
        "error_exit_3_strict_ports",
        &root,
        &["up", "--strict-ports"],
    );
    check(&sandbox, "up_moves_to_a_free_offset", &root, &["up"]);
    check_doctor(&sandbox, "doctor_running", &root);
    check(&sandbox, "rm_running", &root, &["rm", "--yes"]);
    drop(listener);
    no_supervisor_left(&root);
}

/// Port 19200: doctor and ls on a corrupt ledger fail with exit 1.
#[test]
fn a_corrupt_ledger_exit_1() {
    let sandbox = Sandbox::new();
    let root = sandbox.project("corrupt", &one_server(19200));
    std::fs::create_dir_all(sandbox.home()).expect("BERTH_HOME");
    // Private, as berth makes it: the umask would decide the `state directory` row.
    std::fs::set_permissions(sandbox.home(), std::fs::Permissions::from_mode(0o700))
        .expect("chmod BERTH_HOME");
    std::fs::write(
        sandbox.home().join("ledger.json"),
        "{\"version\": 1, \"instances\": [",
    )
    .expect("ledger.json");

    check_doctor(&sandbox, "doctor_corrupt_ledger", &root);
    check(&sandbox, "error_exit_1_corrupt_ledger", &root, &["ls"]);
}

/// No ports: a BERTH_HOME below a regular file cannot be created (exit 1, with its cause).
#[test]
fn an_unusable_berth_home_exit_1() {
    let sandbox = Sandbox::new();
    let root = sandbox.project("homeless", &one_server(19250));
    std::fs::write(sandbox.dir.path().join("a-file"), "").expect("a file");
    let home = sandbox.dir.path().join("a-file").join("home");
    let run = Run::from_output(
        berth_command(&sandbox, &root, &["up"])
            .env("BERTH_HOME", &home)
            .output()
            .expect("run berth"),
    );
    snapshot(
        &sandbox,
        "error_exit_1_berth_home",
        "BERTH_HOME=[TEMP]/a-file/home berth up",
        &run,
    );
}

/// Port 19300: `gc` of a work tree deleted while its instance runs.
#[test]
fn gc_of_a_deleted_work_tree() {
    let sandbox = Sandbox::new();
    let gone = sandbox.project("gone", &one_server(19300));
    let other = sandbox.project("other", "[services.idle]\ncommand = \"sleep 600\"\n");
    berth(&sandbox, &gone, &["up"]).success();
    let supervisor = supervisor_pid(&sandbox, &gone);
    std::fs::remove_dir_all(&gone).expect("delete the work tree");

    check(&sandbox, "ls_root_gone", &other, &["ls"]);
    check(&sandbox, "gc_dry_run", &other, &["gc", "--dry-run"]);
    check(&sandbox, "gc", &other, &["gc"]);
    check(&sandbox, "gc_nothing_left", &other, &["gc"]);
    wait_for("the supervisor to exit", Duration::from_secs(10), || {
        !pid_alive(supervisor)
    });
}

/// Port 19400: the supervisor killed, `ls` reaps and says `crashed`, `status` tells why.
#[test]
fn a_killed_supervisor_in_ls_and_status() {
    let sandbox = Sandbox::new();
    let root = sandbox.project("crashing", &web_and_worker("crashing", 19400, 10));
    berth(&sandbox, &root, &["up"]).success();
    kill_and_wait(supervisor_pid(&sandbox, &root));

    check(&sandbox, "ls_crashed", &root, &["ls"]);
    check(&sandbox, "status_crashed", &root, &["status"]);
    check(&sandbox, "up_after_crash", &root, &["up"]);
    check(&sandbox, "down_after_crash", &root, &["down"]);
    no_supervisor_left(&root);
}

/// Port 19500: a one-shot task that exits 3 fails `up` with exit 4 and its last lines.
#[test]
fn a_failing_one_shot_exit_4() {
    let sandbox = Sandbox::new();
    let root = sandbox.project(
        "failing",
        r#"[services.migrate]
command = "sh -c 'echo applying; echo boom >&2; exit 3'"
restart = "never"

[services.web]
command = "python3 -m http.server {{ port.web }} --bind 127.0.0.1"
port = 19500
depends_on = ["migrate"]
"#,
    );
    check(&sandbox, "error_exit_4_one_shot_fails", &root, &["up"]);
    check(&sandbox, "status_after_failure", &root, &["status"]);
    check(&sandbox, "down_after_failure", &root, &["down"]);
    no_supervisor_left(&root);
}

/// Port 19510: a service whose port never listens fails `up --timeout 2` with exit 4.
#[test]
fn a_service_never_ready_exit_4() {
    let sandbox = Sandbox::new();
    let root = sandbox.project(
        "slow",
        "[services.slow]\ncommand = \"sh -c 'echo starting up; sleep 600'\"\nport = 19510\n",
    );
    check(
        &sandbox,
        "error_exit_4_never_ready",
        &root,
        &["up", "--timeout", "2"],
    );
    berth(&sandbox, &root, &["down"]).success();
    no_supervisor_left(&root);
}

/// No ports used: every kind of configuration error is located, with the offending text.
#[test]
fn configuration_errors_exit_2() {
    let sandbox = Sandbox::new();
    let cases = [
        (
            "error_exit_2_wrong_type",
            "[project]\nname = \"typo\"\n\n[services.web]\ncommand = \"python3 -m http.server\"\nport = \"eighty\"\n",
        ),
        (
            "error_exit_2_unknown_key",
            "[services.web]\ncommand = \"python3 -m http.server\"\nprot = 19600\n",
        ),
        (
            "error_exit_2_unknown_template",
            "[services.web]\ncommand = \"python3 -m http.server {{ port.db }}\"\nport = 19600\n",
        ),
        (
            "error_exit_2_toml_syntax",
            "[services.web\ncommand = \"python3 -m http.server\"\n",
        ),
        ("error_exit_2_no_services", "[project]\nname = \"empty\"\n"),
    ];
    for (name, config) in cases {
        let root = sandbox.project(name, config);
        check(&sandbox, name, &root, &["up"]);
    }
    let root = sandbox.project("flags", &one_server(19600));
    check(
        &sandbox,
        "error_exit_2_unknown_flag",
        &root,
        &["up", "--no-such-flag"],
    );
}

/// Ports 19700 and 19800 (the Procfile's 5000 and 5100 at offset 14700): `init` from a
/// Procfile, then `up`, as the README's tour does.
#[test]
fn init_from_a_procfile_then_up() {
    let sandbox = Sandbox::new();
    let dir = sandbox.project_files(
        "demo-procfile",
        &[
            (
                "Procfile",
                "release: sh -c \"echo migrated > .migrated\"\nweb: python3 -m http.server $PORT --bind 127.0.0.1\nworker: sh -c \"while true; do sleep 5; done\"\n",
            ),
            (".env", "GREETING=hello\n"),
        ],
    );
    check(&sandbox, "init_procfile", &dir, &["init"]);
    check(&sandbox, "error_exit_2_init_exists", &dir, &["init"]);
    check(
        &sandbox,
        "up_after_init",
        &dir,
        &["up", "--port-offset", "14700"],
    );
    check(&sandbox, "rm_after_init", &dir, &["rm", "--yes"]);
    no_supervisor_left(&dir);
}

/// No ports used: `init` from a Compose file whose `.env` points at a Compose port, and
/// in a directory with nothing to go by.
#[test]
fn init_from_compose_and_from_nothing() {
    let sandbox = Sandbox::new();
    let compose = sandbox.project_files(
        "demo-compose",
        &[
            (
                "compose.yml",
                "services:\n  db:\n    image: postgres:16\n    ports: [\"5432:5432\"]\n  web:\n    image: nginx\n    ports: [\"8080:80\"]\n",
            ),
            (".env", "DATABASE_URL=postgres://app@localhost:5432/app\n"),
        ],
    );
    check(&sandbox, "init_compose", &compose, &["init"]);
    let empty = sandbox.project_files("demo-empty", &[]);
    check(&sandbox, "init_empty", &empty, &["init"]);
}

/// Port 19900: a Compose service with DOCKER_HOST at a socket nobody listens on is
/// exit 5. Resolving the Compose file needs a Compose tool (not an engine).
#[test]
fn docker_unavailable_exit_5() {
    let mut sandbox = Sandbox::new();
    let tool = ["docker compose", "docker-compose"]
        .into_iter()
        .find(|tool| {
            let mut words = tool.split(' ');
            let program = words.next().expect("a program");
            Command::new(program)
                .args(words)
                .arg("version")
                .output()
                .is_ok_and(|output| output.status.success())
        });
    let Some(tool) = tool else {
        if std::env::var("BERTH_REQUIRE_DOCKER").as_deref() == Ok("1") {
            panic!("no Compose tool, and BERTH_REQUIRE_DOCKER=1 requires one");
        }
        eprintln!(
            "\n*** SKIPPED docker_unavailable_exit_5: no Compose tool (scripts/test-deps installs one) ***\n"
        );
        return;
    };
    sandbox.compose = Some(tool.to_string());
    let dir = sandbox.project_files(
        "boxed",
        &[(
            "compose.yml",
            "services:\n  web:\n    image: berth-snapshot-absent:1\n    ports: [\"19900:80\"]\n",
        )],
    );
    check(&sandbox, "error_exit_5_docker_unavailable", &dir, &["up"]);
}
