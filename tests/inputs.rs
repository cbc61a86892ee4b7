//! End-to-end: hostile inputs in the work tree and on the command line are refused with a
//! clear, located error (exit 2), never a hang, a runaway read, a wrapped number or a
//! write through a planted symlink.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::*;

/// A project whose one service takes an auto port, plus `extra` configuration.
fn project(sandbox: &Sandbox, name: &str, extra: &str) -> PathBuf {
    let config = format!(
        "[services.web]\ncommand = \"{} serve --port {{{{ port.web }}}}\"\nport = \"auto\"\n{extra}",
        helper()
    );
    sandbox.project(name, &config)
}

/// Runs berth and fails the test if it has not finished within `limit` (it is killed).
fn berth_within(sandbox: &Sandbox, dir: &Path, args: &[&str], limit: Duration) -> Run {
    let mut child = sandbox
        .command(dir, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run berth");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "berth {args:?} hung for {limit:?}\nstderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Run::from_output(child.wait_with_output().expect("output"))
}

/// An executable shell script standing in for the Compose tool.
fn fake_compose(sandbox: &Sandbox, name: &str, body: &str) -> String {
    let path = sandbox.dir.path().join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
}

fn ledger_text(sandbox: &Sandbox) -> String {
    std::fs::read_to_string(sandbox.home().join("ledger.json")).unwrap_or_default()
}

#[test]
fn fifos_devices_and_huge_files_are_refused_by_name_never_read() {
    let sandbox = Sandbox::new();
    let limit = Duration::from_secs(20);
    let env_file = "\n[[env_files]]\nsource = \".env\"\ntarget = \".env.local\"\n";

    let root = project(&sandbox, "fifo-env", env_file);
    mkfifo(&root.join(".env"));
    let run = berth_within(&sandbox, &root, &["up"], limit).code(2);
    assert!(
        run.shows_config_error("berth.toml:6:10: cannot read env file: `")
            && run
                .stderr
                .contains("/fifo-env/.env` is a FIFO, not a regular file"),
        "{}",
        run.stderr
    );

    let root = project(&sandbox, "zero-env", env_file);
    std::os::unix::fs::symlink("/dev/zero", root.join(".env")).unwrap();
    let run = berth_within(&sandbox, &root, &["up"], limit).code(2);
    assert!(
        run.stderr
            .contains("/zero-env/.env` is a character device, not a regular file"),
        "{}",
        run.stderr
    );

    let root = project(&sandbox, "huge-env", env_file);
    std::fs::write(root.join(".env"), "A=1\n".repeat(2 * 1024 * 1024)).unwrap();
    let run = berth_within(&sandbox, &root, &["up"], limit).code(2);
    assert!(
        run.stderr.contains("/huge-env/.env` is larger than 4 MiB"),
        "{}",
        run.stderr
    );

    // A service's own env_file, read at `up`.
    let root = sandbox.project(
        "fifo-service-env",
        &format!(
            "[services.web]\ncommand = \"{} serve\"\nenv_file = \"web.env\"\n",
            helper()
        ),
    );
    mkfifo(&root.join("web.env"));
    let run = berth_within(&sandbox, &root, &["up"], limit).code(2);
    assert!(
        run.stderr
            .contains("/web.env` is a FIFO, not a regular file"),
        "{}",
        run.stderr
    );
    let _ = berth_within(&sandbox, &root, &["rm", "--yes"], limit);

    // berth.toml itself.
    let root = sandbox.dir.path().join("fifo-config");
    std::fs::create_dir_all(&root).unwrap();
    mkfifo(&root.join("berth.toml"));
    let run = berth_within(&sandbox, &root, &["up"], limit).code(2);
    assert!(
        run.stderr.contains("/fifo-config/berth.toml` is a FIFO"),
        "{}",
        run.stderr
    );
    let root = sandbox.project("huge-config", &"# padding\n".repeat(500_000));
    let run = berth_within(&sandbox, &root, &["up"], limit).code(2);
    assert!(
        run.stderr
            .contains("/huge-config/berth.toml` is larger than 4 MiB"),
        "{}",
        run.stderr
    );

    // The `.env` the Compose tool would read is refused before the tool runs.
    let mut sandbox = sandbox;
    let ran = sandbox.dir.path().join("compose-ran");
    sandbox.compose = Some(fake_compose(
        &sandbox,
        "fake-compose",
        &format!("touch '{}'", ran.display()),
    ));
    let root = sandbox.project_files("fifo-compose", &[("compose.yml", "services: {}\n")]);
    mkfifo(&root.join(".env"));
    let run = berth_within(&sandbox, &root, &["up"], limit).code(2);
    assert!(
        run.stderr.contains("/fifo-compose/.env` is a FIFO"),
        "{}",
        run.stderr
    );
    assert!(!ran.exists(), "the Compose tool never ran");
    assert!(
        !ledger_text(&sandbox).contains("fifo-compose"),
        "nothing was reserved"
    );
}

#[test]
fn a_symlinked_or_misplaced_berth_directory_is_refused_before_anything_is_written() {
    let sandbox = Sandbox::new();
    let elsewhere = sandbox.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();

    let root = project(&sandbox, "linked", "");
    std::os::unix::fs::symlink(&elsewhere, root.join(".berth")).unwrap();
    let run = sandbox.berth(&root, &["up"]).code(2);
    let expected = format!(
        "error: `{}` is a symlink: berth keeps each instance's state, logs and control socket in a directory there, and never follows a link\nhint: remove `{}`; berth creates the directory itself\n",
        root.join(".berth").display(),
        root.join(".berth").display()
    );
    assert_eq!(run.stderr, expected);
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);

    // The instance's own directory, linked inside a real `.berth/`.
    let root = project(&sandbox, "inner", "");
    std::fs::create_dir_all(root.join(".berth")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, root.join(".berth/inner")).unwrap();
    let run = sandbox.berth(&root, &["up"]).code(2);
    assert!(
        run.stderr.contains(&format!(
            "`{}` is a symlink",
            root.join(".berth/inner").display()
        )),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);

    let root = project(&sandbox, "file", "");
    std::fs::write(root.join(".berth"), "not a directory\n").unwrap();
    let run = sandbox.berth(&root, &["up"]).code(2);
    assert!(
        run.stderr.contains("/file/.berth` is not a directory"),
        "{}",
        run.stderr
    );
    assert_eq!(
        ledger_text(&sandbox),
        "",
        "nothing was reserved in the ledger"
    );
}

#[test]
fn configuration_errors_are_located_and_in_plain_words() {
    let sandbox = Sandbox::new();
    let cases: &[(&[u8], &str)] = &[
        (
            b"[services.a]\ncommand = \"caf\xe9\"\n",
            "berth.toml:2:15: this byte is not valid UTF-8: berth.toml must be UTF-8 text",
        ),
        (
            b"[services.a]\ncommand = \"x\"\nport = [1]\n",
            "berth.toml:3:8: `port` must be a port number (1024 to 65535) or \"auto\"",
        ),
        (
            b"[services.a]\ncommand = 5\n",
            "berth.toml:2:11: `command` must be a command line (a string) or its words (an array of strings)",
        ),
        (
            b"[ports]\nstride = \"x\"\n",
            "berth.toml:2:10: `stride` must be an integer, not the string \"x\"",
        ),
        (
            b"[services.a]\ncommand = \"x\"\nready = \"tcp\"\n",
            "berth.toml:3:9: `ready` must be a table with one of `tcp`, `http`, `exec` or `log`, such as `{ tcp = true }`, not the string \"tcp\"",
        ),
        (
            b"[services.a]\ncommand = \"x\"\ndepends_on = \"b\"\n",
            "berth.toml:3:14: `depends_on` must be an array, not the string \"b\"",
        ),
        (
            b"[services.a]\ncommand = \"x\"\ndatabase = 5\n",
            "berth.toml:3:12: `database` must be \"postgres\" or a table",
        ),
        (
            b"[services.a]\ncommand = \"run\\u0000 me\"\n",
            "berth.toml:2:15: a NUL character (`\\u0000`) cannot be part of a command, path or variable",
        ),
        (
            b"[services.a]\ncommand = \"x\"\nenv = { A = \"\\u0000\" }\n",
            "berth.toml:3:14: a NUL character",
        ),
        (
            b"[services.a]\ncommand = \"x\"\ncwd = \"no-such-dir\"\n",
            "berth.toml:3:7: `cwd` `no-such-dir` does not exist",
        ),
        (
            b"[services.a]\ncommand = \"x\"\ncwd = \"berth.toml\"\n",
            "berth.toml:3:7: `cwd` `berth.toml` is not a directory",
        ),
    ];
    for (index, (config, expected)) in cases.iter().enumerate() {
        let root = sandbox.dir.path().join(format!("case{index}"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("berth.toml"), config).unwrap();
        let run = sandbox.berth(&root, &["up"]).code(2);
        let shown = String::from_utf8_lossy(config);
        assert!(run.shows_config_error(expected), "{shown}\n{}", run.stderr);
        assert!(
            run.stderr.starts_with("error: ") && run.stderr.contains("\nhint: "),
            "{}",
            run.stderr
        );
        for jargon in ["untagged", "enum", "Raw", "i64", "struct", "sequence"] {
            assert!(!run.stderr.contains(jargon), "{jargon}: {}", run.stderr);
        }
        assert!(
            !root.join(".berth").exists(),
            "a config error writes nothing"
        );
    }
    assert_eq!(ledger_text(&sandbox), "");
}

#[test]
fn offsets_and_indexes_that_would_wrap_are_usage_errors() {
    let sandbox = Sandbox::new();
    // A base port is needed for an offset to matter; nothing ever binds it here.
    let root = sandbox.project(
        "wrap",
        &format!(
            "[services.web]\ncommand = \"{} serve --port {{{{ port.web }}}}\"\nport = 23456\n",
            helper()
        ),
    );
    for args in [
        ["up", "--port-offset", "4294967295"],
        ["--instance", "4294967295", "up"],
    ] {
        let run = sandbox.berth(&root, &args).code(2);
        assert!(
            run.stderr.contains("4294967295 is not in 0..=65535"),
            "{args:?}: {}",
            run.stderr
        );
    }
    // In range, but the port it gives is not.
    let run = sandbox.berth(&root, &["--instance", "650", "up"]).code(2);
    assert!(
        run.stderr
            .contains("port 23456 of `web` plus offset 65000 is 88456, outside 1024-65535"),
        "{}",
        run.stderr
    );
    let run = sandbox
        .berth(&root, &["up", "--port-offset", "65535"])
        .code(2);
    assert!(
        run.stderr.contains("is 88991, outside 1024-65535"),
        "{}",
        run.stderr
    );
    let ledger = ledger_text(&sandbox);
    assert!(
        !ledger.contains("\"wrap\""),
        "nothing stays reserved: {ledger}"
    );
}

#[test]
fn dash_c_takes_a_directory_and_a_relative_berth_home_is_one_ledger() {
    let sandbox = Sandbox::new();
    let first = project(&sandbox, "first", "");
    let second = project(&sandbox, "second", "");
    let dash_c = |directory: &Path| {
        let output = std::process::Command::new(berth_exe())
            .arg("-C")
            .arg(directory)
            .arg("ls")
            .env("BERTH_HOME", sandbox.home())
            .output()
            .unwrap();
        Run::from_output(output)
    };
    let run = dash_c(&first.join("berth.toml")).code(2);
    assert_eq!(
        run.stderr,
        format!(
            "error: `-C` takes a directory, and `{}` is not one\nhint: pass the project's directory, such as `-C path/to/project`\n",
            first.join("berth.toml").display()
        )
    );
    let run = dash_c(&first.join("no-such-dir")).code(2);
    assert!(
        run.stderr.contains("no-such-dir`: No such file"),
        "{}",
        run.stderr
    );

    // `BERTH_HOME=berth-home`, relative to where berth starts: the sandbox's own home,
    // whichever `-C` directory each command names.
    for root in [&first, &second] {
        let output = sandbox
            .command(root, &["up"])
            .env("BERTH_HOME", "berth-home")
            .current_dir(sandbox.dir.path())
            .output()
            .unwrap();
        Run::from_output(output).success();
        assert!(!root.join("berth-home").exists());
    }
    // And so do the processes berth starts, whatever their directory.
    let output = sandbox
        .command(&first, &["exec", "web", "--", "printenv", "BERTH_HOME"])
        .env("BERTH_HOME", "berth-home")
        .current_dir(sandbox.dir.path())
        .output()
        .unwrap();
    let run = Run::from_output(output).success();
    assert_eq!(run.stdout.trim(), sandbox.home().display().to_string());
    let names: Vec<String> = sandbox.ledger()["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["first", "second"]);
}

#[test]
fn compose_config_is_stopped_when_it_hangs_or_floods_and_dies_with_berth() {
    let mut sandbox = Sandbox::new();
    let root = sandbox.project_files("slow", &[("compose.yml", "services: {}\n")]);
    let marker = |case: u32| format!("{}{case}", 7_000_000 + std::process::id());

    // It hangs, with a child of its own: both are stopped at the deadline.
    let hang = marker(1);
    sandbox.compose = Some(fake_compose(
        &sandbox,
        "hang",
        &format!("sleep {hang} & wait"),
    ));
    let run = sandbox
        .command(&root, &["up"])
        .env("BERTH_COMPOSE_CONFIG_TIMEOUT_MS", "300")
        .output()
        .unwrap();
    let run = Run::from_output(run).code(2);
    assert!(
        run.stderr
            .contains("config` did not finish within 0.3 s, so berth stopped it"),
        "{}",
        run.stderr
    );
    wait_for(
        "the hung tool's child to be gone",
        Duration::from_secs(5),
        || pids_matching(&hang).is_empty(),
    );

    // It prints without end.
    sandbox.compose = Some(fake_compose(&sandbox, "flood", "exec yes"));
    let run = berth_within(&sandbox, &root, &["up"], Duration::from_secs(60)).code(2);
    assert!(
        run.stderr
            .contains("config` printed more than 16 MiB, so berth stopped it"),
        "{}",
        run.stderr
    );

    // berth is killed while it waits: the tool dies with it.
    let spin = marker(2);
    sandbox.compose = Some(fake_compose(
        &sandbox,
        "spin",
        &format!("exec sleep {spin}"),
    ));
    let mut child = sandbox
        .command(&root, &["up"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the tool to start", Duration::from_secs(10), || {
        !pids_matching(&spin).is_empty()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    wait_for("the tool to die with berth", Duration::from_secs(5), || {
        pids_matching(&spin).is_empty()
    });
}
