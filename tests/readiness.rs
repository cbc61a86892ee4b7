//! Readiness that tells the truth: a one-shot task gates its dependants until it exits 0
//! (a failure fails them, with the task's own last lines); `up` and `restart` after a
//! failure try again and report the new outcome; a compose service whose healthcheck
//! passes before its port listens is not ready yet. Ports 29600-29799.

mod support;

use std::time::{Duration, Instant};

use support::docker::{self, IMAGE};
use support::*;

/// A migration that takes a moment and succeeds only once `ok` exists, and a web server
/// that must not start before it is done.
const MIGRATE_THEN_WEB: &str = r#"[services.migrate]
command = "sh -c 'echo migrating; sleep 0.6; test -f ok && echo migrated > migrated || { echo no ok file; exit 3; }'"
restart = "never"

[services.web]
command = "sh -c 'test -f migrated || { echo started before the migration; exit 9; }; exec python3 -m http.server $PORT --bind 127.0.0.1'"
port = 29600
depends_on = ["migrate"]
"#;

#[test]
fn a_one_shot_gates_its_dependants_and_a_failure_is_tried_again() {
    let sandbox = Sandbox::new();
    let root = sandbox.project("oneshot", MIGRATE_THEN_WEB);

    // It fails: `up` names the task and shows its lines, and `web` never started.
    let failed = sandbox.berth(&root, &["up", "--timeout", "20"]).code(4);
    assert!(failed.stderr.contains("`migrate`"), "{}", failed.stderr);
    assert!(
        failed.stderr.contains("exited with status 3"),
        "{}",
        failed.stderr
    );
    assert!(failed.stderr.contains("no ok file"), "{}", failed.stderr);
    assert!(
        !root.join(".berth/oneshot/logs/web.log").exists()
            || !std::fs::read_to_string(root.join(".berth/oneshot/logs/web.log"))
                .unwrap()
                .contains("started before")
    );

    // Fixed, `up` runs it again, waits for it, then starts `web`.
    std::fs::write(root.join("ok"), "").unwrap();
    let started = Instant::now();
    let status = sandbox
        .berth(&root, &["up", "--json", "--timeout", "20"])
        .success()
        .json();
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "up did not run the task again"
    );
    let port = port_of(&status, "web");
    assert_eq!(http_get(port, "/").map(|(code, _)| code), Some(200));
    let states: Vec<(String, String)> = status["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().into(),
                s["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        states.contains(&("migrate".into(), "exited".into())),
        "{states:?}"
    );

    // `restart` of the task reports this run's outcome, not the last one's.
    std::fs::remove_file(root.join("ok")).unwrap();
    let again = sandbox.berth(&root, &["restart", "migrate"]).code(4);
    assert!(
        again.stderr.contains("exited with status 3"),
        "{}",
        again.stderr
    );
    std::fs::write(root.join("ok"), "").unwrap();
    sandbox.berth(&root, &["restart", "migrate"]).success();
    sandbox.berth(&root, &["down"]).success();
}

#[test]
fn a_healthy_container_is_ready_only_once_its_port_listens() {
    if !docker::available("healthy_before_listening") {
        return;
    }
    for tool in docker::compose_tools() {
        let mut sandbox = Sandbox::new();
        sandbox.compose = Some(tool.to_string());
        // The healthcheck passes at once; the server listens two seconds later, as
        // PostgreSQL's image does while its entrypoint runs the init server.
        let compose = format!(
            "services:\n  web:\n    image: {IMAGE}\n    command: [\"sh\", \"-c\", \"sleep 2; exec httpd -f -p 80 -h /www\"]\n    ports: [\"{}:80\"]\n    healthcheck:\n      test: [\"CMD\", \"test\", \"-d\", \"/www\"]\n      interval: 1s\n    stop_grace_period: 1s\n",
            29700 + tool.len() as u16 * 10
        );
        let dir = sandbox.project_files(
            &format!("early{}", tool.len()),
            &[("compose.yml", &compose)],
        );
        let status = sandbox
            .berth(&dir, &["up", "--json", "--timeout", "60"])
            .success()
            .json();
        let port = port_of(&status, "web");
        assert_eq!(
            http_get(port, "/health").map(|(code, _)| code),
            Some(200),
            "{tool}: `up` said ready before the port listened"
        );
        sandbox.berth(&dir, &["down"]).success();
    }
}

/// A one-shot that leaves a process in the background is still done when it exits 0:
/// its dependants start, and what it left behind is killed.
#[test]
fn a_one_shot_that_leaves_a_background_process_is_done_and_cleaned_up() {
    let sandbox = Sandbox::new();
    let root = sandbox.project(
        "oneshotbg",
        "[services.prepare]\ncommand = \"sh -c 'sleep 600 & echo prepared'\"\nrestart = \"never\"\n\n[services.app]\ncommand = \"sleep 600\"\ndepends_on = [\"prepare\"]\n",
    );
    let status = sandbox
        .berth(&root, &["up", "--json", "--timeout", "20"])
        .success()
        .json();
    let states: Vec<String> = status["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s["name"].as_str().unwrap(),
                s["state"].as_str().unwrap()
            )
        })
        .collect();
    assert!(states.contains(&"prepare exited".to_string()), "{states:?}");
    assert!(states.contains(&"app ready".to_string()), "{states:?}");
    // Only the app's `sleep 600` is left.
    wait_for(
        "the background sleep to be killed",
        std::time::Duration::from_secs(5),
        || {
            pids_matching("sleep 600")
                .iter()
                .filter(|pid| {
                    std::fs::read_link(format!("/proc/{pid}/cwd"))
                        .is_ok_and(|cwd| cwd.starts_with(&root))
                })
                .count()
                == 1
        },
    );
    sandbox.berth(&root, &["down"]).success();
}
