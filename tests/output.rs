//! How berth's output reads: data on stdout, notes on stderr; `--quiet` drops the notes
//! and keeps data and errors; on a terminal, a spinner while `up` waits and colour on
//! the labels unless `NO_COLOR` is set; piped, neither. Ports 16000-16099.

mod support;

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use support::*;

/// A web server that takes a moment to start, so `up` waits for it.
const SLOW_WEB: &str = r#"[services.web]
command = "sh -c 'sleep 1.5; exec python3 -m http.server $PORT --bind 127.0.0.1'"
port = 16000
ready = { http = "/" }
"#;

const BASE_TAKEN: &str = "note: base ports are taken";

#[test]
fn quiet_drops_notes_and_keeps_data_and_errors() {
    let sandbox = Sandbox::new();
    let root = sandbox.project("quiet", SLOW_WEB);
    // Held by this test: `up` moves to another offset and says so in a note.
    let _held = TcpListener::bind("127.0.0.1:16000").expect("port 16000 is free");

    let noisy = sandbox.berth(&root, &["up"]).success();
    assert!(noisy.stderr.contains(BASE_TAKEN), "{}", noisy.stderr);
    assert!(noisy.stdout.contains("web      ready"), "{}", noisy.stdout);
    sandbox.berth(&root, &["rm", "--yes"]).success();

    let quiet = sandbox.berth(&root, &["--quiet", "up"]).success();
    assert_eq!(quiet.stderr, "", "--quiet prints no notes");
    assert!(quiet.stdout.contains("web      ready"), "{}", quiet.stdout);
    let down = sandbox.berth(&root, &["-q", "down"]).success();
    assert_eq!(down.stdout, "");
    assert_eq!(down.stderr, "", "the `stopped` line is left out too");
    let json = sandbox.berth(&root, &["-q", "--json", "down"]).success();
    assert_eq!(json.json()["state"], "stopped");

    // An error is never quiet.
    let error = sandbox
        .berth(&root, &["-q", "restart", "nothing-here"])
        .code(2);
    assert!(error.stderr.starts_with("error: "), "{}", error.stderr);
    assert!(error.stderr.contains("hint: "), "{}", error.stderr);
}

/// What `berth ARGS` in `root` writes to a terminal, with `NO_COLOR` set or not.
fn on_a_terminal(sandbox: &Sandbox, root: &Path, args: &[&str], no_color: bool) -> String {
    let template = sandbox.command(root, args);
    let mut command = Command::new("python3");
    command
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pty_run.py"))
        .arg(berth_exe())
        .arg("-C")
        .arg(root)
        .args(args)
        .envs(
            template
                .get_envs()
                .filter_map(|(key, value)| Some((key, value?))),
        );
    if !no_color {
        command.env_remove("NO_COLOR");
    }
    let output = command.output().expect("python3 runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_terminal_shows_a_spinner_while_up_waits_and_colour_unless_no_color() {
    let sandbox = Sandbox::new();
    let root = sandbox.project("terminal", &SLOW_WEB.replace("16000", "16010"));
    let _held = TcpListener::bind("127.0.0.1:16010").expect("port 16010 is free");

    let shown = on_a_terminal(&sandbox, &root, &["up"], false);
    assert!(shown.ends_with("exit: 0\n"), "{shown}");
    assert!(
        shown.contains("waiting for the services to be ready"),
        "a spinner while up waits:\n{shown}"
    );
    assert!(shown.contains("web      ready"), "{shown}");
    assert!(
        shown.contains("\x1b[1mnote:\x1b[0m base ports are taken"),
        "a coloured label on a terminal:\n{shown:?}"
    );
    sandbox.berth(&root, &["rm", "--yes"]).success();

    let plain = on_a_terminal(&sandbox, &root, &["up"], true);
    assert!(plain.ends_with("exit: 0\n"), "{plain}");
    assert!(plain.contains(BASE_TAKEN), "{plain:?}");
    assert!(!plain.contains("\x1b[1m"), "NO_COLOR: no colour\n{plain:?}");
    assert!(
        plain.contains("waiting for the services to be ready"),
        "the spinner is not colour: it stays\n{plain}"
    );
    sandbox.berth(&root, &["down"]).success();

    // Piped, the same `up` writes neither a spinner nor an escape sequence.
    sandbox.berth(&root, &["rm", "--yes"]).success();
    let mut piped = sandbox.command(&root, &["up"]);
    piped.env_remove("NO_COLOR");
    let piped = Run::from_output(piped.output().expect("berth runs")).success();
    assert!(!piped.stderr.contains("waiting for"), "{}", piped.stderr);
    assert!(!piped.stderr.contains('\x1b'), "{:?}", piped.stderr);
    assert!(piped.stderr.contains(BASE_TAKEN), "{}", piped.stderr);
}
