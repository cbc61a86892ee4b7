//! End-to-end: bad input, taken ports, failing services, killed supervisors, races.

mod support;

use std::time::Duration;

use support::*;

fn serve(name: &str, port: u16) -> String {
    format!(
        "[services.{name}]\ncommand = \"{} serve --port {{{{ port.{name} }}}}\"\nport = {port}\n",
        helper()
    )
}

#[test]
fn malformed_and_hostile_configs_are_located_errors_with_exit_2() {
    let sandbox = Sandbox::new();
    let cases: &[(&str, &str)] = &[
        ("[services.a\ncommand = 1", "berth.toml:1:"),
        (
            "[services.a]\ncommand = \"x\"\nwat = 1\n",
            "berth.toml:3:1: unknown field `wat`",
        ),
        (
            "[services.a]\ncommand = \"x {{ port.ghost }}\"\n",
            "berth.toml:2:14: unknown service `ghost`",
        ),
        (
            "[services.a]\ncommand = \"x\"\nport = 65536\n",
            "berth.toml:3:8: port 65536 is out of range",
        ),
        (
            "[services.\"../x\"]\ncommand = \"x\"\n",
            "service name `../x`",
        ),
        (
            "[services.\"Ünï code\"]\ncommand = \"x\"\n",
            "service name `Ünï code`",
        ),
    ];
    for (index, (config, expected)) in cases.iter().enumerate() {
        let root = sandbox.project(&format!("bad{index}"), config);
        let run = sandbox.berth(&root, &["up"]).code(2);
        assert!(run.stderr.contains(expected), "{config:?}\n{}", run.stderr);
        assert!(
            run.stderr.starts_with("error: ") && run.stderr.contains("\nhint: "),
            "{}",
            run.stderr
        );
        assert!(
            !root.join(".berth").exists(),
            "a config error must write nothing"
        );
    }
    let root = sandbox.project("names", &serve("web", 12500));
    for bad in ["Upper", "has space", "../escape", "a/b", "ünï"] {
        let run = sandbox.berth(&root, &["--name", bad, "up"]).code(2);
        assert!(
            run.stderr.contains("instance name"),
            "{bad}: {}",
            run.stderr
        );
    }
    let run = sandbox
        .berth(&root, &["up", "--port-offset", "60000"])
        .code(2);
    assert!(run.stderr.contains("outside 1024-65535"), "{}", run.stderr);
}

#[test]
fn a_taken_port_names_its_holder_or_moves_to_a_free_offset() {
    let sandbox = Sandbox::new();
    let root = sandbox.project("taken", &serve("web", 12600));
    let blocker = std::process::Command::new(helper())
        .args(["serve", "--port", "12600"])
        .spawn()
        .unwrap();
    wait_for("the blocker", Duration::from_secs(5), || accepts(12600));

    let strict = sandbox.berth(&root, &["up", "--strict-ports"]).code(3);
    assert!(
        strict.stderr.contains(&format!(
            "port 12600 for `web` is taken by PID {}",
            blocker.id()
        )) && strict
            .stderr
            .contains("berth-test-helper serve --port 12600"),
        "{}",
        strict.stderr
    );
    let moved = sandbox.berth(&root, &["up", "--json"]).success();
    assert!(
        moved.stderr.contains("runs at port offset 100"),
        "{}",
        moved.stderr
    );
    assert_eq!(port_of(&moved.json(), "web"), 12700);

    // Another instance's lease is named too.
    let other = sandbox.project("other", &serve("web", 12700));
    let run = sandbox.berth(&other, &["up", "--strict-ports"]).code(3);
    assert!(
        run.stderr
            .contains("taken by berth instance `taken` (service `web`)"),
        "{}",
        run.stderr
    );
    let mut blocker = blocker;
    blocker.kill().unwrap();
    blocker.wait().unwrap();
}

#[test]
fn a_failing_service_fails_up_with_exit_4_and_its_last_log_lines() {
    let sandbox = Sandbox::new();
    let helper = helper();
    let root = sandbox.project(
        "failing",
        &format!("[services.boom]\ncommand = \"{helper} exit --code 3 --after-ms 100\"\nport = 12850\nrestart = \"never\"\n[services.after]\ncommand = \"sleep 30\"\ndepends_on = [\"boom\"]\n"),
    );
    let run = sandbox.berth(&root, &["up"]).code(4);
    assert!(
        run.stderr
            .contains("service `boom` of `failing` failed: exited with status 3"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("boom | exiting with 3"),
        "{}",
        run.stderr
    );

    let slow = sandbox.project(
        "never-ready",
        &format!("[services.slow]\ncommand = \"{helper} sleep\"\nport = 12800\n"),
    );
    let run = sandbox.berth(&slow, &["up", "--timeout", "1"]).code(4);
    assert!(
        run.stderr.contains("not ready after 1 s (state starting"),
        "{}",
        run.stderr
    );
}

#[test]
fn crash_loops_restart_exactly_the_burst_limit_then_fail() {
    let sandbox = Sandbox::new();
    let counter = sandbox.dir.path().join("runs.txt");
    let root = sandbox.project(
        "crashy",
        &format!(
            "[services.crashy]\ncommand = \"{} crash-count --count-file {} --code 1\"\nport = 12860\nrestart = \"on-failure\"\n",
            helper(),
            counter.display()
        ),
    );
    let run = sandbox.berth(&root, &["up", "--timeout", "60"]).code(4);
    assert!(
        run.stderr.contains("gave up after 5 restarts"),
        "{}",
        run.stderr
    );
    let runs = std::fs::read_to_string(&counter).unwrap().lines().count();
    assert_eq!(runs, 6, "one start plus five restarts");
    let status = sandbox.berth(&root, &["status", "--json"]).success().json();
    assert_eq!(status["services"][0]["state"], "failed");
    assert_eq!(status["services"][0]["restarts"], 5);
}

#[test]
fn a_killed_supervisor_is_reaped_by_the_next_command_grandchildren_included() {
    let sandbox = Sandbox::new();
    let pid_file = sandbox.dir.path().join("grandchild.pid");
    let root = sandbox.project(
        "orphans",
        &format!(
            "[services.stubborn]\ncommand = \"{helper} ignore-term --port {{{{ port.stubborn }}}}\"\nport = 12900\nstop_grace = \"300ms\"\n[services.forker]\ncommand = \"{helper} grandchild --pid-file {pid}\"\n",
            helper = helper(),
            pid = pid_file.display()
        ),
    );
    let status = sandbox.berth(&root, &["up", "--json"]).success().json();
    wait_for("the grandchild", Duration::from_secs(5), || {
        pid_file.exists()
    });
    let grandchild: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let supervisor = status["supervisor_pid"].as_u64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("the supervisor to die", Duration::from_secs(5), || {
        !pid_alive(supervisor as u32)
    });

    let after = sandbox.berth(&root, &["status", "--json"]).success();
    assert!(
        after.stderr.contains("supervisor of `orphans` had died"),
        "{}",
        after.stderr
    );
    assert_eq!(after.json()["state"], "crashed");
    for (_, pid) in service_pids(&status) {
        assert!(!pid_alive(pid), "service {pid} survived");
    }
    assert!(!pid_alive(grandchild), "the setsid grandchild survived");
    assert!(is_free(12900));
    let ls = sandbox.berth(&root, &["ls", "--json"]).success().json();
    assert_eq!(ls[0]["state"], "stale: supervisor dead");
    assert_eq!(ls[0]["stale"], true);
    sandbox.berth(&root, &["up"]).success();
    sandbox.berth(&root, &["down"]).success();
    assert!(is_free(12900));

    // A root deleted from under a stopped instance is marked stale too.
    std::fs::remove_dir_all(&root).unwrap();
    let ls = sandbox
        .berth(sandbox.dir.path(), &["ls", "--json"])
        .success()
        .json();
    assert_eq!(ls[0]["state"], "stale: root gone");
}

#[test]
fn a_reused_pid_in_a_state_file_is_never_signalled() {
    let sandbox = Sandbox::new();
    let root = sandbox.project("reuse", "[services.idle]\ncommand = \"sleep 60\"\n");
    sandbox.berth(&root, &["up"]).success();
    sandbox.berth(&root, &["down"]).success();
    let mut bystander = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let path = root.join(".berth/reuse/instance.json");
    let mut file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    file["state"] = "running".into();
    file["services"]["idle"]["pid"] = serde_json::json!({ "pid": bystander.id(), "start_time": 1 });
    std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
    sandbox.berth(&root, &["down"]).success();
    sandbox.berth(&root, &["status"]).success();
    assert!(
        pid_alive(bystander.id()),
        "berth signalled a process it does not own"
    );
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}

#[test]
fn corrupt_ledger_is_reported_not_reset_and_lock_timeouts_fail_cleanly() {
    let sandbox = Sandbox::new();
    let root = sandbox.project("corrupt", "[services.idle]\ncommand = \"sleep 60\"\n");
    std::fs::create_dir_all(sandbox.home()).unwrap();
    let ledger = sandbox.home().join("ledger.json");
    std::fs::write(&ledger, "{\"version\": 1, \"instances\": [").unwrap();
    for args in [&["ls"][..], &["up"][..]] {
        let run = sandbox.berth(&root, args).code(1);
        assert!(
            run.stderr.contains("ledger.json` is corrupt"),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("never resets"), "{}", run.stderr);
    }
    assert_eq!(
        std::fs::read_to_string(&ledger).unwrap(),
        "{\"version\": 1, \"instances\": ["
    );
    std::fs::write(&ledger, "{\"version\": 99, \"instances\": []}").unwrap();
    let run = sandbox.berth(&root, &["ls"]).code(1);
    assert!(run.stderr.contains("format version 99"), "{}", run.stderr);
    std::fs::remove_file(&ledger).unwrap();

    // Hold the ledger lock from outside: berth waits, then names the lock and gives up.
    let lock = std::fs::File::create(sandbox.home().join("ledger.lock")).unwrap();
    let held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).unwrap();
    let run = Run::from_output(
        sandbox
            .command(&root, &["up"])
            .env("BERTH_LOCK_TIMEOUT_MS", "200")
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("timed out after") && run.stderr.contains("ledger.lock"),
        "{}",
        run.stderr
    );
    drop(held);
    sandbox.berth(&root, &["up"]).success();
}

#[test]
fn concurrent_ups_in_many_directories_never_share_a_port() {
    const COUNT: usize = 24;
    let sandbox = Sandbox::new();
    let roots: Vec<_> = (0..COUNT)
        .map(|index| {
            sandbox.project(
                &format!("w{index:02}/app"),
                &(serve("api", 13000) + &serve("db", 13001)),
            )
        })
        .collect();
    let children: Vec<_> = roots
        .iter()
        .map(|root| {
            sandbox
                .command(root, &["up", "--json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ports = Vec::new();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        for service in ["api", "db"] {
            let port = port_of(&status, service);
            assert_eq!(
                http_get(port, "/env/BERTH_INSTANCE").unwrap().1,
                status["name"].as_str().unwrap()
            );
            ports.push(port);
        }
    }
    let mut unique = ports.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ports.len(), "shared ports: {ports:?}");
    let ledger = sandbox.ledger();
    let names: std::collections::HashSet<&str> = ledger["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        COUNT,
        "every instance recorded once under a distinct name"
    );
}

#[test]
fn concurrent_ups_of_one_instance_start_exactly_one_supervisor() {
    let sandbox = Sandbox::new();
    let root = sandbox.project("same", &serve("web", 13900));
    let children: Vec<_> = (0..10)
        .map(|_| {
            sandbox
                .command(&root, &["up", "--json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut supervisors = std::collections::HashSet::new();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        supervisors.insert(status["supervisor_pid"].as_u64().unwrap());
    }
    assert_eq!(supervisors.len(), 1);
    assert_eq!(
        pids_matching(&format!(
            "__supervise {}",
            root.join(".berth/same").display()
        ))
        .len(),
        1
    );
    assert_eq!(pids_matching("serve --port 13900").len(), 1);
}
