//! End-to-end: `rm` removes one instance and nothing else; `gc` cleans up after dead
//! supervisors and deleted worktrees and leaves live instances alone. Ports 15000-15499:
//! the `rm` test holds 15000-15101 (two instances), the `gc` test 15200-15261, the
//! squatter test 15450, so no two tests contend for a port.

mod support;

use std::time::Duration;

use support::*;

/// A web service plus a grandchild that leaves its process group (`setsid`).
fn stack(port: u16) -> String {
    format!(
        "[services.web]\ncommand = \"{h} serve --port {{{{ port.web }}}}\"\nport = {port}\n\n\
         [services.stray]\ncommand = \"{h} grandchild --pid-file {{{{ instance.data }}}}/grandchild.pid --port {{{{ port.stray }}}}\"\nport = {stray}\n",
        h = helper(),
        stray = port + 1
    )
}

fn pids_of(status: &serde_json::Value, dir: &std::path::Path, name: &str) -> Vec<u32> {
    let mut pids: Vec<u32> = service_pids(status)
        .into_iter()
        .map(|(_, pid)| pid)
        .collect();
    let grandchild = dir.join(format!(".berth/{name}/data/grandchild.pid"));
    wait_for("the grandchild's pid file", Duration::from_secs(5), || {
        grandchild.exists()
    });
    let text = std::fs::read_to_string(&grandchild).unwrap();
    pids.push(text.trim().parse().unwrap());
    pids
}

#[test]
fn rm_removes_one_instance_and_nothing_else() {
    let sandbox = Sandbox::new();
    let dir = sandbox.project("shop", &stack(15000));
    let one = sandbox
        .berth(&dir, &["--name", "one", "up", "--json"])
        .success()
        .json();
    let two = sandbox
        .berth(&dir, &["--name", "two", "up", "--json"])
        .success()
        .json();
    let one_pids = pids_of(&one, &dir, "one");
    let two_pids = pids_of(&two, &dir, "two");
    assert!(one_pids.iter().chain(&two_pids).all(|pid| pid_alive(*pid)));

    let removed = sandbox
        .berth(&dir, &["--name", "one", "rm", "--json"])
        .success()
        .json();
    assert_eq!(removed["name"], "one");
    let kinds: Vec<&str> = removed["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"state") && kinds.contains(&"ledger") && kinds.contains(&"lease"),
        "{removed}"
    );

    for pid in &one_pids {
        wait_for("one's processes to end", Duration::from_secs(5), || {
            !pid_alive(*pid)
        });
    }
    assert!(
        !dir.join(".berth/one").exists(),
        "one's state directory is gone"
    );
    let ledger = sandbox.ledger();
    let names: Vec<&str> = ledger["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["two"]);
    assert!(is_free(15000), "one's port is released");

    // The other instance is untouched.
    assert!(two_pids.iter().all(|pid| pid_alive(*pid)));
    let port = port_of(&two, "web");
    assert_eq!(http_get(port, "/health").map(|(code, _)| code), Some(200));
    let status = sandbox
        .berth(&dir, &["--name", "two", "status", "--json"])
        .success()
        .json();
    assert_eq!(status["state"], "running");
    assert!(dir.join(".berth/two/instance.json").exists());

    // rm of an unknown instance is a clear usage error.
    let missing = sandbox
        .berth(&dir, &["--name", "one", "rm", "--yes"])
        .code(2);
    assert!(
        missing.stderr.contains("no instance named `one`"),
        "{}",
        missing.stderr
    );
}

#[test]
fn gc_cleans_up_dead_instances_and_leaves_live_ones_alone() {
    let sandbox = Sandbox::new();
    let crashed = sandbox.project("crashed", &stack(15200));
    let deleted = sandbox.project("deleted", &stack(15220));
    let alive = sandbox.project("alive", &stack(15240));
    let stopped = sandbox.project("stopped", &stack(15260));
    let crashed_status = sandbox.berth(&crashed, &["up", "--json"]).success().json();
    let deleted_status = sandbox.berth(&deleted, &["up", "--json"]).success().json();
    let alive_status = sandbox.berth(&alive, &["up", "--json"]).success().json();
    sandbox.berth(&stopped, &["up"]).success();
    sandbox.berth(&stopped, &["down"]).success();
    let crashed_pids = pids_of(&crashed_status, &crashed, "crashed");
    let deleted_pids = pids_of(&deleted_status, &deleted, "deleted");
    let alive_pids = pids_of(&alive_status, &alive, "alive");

    // The supervisor of `crashed` is killed; the worktree of `deleted` is deleted while
    // its supervisor and services run.
    let supervisor = crashed_status["supervisor_pid"].as_u64().unwrap() as i32;
    kill_and_wait(supervisor as u32);
    std::fs::remove_dir_all(&deleted).unwrap();
    let deleted_supervisor = deleted_status["supervisor_pid"].as_u64().unwrap() as u32;
    assert!(pid_alive(deleted_supervisor));

    // --dry-run says what it would do and does nothing.
    let ledger_before = sandbox.ledger();
    let dry = sandbox.berth(&alive, &["gc", "--dry-run"]).success();
    assert!(
        dry.stdout.contains("would remove ledger of `deleted`"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("would remove process of `crashed`"),
        "{}",
        dry.stdout
    );
    assert!(!dry.stdout.contains("`alive`"), "{}", dry.stdout);
    assert!(!dry.stdout.contains("`stopped`"), "{}", dry.stdout);
    assert_eq!(sandbox.ledger(), ledger_before);
    // (The crashed supervisor's direct children died with it; its grandchild, which left
    // the process group, lives on until someone reaps it.)
    let crashed_grandchild = *crashed_pids.last().unwrap();
    assert!(pid_alive(crashed_grandchild));
    assert!(deleted_pids.iter().all(|pid| pid_alive(*pid)));

    let gc = sandbox.berth(&alive, &["gc", "--json"]).success().json();
    assert_eq!(gc["dry_run"], false);
    for pid in crashed_pids
        .iter()
        .chain(&deleted_pids)
        .chain([&deleted_supervisor])
    {
        wait_for(
            "a dead instance's process to end",
            Duration::from_secs(20),
            || !pid_alive(*pid),
        );
    }
    let ledger = sandbox.ledger();
    let entry = |name: &str| {
        ledger["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .cloned()
    };
    assert!(
        entry("deleted").is_none(),
        "a deleted worktree's entry is dropped"
    );
    let crashed_entry = entry("crashed").expect("a crashed instance keeps its entry");
    assert!(crashed_entry["started_at"].is_null());
    assert!(
        !crashed_entry["leases"].as_array().unwrap().is_empty(),
        "and its ports"
    );
    assert!(entry("stopped").is_some());

    // The live instance is untouched.
    assert!(alive_pids.iter().all(|pid| pid_alive(*pid)));
    let port = port_of(&alive_status, "web");
    assert_eq!(http_get(port, "/health").map(|(code, _)| code), Some(200));
    let ls = sandbox.berth(&alive, &["ls", "--json"]).success().json();
    let state = |name: &str| {
        ls.as_array()
            .unwrap()
            .iter()
            .find(|row| row["name"] == name)
            .map(|row| row["state"].as_str().unwrap().to_string())
    };
    assert_eq!(state("alive").as_deref(), Some("running"));
    assert_eq!(state("crashed").as_deref(), Some("stopped"));
    assert_eq!(state("deleted"), None);

    // And the crashed instance comes back on the same ports.
    let again = sandbox.berth(&crashed, &["up", "--json"]).success().json();
    assert_eq!(port_of(&again, "web"), port_of(&crashed_status, "web"));
}

#[test]
fn doctor_names_who_holds_each_port_and_fails_on_a_corrupt_ledger() {
    let sandbox = Sandbox::new();
    let dir = sandbox.project(
        "doc",
        &format!(
            "[services.web]\ncommand = \"{} serve --port {{{{ port.web }}}}\"\nport = 15450\n",
            helper()
        ),
    );
    let squatter = std::net::TcpListener::bind("127.0.0.1:15450").unwrap();
    let report = sandbox.berth(&dir, &["doctor", "--json"]).success().json();
    let row = |name: &str| {
        report
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["check"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no `{name}` check in {report}"))
    };
    assert_eq!(row("ledger")["status"], "ok");
    assert_eq!(row("port web")["status"], "warn");
    let detail = row("port web")["detail"].as_str().unwrap().to_string();
    assert!(
        detail.contains(&format!("PID {}", std::process::id())),
        "the holder is named: {detail}"
    );
    drop(squatter);
    let free = sandbox.berth(&dir, &["doctor", "--json"]).success().json();
    let web = free
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["check"] == "port web")
        .cloned()
        .unwrap();
    assert_eq!(web["status"], "ok", "{web}");

    std::fs::create_dir_all(sandbox.home()).unwrap();
    std::fs::write(sandbox.home().join("ledger.json"), "{ not json").unwrap();
    let broken = sandbox.berth(&dir, &["doctor"]).code(1);
    assert!(
        broken.stdout.contains("ledger") && broken.stdout.contains("fail"),
        "{}",
        broken.stdout
    );
    assert!(
        broken.stderr.contains("check(s) failed"),
        "{}",
        broken.stderr
    );
}

#[test]
fn init_writes_a_config_that_up_runs_and_never_overwrites_one() {
    let sandbox = Sandbox::new();
    let dir = sandbox.dir.path().join("procs");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Procfile"),
        format!(
            "# two processes\nweb: {h} serve --port $PORT\nclock: {h} sleep\n",
            h = helper()
        ),
    )
    .unwrap();
    std::fs::write(dir.join(".env"), "API_URL=http://localhost:5000\n").unwrap();
    let init = sandbox.berth(&dir, &["init"]).success();
    let written = std::fs::read_to_string(dir.join("berth.toml")).unwrap();
    assert_eq!(init.stdout, written);
    assert!(
        written.contains("[services.web]") && written.contains("port = 5000"),
        "{written}"
    );
    assert!(written.contains("[services.clock]"), "{written}");
    assert!(written.contains(".env"), "{written}");

    let up = sandbox.berth(&dir, &["up", "--json"]).success().json();
    let port = port_of(&up, "web");
    assert_eq!(http_get(port, "/health").map(|(code, _)| code), Some(200));
    sandbox.berth(&dir, &["down"]).success();

    let again = sandbox.berth(&dir, &["init"]).code(2);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.join("berth.toml")).unwrap(),
        written
    );
}
