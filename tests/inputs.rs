//! End-to-end: hostile inputs in the work tree and on the command line are refused with a
//! clear, located error (exit 2), never a hang, a runaway read, a wrapped number or a
//! write through a planted symlink.

mod support;

use std::path::{Path, PathBuf};

use support::*;

/// A project whose one service takes an auto port, plus `extra` configuration.
fn project(sandbox: &Sandbox, name: &str, extra: &str) -> PathBuf {
    let config = format!(
        "[services.web]\ncommand = \"{} serve --port {{{{ port.web }}}}\"\nport = \"auto\"\n{extra}",
        helper()
    );
    sandbox.project(name, &config)
}

fn ledger_text(sandbox: &Sandbox) -> String {
    std::fs::read_to_string(sandbox.home().join("ledger.json")).unwrap_or_default()
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
