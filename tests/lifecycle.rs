//! End-to-end: up, status, ls, port, url, env, logs, restart, down on real processes.

mod support;

use std::time::Duration;

use support::*;

fn two_services(base: u16) -> String {
    let helper = helper();
    format!(
        r#"
[project]
name = "duo"

[services.db]
command = "{helper} serve --port {{{{ port.db }}}}"
port = {db}

[services.web]
command = "{helper} serve --port {{{{ port.web }}}}"
port = {web}
depends_on = ["db"]
ready = {{ http = "/health" }}
env = {{ DB_URL = "postgres://app@127.0.0.1:{{{{ port.db }}}}/app_{{{{ instance.index }}}}" }}
"#,
        db = base,
        web = base + 1
    )
}

#[test]
fn instances_get_their_own_ports_and_down_frees_them() {
    let sandbox = Sandbox::new();
    let root = sandbox.project("duo", &two_services(12000));

    let first = sandbox.berth(&root, &["up", "--json"]).success().json();
    assert_eq!(first["name"], "duo");
    assert_eq!(port_of(&first, "db"), 12000);
    assert_eq!(port_of(&first, "web"), 12001);
    let second = sandbox
        .berth(&root, &["--instance", "1", "up", "--json"])
        .success()
        .json();
    assert_eq!(second["name"], "duo-1");
    assert_eq!(port_of(&second, "web"), 12101);

    // Each instance's process sees its own identity and ports.
    assert_eq!(http_get(12001, "/env/BERTH_INSTANCE").unwrap().1, "duo");
    assert_eq!(http_get(12101, "/env/BERTH_INSTANCE").unwrap().1, "duo-1");
    assert_eq!(
        http_get(12101, "/env/DB_URL").unwrap().1,
        "postgres://app@127.0.0.1:12100/app_1"
    );
    assert_eq!(http_get(12101, "/env/PORT").unwrap().1, "12101");
    assert_eq!(http_get(12101, "/env/BERTH_PORT_DB").unwrap().1, "12100");

    let ls = sandbox.berth(&root, &["ls", "--json"]).success().json();
    let states: Vec<(&str, &str)> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["name"].as_str().unwrap(),
                row["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(states, vec![("duo", "running"), ("duo-1", "running")]);

    assert_eq!(
        sandbox
            .berth(&root, &["--name", "duo-1", "port", "db"])
            .success()
            .stdout,
        "12100\n"
    );
    assert_eq!(
        sandbox
            .berth(&root, &["--instance", "1", "url", "web"])
            .success()
            .stdout,
        "http://127.0.0.1:12101\n"
    );
    // Two instances in one root: a command must say which.
    let ambiguous = sandbox.berth(&root, &["status"]).code(2);
    assert!(
        ambiguous.stderr.contains("several instances") && ambiguous.stderr.contains("duo-1"),
        "{}",
        ambiguous.stderr
    );

    let pids: Vec<u32> = service_pids(&first)
        .into_iter()
        .map(|(_, pid)| pid)
        .collect();
    sandbox.berth(&root, &["--name", "duo", "down"]).success();
    assert!(
        pids.iter().all(|pid| !pid_alive(*pid)),
        "processes left after down"
    );
    assert!(is_free(12000) && is_free(12001));
    // The other instance is untouched.
    assert_eq!(http_get(12101, "/health").unwrap().0, 200);
    // Leases survive down: the instance gets the same ports back.
    let again = sandbox
        .berth(&root, &["--name", "duo", "up", "--json"])
        .success()
        .json();
    assert_eq!(port_of(&again, "web"), 12001);
    sandbox
        .berth(&root, &["--name", "duo", "down", "--release"])
        .success();
    let ledger = sandbox.ledger();
    let duo = ledger["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["name"] == "duo")
        .unwrap()
        .clone();
    assert_eq!(duo["leases"].as_array().unwrap().len(), 0);
}

#[test]
fn the_bundled_example_runs_with_api_talking_to_stock() {
    let sandbox = Sandbox::new();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shop/berth.toml");
    let bin_dir = workspace_bin("shop-api")
        .parent()
        .unwrap()
        .display()
        .to_string();
    let config = std::fs::read_to_string(source)
        .unwrap()
        .replace("../../target/release", &bin_dir);
    let root = sandbox.project("shop", &config);
    let status = sandbox.berth(&root, &["up", "--json"]).success().json();
    let api = port_of(&status, "api");
    let (code, body) = http_get(api, "/items/widget").unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("\"count\":44") && body.contains("\"instance\":\"shop\""),
        "{body}"
    );
    wait_for(
        "the worker to reach the api",
        Duration::from_secs(10),
        || {
            sandbox
                .berth(&root, &["logs", "worker"])
                .stdout
                .contains("worker | worker: widget stock=44")
        },
    );
    sandbox.berth(&root, &["down"]).success();
}

#[test]
fn up_is_idempotent_and_restart_replaces_the_process() {
    let sandbox = Sandbox::new();
    let root = sandbox.project("idem", &two_services(12200));
    let first = sandbox.berth(&root, &["up", "--json"]).success().json();
    let again = sandbox.berth(&root, &["up", "--json"]).success().json();
    assert_eq!(service_pids(&first), service_pids(&again));
    assert_eq!(pids_matching(&format!("--port {}", 12200)).len(), 1);

    let old_web = service_pids(&first)
        .into_iter()
        .find(|(name, _)| name == "web")
        .unwrap()
        .1;
    let restarted = sandbox
        .berth(&root, &["restart", "web", "--json"])
        .success()
        .json();
    let new_web = service_pids(&restarted)
        .into_iter()
        .find(|(name, _)| name == "web")
        .unwrap()
        .1;
    assert_ne!(old_web, new_web);
    assert!(!pid_alive(old_web));
    assert_eq!(http_get(12201, "/health").unwrap().0, 200);

    // A changed configuration restarts the instance with the new command.
    std::fs::write(
        root.join("berth.toml"),
        two_services(12200).replace("name = \"duo\"", "name = \"duo\"\n# changed\n")
            + "\n[services.extra]\ncommand = \"sleep 30\"\n",
    )
    .unwrap();
    let changed = sandbox.berth(&root, &["up", "--json"]).success();
    assert!(
        changed.stderr.contains("configuration of `idem` changed"),
        "{}",
        changed.stderr
    );
    assert_eq!(changed.json()["services"].as_array().unwrap().len(), 3);
}

#[test]
fn status_logs_env_and_git_exclude() {
    let sandbox = Sandbox::new();
    let root = sandbox.project("obs", &two_services(12300));
    std::fs::create_dir_all(root.join(".git/info")).unwrap();
    sandbox.berth(&root, &["up"]).success();
    let status = sandbox.berth(&root, &["status"]).success().stdout;
    assert!(
        status.starts_with("instance obs (index 0, offset 0) running"),
        "{status}"
    );
    assert!(status.contains("web      ready  12301"), "{status}");

    let logs = sandbox.berth(&root, &["logs", "-n", "1"]).success().stdout;
    assert!(logs.contains("db  | listening on 12300"), "{logs}");
    assert!(logs.contains("web | listening on 12301"), "{logs}");

    let shell = sandbox
        .berth(&root, &["env", "--format", "shell"])
        .success()
        .stdout;
    assert!(shell.contains("export BERTH_PORT_WEB=12301"), "{shell}");
    let evaluated = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{shell}\nprintf %s \"$BERTH_ROOT\""))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&evaluated.stdout),
        root.display().to_string()
    );
    let json = sandbox.berth(&root, &["env", "--json"]).success().json();
    assert_eq!(json["BERTH_INSTANCE"], "obs");

    let exclude = std::fs::read_to_string(root.join(".git/info/exclude")).unwrap();
    assert!(exclude.lines().any(|line| line == ".berth/"), "{exclude}");
    let instance: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join(".berth/obs/instance.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(instance["version"], 1);
    assert_eq!(instance["services"]["web"]["state"], "ready");
}

#[test]
fn setup_runs_once_and_templates_reach_commands() {
    let sandbox = Sandbox::new();
    let helper = helper();
    let root = sandbox.project(
        "with space",
        &format!(
            r#"
[services.task]
command = "{helper} write-file --path {{{{ instance.data }}}}/out.txt --text {{{{ project.name }}}}-{{{{ instance.name }}}}"
setup = "sh -c 'echo once >> \"$0/setup.log\"' {{{{ instance.data }}}}"
"#
        ),
    );
    sandbox.berth(&root, &["up"]).success();
    let data = root.join(".berth/with-space/data");
    wait_for("the task to write its file", Duration::from_secs(5), || {
        data.join("out.txt").exists()
    });
    assert_eq!(
        std::fs::read_to_string(data.join("out.txt")).unwrap(),
        "with-space-with-space"
    );
    sandbox.berth(&root, &["down"]).success();
    sandbox.berth(&root, &["up"]).success();
    assert_eq!(
        std::fs::read_to_string(data.join("setup.log")).unwrap(),
        "once\n"
    );
}

#[test]
fn attach_follows_logs_and_ctrl_c_brings_the_instance_down() {
    let sandbox = Sandbox::new();
    let root = sandbox.project("attached", &two_services(12400));
    let mut child = sandbox
        .command(&root, &["up", "--attach"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the web service", Duration::from_secs(20), || {
        accepts(12401)
    });
    wait_for("attach to start following", Duration::from_secs(5), || {
        sandbox.berth(&root, &["status", "--json"]).json()["state"] == "running"
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(is_free(12400) && is_free(12401));
    assert_eq!(
        sandbox.berth(&root, &["status", "--json"]).json()["state"],
        "stopped"
    );
}

#[test]
fn completions_and_man_page_come_from_the_cli() {
    let sandbox = Sandbox::new();
    let dir = sandbox.dir.path().to_path_buf();
    let bash = sandbox.berth(&dir, &["completions", "bash"]).success();
    for command in ["up", "down", "status", "exec", "rm", "gc", "completions"] {
        assert!(bash.stdout.contains(command), "bash completes `{command}`");
    }
    let script = dir.join("berth.bash");
    std::fs::write(&script, &bash.stdout).unwrap();
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .unwrap();
    assert!(syntax.success(), "the bash script parses");
    for shell in ["zsh", "fish"] {
        let script = sandbox.berth(&dir, &["completions", shell]).success();
        assert!(
            script.stdout.contains("port-offset"),
            "{shell} completes flags"
        );
    }
    let man = sandbox.berth(&dir, &["man"]).success();
    assert!(man.stdout.contains(".TH berth 1"), "{}", man.stdout);
    assert!(man.stdout.contains("completions"));
    sandbox.berth(&dir, &["completions", "tcsh"]).code(2);
}

#[test]
fn status_and_ls_tell_when_the_work_tree_moved_since_up() {
    let sandbox = Sandbox::new();
    let dir = sandbox.project(
        "repo",
        &format!(
            "[services.web]\ncommand = \"{} serve --port {{{{ port.web }}}}\"\nport = 12450\n",
            helper()
        ),
    );
    let git = |args: &[&str]| support::git(&dir, args);
    git(&["init", "-q", "-b", "main"]);
    git(&["commit", "-q", "--allow-empty", "-m", "first"]);
    let first = git(&["rev-parse", "HEAD"]);
    let up = sandbox.berth(&dir, &["up", "--json"]).success().json();
    assert_eq!(up["git"]["branch"], "main");
    assert_eq!(up["git"]["commit"], first.as_str());
    assert_eq!(up["git"]["moved"], false);

    git(&["checkout", "-q", "-b", "feature"]);
    git(&["commit", "-q", "--allow-empty", "-m", "second"]);
    let status = sandbox.berth(&dir, &["status"]).success();
    let short = &first[..7];
    assert!(
        status
            .stdout
            .contains(&format!("git main@{short} (moved: now feature@")),
        "{}",
        status.stdout
    );
    let ls = sandbox.berth(&dir, &["ls", "--json"]).success().json();
    assert_eq!(ls[0]["git"]["moved"], true, "{ls}");
    assert_eq!(ls[0]["git"]["now"]["branch"], "feature");
    // The next `up` (a restart) records where the tree is now.
    sandbox.berth(&dir, &["down"]).success();
    let again = sandbox.berth(&dir, &["up", "--json"]).success().json();
    assert_eq!(again["git"]["branch"], "feature");
    assert_eq!(again["git"]["moved"], false);
}
