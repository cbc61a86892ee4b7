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
        assert!(
            run.shows_config_error(expected),
            "{config:?}\n{}",
            run.stderr
        );
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
    // The supervisor `up` starts ahead of the instance's files got no word to go: it
    // has left, having started nothing, and its cgroup is gone with it.
    let state_dir = root.join(".berth").join("taken");
    assert!(
        pids_matching(&state_dir.display().to_string()).is_empty(),
        "a supervisor of `taken` is still running"
    );
    let supervisor_log =
        std::fs::read_to_string(state_dir.join("supervisor.log")).unwrap_or_default();
    assert!(
        supervisor_log.contains("stopped before the instance's files were written"),
        "{supervisor_log}"
    );
    for hierarchy in ["/sys/fs/cgroup/unified/berth", "/sys/fs/cgroup/berth"] {
        let left: Vec<_> = std::fs::read_dir(hierarchy)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|entry| entry.file_name().to_string_lossy().starts_with("taken-"))
            .map(|entry| entry.path())
            .collect();
        assert!(left.is_empty(), "cgroups left behind: {left:?}");
    }
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
    kill_and_wait(supervisor as u32);

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
    // Reaped, the instance is no longer marked stale.
    let ls = sandbox.berth(&root, &["ls", "--json"]).success().json();
    assert_eq!(ls[0]["state"], "stopped");
    assert_eq!(ls[0]["stale"], false);
    // `ls` right after a crash reaps too, and says so.
    let status = sandbox.berth(&root, &["up", "--json"]).success().json();
    kill_and_wait(status["supervisor_pid"].as_u64().unwrap() as u32);
    let ls = sandbox.berth(&root, &["ls", "--json"]).success().json();
    assert_eq!(ls[0]["state"], "crashed");
    assert_eq!(ls[0]["stale"], false);
    for (_, pid) in service_pids(&status) {
        assert!(!pid_alive(pid), "service {pid} survived");
    }
    assert!(is_free(12900));
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
    // 50 worktrees of one project, twice over. A stride of 2 keeps their ports in
    // 13000-13099, away from every other test's.
    const COUNT: usize = 50;
    let sandbox = Sandbox::new();
    let config = format!(
        "[ports]\nstride = 2\n{}{}",
        serve("api", 13000),
        serve("db", 13001)
    );
    let roots: Vec<_> = (0..COUNT)
        .map(|index| sandbox.project(&format!("w{index:02}/app"), &config))
        .collect();
    for round in 0..2 {
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
                "round {round}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
            for service in ["api", "db"] {
                let port = port_of(&status, service);
                assert!((13000..13100).contains(&port), "{port}");
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
        assert_eq!(
            unique.len(),
            ports.len(),
            "round {round}: shared ports: {ports:?}"
        );
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
            "round {round}: every instance recorded once"
        );
        // Down with --release in parallel too; the next round plans from scratch.
        let downs: Vec<_> = roots
            .iter()
            .map(|root| {
                sandbox
                    .command(root, &["down", "--release"])
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut down in downs {
            assert!(down.wait().unwrap().success());
        }
        let ledger = sandbox.ledger();
        let leases: usize = ledger["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["leases"].as_array().unwrap().len())
            .sum();
        assert_eq!(leases, 0, "round {round}: every lease released");
        assert!(unique.iter().all(|port| is_free(*port)));
    }
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

/// The state files of every instance in the sandbox parse (nothing half-written).
fn assert_state_intact(sandbox: &Sandbox, root: &std::path::Path) {
    // Killed before its first write, `up` leaves no ledger at all, which is fine.
    if sandbox.home().join("ledger.json").exists() {
        let ledger = sandbox.ledger();
        assert_eq!(ledger["version"], 1, "{ledger}");
    }
    let berth = root.join(".berth");
    for entry in std::fs::read_dir(&berth).into_iter().flatten().flatten() {
        let file = entry.path().join("instance.json");
        if file.exists() {
            let text = std::fs::read_to_string(&file).unwrap();
            let parsed: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|error| panic!("{} is damaged ({error}):\n{text}", file.display()));
            assert_eq!(parsed["version"], 1);
        }
    }
}

/// No temp file of a killed writer is left in `dir` (a live writer's, such as the
/// supervisor's mid-write, may exist for an instant).
fn assert_no_temp_files(dir: &std::path::Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let writer = name
            .strip_suffix(".tmp")
            .and_then(|rest| rest.rsplit('.').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = writer {
            assert!(
                pid_alive(pid),
                "a dead writer's temp file was left: {}/{name}",
                dir.display()
            );
        }
    }
}

#[test]
fn killing_up_at_any_moment_leaves_no_damage_and_no_port_leased_forever() {
    let sandbox = Sandbox::new();
    let root = sandbox.project(
        "killed",
        &format!(
            "{}\n{}",
            serve("web", 16000),
            "[services.worker]\ncommand = \"".to_string()
                + &helper()
                + " grandchild --pid-file {{ instance.data }}/gc.pid\"\n"
        ),
    );
    for delay_ms in [0u64, 2, 5, 10, 20, 40, 80] {
        let mut child = sandbox.command(&root, &["up"]).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        assert_state_intact(&sandbox, &root);
        // Whatever moment it died at, gc leaves no port leased to an instance that
        // cannot run, and the next `up` works on the same ports.
        sandbox.berth(&root, &["gc"]).success();
        let ledger = if sandbox.home().join("ledger.json").exists() {
            sandbox.ledger()
        } else {
            serde_json::json!({ "instances": [] })
        };
        for entry in ledger["instances"].as_array().unwrap() {
            let instance = root.join(".berth").join(entry["name"].as_str().unwrap());
            assert!(
                instance.join("instance.json").exists()
                    || entry["leases"].as_array().unwrap().is_empty(),
                "after {delay_ms} ms: leases of an instance that never started: {ledger}"
            );
        }
        let up = sandbox.berth(&root, &["up", "--json"]).success().json();
        assert_eq!(port_of(&up, "web"), 16000, "after {delay_ms} ms: {up}");
        // The next writes sweep what a killed writer left half-way.
        assert_no_temp_files(&root.join(".berth/killed"));
        assert_no_temp_files(&sandbox.home());
        sandbox.berth(&root, &["down"]).success();
        let token_left = pids_matching("--pid-file").into_iter().filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| {
                    String::from_utf8_lossy(&env)
                        .contains(&format!("BERTH_ROOT={}", root.display()))
                })
                .unwrap_or(false)
        });
        assert_eq!(
            token_left.count(),
            0,
            "after {delay_ms} ms: a process survived down"
        );
    }
}

#[test]
fn damaged_or_future_instance_files_are_named_and_left_alone() {
    let sandbox = Sandbox::new();
    let root = sandbox.project("damaged", &serve("web", 16100));
    sandbox.berth(&root, &["up"]).success();
    sandbox.berth(&root, &["down"]).success();
    let file = root.join(".berth/damaged/instance.json");
    let good = std::fs::read_to_string(&file).unwrap();
    let future = good.replacen("\"version\": 1", "\"version\": 99", 1);
    assert_ne!(future, good);
    for (what, text) in [
        ("truncated", &good[..good.len() / 2]),
        ("garbage", "\u{0}\u{1}not json"),
        ("future", future.as_str()),
    ] {
        std::fs::write(&file, text).unwrap();
        for command in [&["status"][..], &["up"][..], &["down"][..]] {
            let run = sandbox.berth(&root, command).code(1);
            assert!(
                run.stderr.contains(&file.display().to_string()),
                "{what} {command:?}: the error names the file\n{}",
                run.stderr
            );
        }
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            text,
            "{what}: a damaged file is never reset"
        );
    }
    std::fs::write(&file, &good).unwrap();
    sandbox.berth(&root, &["up"]).success();
}

#[test]
fn state_and_env_files_are_private_and_planted_symlinks_are_not_followed() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    let root = sandbox.project(
        "private",
        &format!(
            "{}\n[[env_files]]\nsource = \".env\"\ntarget = \".env.local\"\n",
            serve("web", 16200)
        ),
    );
    std::fs::write(
        root.join(".env"),
        "TOKEN=secret\nURL=http://localhost:16200\n",
    )
    .unwrap();
    // Symlinks planted where berth writes, pointing at files berth must not touch.
    let victim = sandbox.dir.path().join("victim");
    std::fs::write(&victim, "untouched\n").unwrap();
    std::fs::create_dir_all(root.join(".berth/private")).unwrap();
    let state = root.join(".berth/private/instance.json");
    std::os::unix::fs::symlink(&victim, &state).unwrap();

    // A state file berth reads before writing: refused, named, the target untouched.
    let refused = sandbox.berth(&root, &["up"]).code(1);
    assert!(
        refused.stderr.contains(&state.display().to_string()),
        "{}",
        refused.stderr
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched\n");
    std::fs::remove_file(&state).unwrap();

    // An env file target: a symlink there is the user's, refused and left as it is.
    std::os::unix::fs::symlink(&victim, root.join(".env.local")).unwrap();
    let refused = sandbox.berth(&root, &["up"]).code(2);
    assert!(
        refused.stderr.contains("`.env.local` is a symlink"),
        "{}",
        refused.stderr
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched\n");
    assert!(
        std::fs::symlink_metadata(root.join(".env.local"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    std::fs::remove_file(root.join(".env.local")).unwrap();
    sandbox.berth(&root, &["up"]).success();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched\n");
    let meta = std::fs::symlink_metadata(root.join(".env.local")).unwrap();
    assert!(meta.file_type().is_file(), ".env.local is berth's own file");
    for path in [
        root.join(".env.local"),
        root.join(".berth/private/instance.json"),
        root.join(".berth/private/logs/web.log"),
        sandbox.home().join("ledger.json"),
    ] {
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is mode {mode:o}", path.display());
    }
    for dir in [root.join(".berth/private"), sandbox.home()] {
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is mode {mode:o}", dir.display());
    }
}

#[test]
fn a_port_grabbed_between_planning_and_binding_is_never_reported_ready() {
    let sandbox = Sandbox::new();
    let root = sandbox.project(
        "race",
        &format!(
            "[services.web]\ncommand = \"{} serve --port {{{{ port.web }}}} --delay-ms 1500\"\nport = 16300\nrestart = \"never\"\n",
            helper()
        ),
    );
    let up = sandbox
        .command(&root, &["up", "--timeout", "20"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let state = root.join(".berth/race/instance.json");
    wait_for("the service to be spawned", Duration::from_secs(10), || {
        std::fs::read_to_string(&state).is_ok_and(|text| text.contains("\"pid\": {"))
    });
    // Another program takes the port before the service binds it, and answers on it.
    let thief = std::net::TcpListener::bind("127.0.0.1:16300").unwrap();
    let output = up.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("service `web`"), "{stderr}");
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert!(
        file["services"]["web"]["ready_at"].is_null(),
        "never ready: {file}"
    );
    assert_eq!(file["services"]["web"]["state"], "failed");
    drop(thief);
    sandbox.berth(&root, &["down"]).success();
}

#[test]
fn a_supervisor_killed_mid_up_fails_up_and_leaves_nothing_after_down() {
    let sandbox = Sandbox::new();
    let pid_file = sandbox.dir.path().join("midway.pid");
    let root = sandbox.project(
        "midway",
        &format!(
            "[services.slow]\ncommand = \"{h} serve --port {{{{ port.slow }}}} --delay-ms 5000\"\nport = 16400\n\
             [services.forker]\ncommand = \"{h} grandchild --pid-file {pid}\"\n",
            h = helper(),
            pid = pid_file.display()
        ),
    );
    let up = sandbox
        .command(&root, &["up"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the grandchild", Duration::from_secs(10), || {
        pid_file.exists()
    });
    let grandchild: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The supervisor records a PID just after the spawn: under load the grandchild's
    // file can appear first.
    let read = || -> serde_json::Value {
        serde_json::from_str(
            &std::fs::read_to_string(root.join(".berth/midway/instance.json")).unwrap(),
        )
        .unwrap()
    };
    let pids = |file: &serde_json::Value| -> Vec<u32> {
        ["slow", "forker"]
            .iter()
            .filter_map(|name| file["services"][name]["pid"]["pid"].as_u64())
            .map(|pid| pid as u32)
            .collect()
    };
    wait_for(
        "both service PIDs recorded",
        Duration::from_secs(10),
        || pids(&read()).len() == 2,
    );
    let file = read();
    let supervisor = file["supervisor"]["pid"].as_u64().unwrap() as i32;
    let services = pids(&file);
    // Not waited for: it stays a zombie until the `up` that started it exits.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let output = up.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("supervisor"), "{stderr}");

    sandbox.berth(&root, &["down"]).success();
    assert!(
        !pid_alive(grandchild),
        "the setsid grandchild survived down"
    );
    for pid in services {
        assert!(!pid_alive(pid), "service {pid} survived down");
    }
    sandbox.berth(&root, &["gc"]).success();
    sandbox.berth(&root, &["up", "--timeout", "30"]).success();
}

/// A mount made for one test, unmounted on drop. Mounting needs root with
/// CAP_SYS_ADMIN: without it the test is skipped loudly, unless BERTH_REQUIRE_MOUNTS=1
/// (set by `.ci/run`) makes that a failure.
struct Mount(std::path::PathBuf);

impl Mount {
    fn new(test: &str, args: &[&str], target: &std::path::Path) -> Option<Mount> {
        std::fs::create_dir_all(target).unwrap();
        let status = std::process::Command::new("mount")
            .args(args)
            .arg(target)
            .status();
        if status.is_ok_and(|status| status.success()) {
            return Some(Mount(target.to_path_buf()));
        }
        if std::env::var("BERTH_REQUIRE_MOUNTS").as_deref() == Ok("1") {
            panic!("{test}: cannot mount, and BERTH_REQUIRE_MOUNTS=1 requires it");
        }
        eprintln!("\n*** SKIPPED {test}: mount is not permitted here ***\n");
        None
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_read_only_or_full_state_directory_is_a_clear_error_that_damages_nothing() {
    let sandbox = Sandbox::new();
    let root = sandbox.project("cramped", &serve("web", 16500));
    sandbox.berth(&root, &["up"]).success();
    sandbox.berth(&root, &["down"]).success();
    let ledger_before = std::fs::read_to_string(sandbox.home().join("ledger.json")).unwrap();

    // The ledger's directory turns read-only.
    let home = sandbox.home();
    let Some(read_only) = Mount::new(
        "a_read_only_or_full_state_directory_is_a_clear_error_that_damages_nothing",
        &["--bind", home.to_str().unwrap()],
        &home,
    ) else {
        return;
    };
    let remount = std::process::Command::new("mount")
        .args(["-o", "remount,ro,bind"])
        .arg(&home)
        .status()
        .unwrap();
    assert!(remount.success());
    let run = sandbox.berth(&root, &["--name", "other", "up"]).code(1);
    assert!(
        run.stderr.contains(&home.display().to_string()),
        "{}",
        run.stderr
    );
    drop(read_only);
    assert_eq!(
        std::fs::read_to_string(home.join("ledger.json")).unwrap(),
        ledger_before,
        "the ledger is unchanged"
    );
    assert!(is_free(16500), "nothing was started");

    // The project's disk is full: a 1 MiB tmpfs filled to the last byte.
    let small = sandbox.dir.path().join("small");
    let Some(_full) = Mount::new(
        "full state directory",
        &["-t", "tmpfs", "-o", "size=1m", "tmpfs"],
        &small,
    ) else {
        return;
    };
    let project = small.join("app");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join("berth.toml"), serve("web", 16510)).unwrap();
    let filler = std::fs::File::create(small.join("filler")).unwrap();
    let mut filler = std::io::BufWriter::new(filler);
    let block = vec![0u8; 4096];
    while std::io::Write::write_all(&mut filler, &block).is_ok() {}
    drop(filler);
    let run = sandbox.berth(&project, &["up"]).code(1);
    assert!(
        run.stderr
            .contains(&project.join(".berth").display().to_string()),
        "the error names the file it could not write: {}",
        run.stderr
    );
    // The supervisor may have started the service while `up` wrote `instance.json`: by
    // the time `up` has failed, it has stopped it and exited, its own log unwritable.
    assert_eq!(pids_matching("serve --port 16510"), Vec::<u32>::new());
    assert_eq!(
        pids_matching(&format!("__supervise {}", project.display())),
        Vec::<u32>::new()
    );
    assert!(is_free(16510), "nothing was started");
    assert_eq!(
        std::fs::read_to_string(project.join("berth.toml")).unwrap(),
        serve("web", 16510),
        "the user's file is untouched"
    );
    // Nothing half-written, and gc takes back the ports the failed `up` had leased.
    assert_state_intact(&sandbox, &project);
    sandbox.berth(&project, &["gc"]).success();
    let ledger = sandbox.ledger();
    assert!(
        ledger["instances"]
            .as_array()
            .unwrap()
            .iter()
            .all(|entry| entry["name"] != "app"),
        "{ledger}"
    );
}

/// `rm` racing `up` on the same instance: the two are serialised, so each round ends with
/// either a running instance the ledger knows, or none at all; both commands succeed.
#[test]
fn rm_racing_up_never_leaves_an_instance_the_ledger_forgot() {
    let sandbox = Sandbox::new();
    let root = sandbox.project("race", "[services.idle]\ncommand = \"sleep 600\"\n");
    sandbox.berth(&root, &["up"]).success();
    for round in 0..12 {
        let up = sandbox
            .command(&root, &["up"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        if round % 2 == 0 {
            std::thread::sleep(Duration::from_millis(round * 3));
        }
        let rm = sandbox.berth(&root, &["rm", "--yes"]);
        let up = Run::from_output(up.wait_with_output().unwrap());
        assert_eq!(up.code, 0, "round {round}: up failed: {}", up.stderr);
        assert!(
            rm.code == 0 || rm.stderr.contains("no instance"),
            "round {round}: rm failed: {}",
            rm.stderr
        );
        let known = sandbox.ledger()["instances"]
            .as_array()
            .is_some_and(|entries| !entries.is_empty());
        let running: Vec<u32> = pids_matching(&format!("__supervise {}", root.display()));
        assert!(
            known || running.is_empty(),
            "round {round}: supervisor {running:?} runs but the ledger forgot the instance"
        );
        if !known {
            sandbox.berth(&root, &["up"]).success();
        }
    }
    sandbox.berth(&root, &["rm", "--yes"]).success();
    assert!(pids_matching(&format!("__supervise {}", root.display())).is_empty());
}

/// A descriptor left open by whoever ran `berth up` (here `flock`, which hands its lock
/// to the command it runs) is not held by the supervisor or the services afterwards:
/// the lock is free as soon as `up` returns, while the instance keeps running.
#[test]
fn a_descriptor_the_caller_left_open_is_not_held_by_the_instance() {
    let sandbox = Sandbox::new();
    let root = sandbox.project("fds", &serve("web", 12970));
    let lock = sandbox.dir.path().join("caller.lock");
    let command = sandbox.command(&root, &["up"]);
    let berth = command.get_program().to_owned();
    let arguments: Vec<_> = command.get_args().map(|arg| arg.to_owned()).collect();
    let mut through_flock = std::process::Command::new("flock");
    through_flock.arg(&lock).arg(berth).args(arguments);
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => through_flock.env(key, value),
            None => through_flock.env_remove(key),
        };
    }
    let status = through_flock.status().expect("run flock (util-linux)");
    assert!(status.success(), "flock berth up: {status}");
    assert!(accepts(12970), "the service answers");
    let free = std::process::Command::new("flock")
        .args(["-n"])
        .arg(&lock)
        .arg("true")
        .status()
        .expect("flock -n");
    assert!(
        free.success(),
        "the caller's lock is still held by the instance's processes"
    );
    sandbox.berth(&root, &["down"]).success();
}

/// The start time of a live process, as `/proc/PID/stat` gives it (field 22).
fn start_time_of(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    after_name.split(' ').nth(19).unwrap().parse().unwrap()
}

/// An edited `instance.json` naming an unrelated process exactly (its PID and its real
/// start time) decides nothing, even on a machine without cgroups where recorded PIDs
/// are what finds a crashed instance's processes: the file is not sealed with the key
/// under BERTH_HOME, so `status`, `down`, `gc` and `rm` leave that process alone.
#[test]
fn an_edited_state_file_naming_a_live_process_exactly_is_ignored_without_cgroups() {
    let mut sandbox = Sandbox::new();
    sandbox.env.push(("BERTH_NO_CGROUP", "1"));
    let root = sandbox.project("edited", "[services.idle]\ncommand = \"sleep 60\"\n");
    sandbox.berth(&root, &["up"]).success();
    sandbox.berth(&root, &["down"]).success();
    let mut bystander = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let path = root.join(".berth/edited/instance.json");
    for command in [&["status"][..], &["down"], &["gc"], &["rm", "--yes"]] {
        let mut file: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        file["state"] = "running".into();
        file["services"]["idle"]["pid"] = serde_json::json!({
            "pid": bystander.id(),
            "start_time": start_time_of(bystander.id()),
        });
        std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
        sandbox.berth(&root, command).success();
        assert!(
            pid_alive(bystander.id()),
            "`berth {}` signalled a process it does not own",
            command.join(" ")
        );
        if !path.exists() {
            break;
        }
    }
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}
