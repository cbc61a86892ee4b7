//! Worktrees from start to finish, in a git repository no one here wrote (the source of
//! the `humantime` crate, as cargo downloaded it), served by Python's own HTTP server:
//! `berth new` twice, the ignored files copied and linked, each worktree serving its own
//! files on its own ports, `down --all`, `rm --worktree` with and without uncommitted
//! changes, and git's own view afterwards; `[ports] strategy = "hash"` giving a name the
//! same ports in two separate ledgers; `prepare`; `logs --all`.
//!
//! Ports: 13600–13899 (stride 100) and 65000–65500 (the hash slots, stride 50).

mod support;

use std::path::{Path, PathBuf};

use support::{Sandbox, accepts, git, http_get, port_of, wait_for};

/// The main work tree's web port; worktrees get +100 and +200.
const BASE: u16 = 13600;

/// The source of a real crate from cargo's registry: files no one here wrote.
fn real_source() -> PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo"));
    let registry = cargo_home.join("registry/src");
    std::fs::read_dir(&registry)
        .expect("cargo's registry sources")
        .flat_map(|index| std::fs::read_dir(index.unwrap().path()).unwrap())
        .map(|entry| entry.unwrap().path())
        .find(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("humantime-2."))
        })
        .expect("humantime's source in cargo's registry (berth depends on it)")
}

/// `sandbox/humantime`: the crate's source committed to a new repository, with a
/// berth.toml serving the work tree over HTTP, and ignored files berth must bring over.
fn repository(sandbox: &Sandbox, berth_toml: &str) -> PathBuf {
    let main = sandbox.dir.path().join("humantime");
    let copied = std::process::Command::new("cp")
        .arg("-r")
        .arg(real_source())
        .arg(&main)
        .status()
        .unwrap();
    assert!(copied.success());
    std::fs::write(main.join("berth.toml"), berth_toml).unwrap();
    let mut ignore = std::fs::read_to_string(main.join(".gitignore")).unwrap_or_default();
    ignore.push_str("\n.env\nconfig/*.key\nvendor-cache/\n.setup-ran\n");
    std::fs::write(main.join(".gitignore"), ignore).unwrap();
    std::fs::write(main.join("which.txt"), "main\n").unwrap();
    git(&main, &["init", "-q", "-b", "main"]);
    git(&main, &["add", "-A"]);
    git(&main, &["commit", "-qm", "humantime as published"]);
    // What a developer has that git does not: secrets, and a heavy shared directory.
    std::fs::write(main.join(".env"), "SECRET=from-main\n").unwrap();
    std::fs::create_dir_all(main.join("config")).unwrap();
    std::fs::write(main.join("config/master.key"), "k3y\n").unwrap();
    std::fs::create_dir_all(main.join("vendor-cache/pkg")).unwrap();
    std::fs::write(main.join("vendor-cache/pkg/lib.js"), "// big\n").unwrap();
    main.canonicalize().unwrap()
}

fn web_config(port: u16) -> String {
    format!(
        "[worktree]\ncopy = [\".env\", \"config/*.key\"]\nlink = [\"vendor-cache\"]\n\
         setup = [\"echo ran >> .setup-ran\"]\n\n\
         [services.web]\n\
         command = \"python3 -m http.server {{{{ port.web }}}} --bind 127.0.0.1\"\n\
         port = {port}\nready = {{ http = \"/which.txt\" }}\n"
    )
}

fn web_port(status: &serde_json::Value) -> u16 {
    port_of(status, "web")
}

fn served(port: u16, path: &str) -> String {
    http_get(port, path)
        .map(|(_, body)| body)
        .unwrap_or_default()
}

#[test]
fn new_worktrees_serve_their_own_files_and_rm_worktree_keeps_uncommitted_work() {
    let sandbox = Sandbox::new();
    let main = repository(&sandbox, &web_config(BASE));
    let up = sandbox.berth(&main, &["up", "--json"]).success().json();
    assert_eq!(web_port(&up), BASE);
    assert!(served(BASE, "/README.md").contains("humantime"));

    let a = sandbox
        .berth(&main, &["new", "feature-a", "--json"])
        .success()
        .json();
    let tree_a = sandbox
        .dir
        .path()
        .canonicalize()
        .unwrap()
        .join("humantime-feature-a");
    assert_eq!(a["worktree"], tree_a.to_str().unwrap(), "{a}");
    assert_eq!(a["branch"], "feature-a");
    assert_eq!(a["new_branch"], true);
    assert_eq!(
        a["brought"]["copied"],
        serde_json::json!([".env", "config/master.key"])
    );
    assert_eq!(a["brought"]["linked"], serde_json::json!(["vendor-cache"]));
    assert_eq!(a["instance"]["name"], "feature-a");
    let port_a = web_port(&a["instance"]);
    let b = sandbox.berth(&main, &["new", "feature-b"]).success();
    assert!(
        b.stderr.contains("created worktree") && b.stderr.contains("on new branch `feature-b`"),
        "{}",
        b.stderr
    );
    let tree_b = tree_a.with_file_name("humantime-feature-b");
    let port_b = web_port(
        &sandbox
            .berth(&tree_b, &["status", "--json"])
            .success()
            .json(),
    );
    let mut ports = vec![BASE, port_a, port_b];
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 3, "each instance on its own port: {ports:?}");

    // The ignored files came over: copies are the worktree's own, links are shared.
    for tree in [&tree_a, &tree_b] {
        assert_eq!(
            std::fs::read_to_string(tree.join(".env")).unwrap(),
            "SECRET=from-main\n"
        );
        assert_eq!(
            std::fs::read_to_string(tree.join("config/master.key")).unwrap(),
            "k3y\n"
        );
        assert_eq!(
            std::fs::read_link(tree.join("vendor-cache")).unwrap(),
            main.join("vendor-cache")
        );
        assert_eq!(
            std::fs::read_to_string(tree.join(".setup-ran")).unwrap(),
            "ran\n"
        );
    }
    assert!(
        !main.join(".setup-ran").exists(),
        "setup runs in the new worktree only"
    );

    // Each worktree serves its own files: commit a change on each branch.
    for (tree, which) in [(&tree_a, "a\n"), (&tree_b, "b\n")] {
        std::fs::write(tree.join("which.txt"), which).unwrap();
        git(tree, &["commit", "-qam", "this branch's which.txt"]);
    }
    assert_eq!(served(BASE, "/which.txt"), "main\n");
    assert_eq!(served(port_a, "/which.txt"), "a\n");
    assert_eq!(served(port_b, "/which.txt"), "b\n");

    // One project: `ls` shows the three under the main work tree's name.
    let listed = sandbox.berth(&main, &["ls", "--json"]).success().json();
    let projects: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["project"].as_str().unwrap())
        .collect();
    assert_eq!(projects, ["humantime"; 3], "{listed}");

    // `logs --all`: every instance's lines, each prefixed with instance and service.
    let logs = sandbox.berth(&main, &["logs", "--all"]).success().stdout;
    for name in ["humantime/web", "feature-a/web", "feature-b/web"] {
        assert!(logs.contains(name), "{name} in:\n{logs}");
    }
    let json_lines = sandbox
        .berth(&main, &["logs", "--all", "--json"])
        .success()
        .stdout;
    let instances: std::collections::BTreeSet<String> = json_lines
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .map(|line| line["instance"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(instances.len(), 3, "{json_lines}");

    // `down --all` from any worktree stops all three.
    sandbox.berth(&tree_b, &["down", "--all"]).success();
    for port in [BASE, port_a, port_b] {
        wait_for(
            "the port to close",
            std::time::Duration::from_secs(10),
            || !accepts(port),
        );
    }

    // Uncommitted work is never thrown away without --force.
    std::fs::write(tree_a.join("src/lib.rs"), "// edited, not committed\n").unwrap();
    let refused = sandbox.berth(&tree_a, &["rm", "--worktree"]).code(2);
    assert!(
        refused.stderr.contains("uncommitted changes") && refused.stderr.contains("src/lib.rs"),
        "{}",
        refused.stderr
    );
    assert!(tree_a.join("src/lib.rs").exists());
    sandbox.berth(&tree_a, &["status"]).success();
    sandbox
        .berth(&tree_a, &["rm", "--worktree", "--force"])
        .success();
    assert!(!tree_a.exists());
    // The linked directory berth made does not count as the user's work.
    sandbox.berth(&tree_b, &["rm", "--worktree"]).success();
    assert!(!tree_b.exists());

    // git's own view: only the main work tree; both branches stay, with their commits.
    let worktrees = git(&main, &["worktree", "list", "--porcelain"]);
    assert_eq!(worktrees.matches("worktree ").count(), 1, "{worktrees}");
    let branches = git(&main, &["branch", "--format=%(refname:short)"]);
    assert_eq!(
        branches.lines().collect::<Vec<_>>(),
        ["feature-a", "feature-b", "main"]
    );
    assert_eq!(git(&main, &["show", "feature-a:which.txt"]), "a");
    // The main work tree is as it was, its own files and ignored files untouched.
    assert_eq!(git(&main, &["status", "--porcelain"]), "");
    assert_eq!(
        std::fs::read_to_string(main.join(".env")).unwrap(),
        "SECRET=from-main\n"
    );
    assert!(main.join("vendor-cache/pkg/lib.js").exists());
    let ledger = sandbox.berth(&main, &["ls", "--json"]).success().json();
    assert_eq!(ledger.as_array().map(Vec::len), Some(1), "{ledger}");
    sandbox.berth(&main, &["rm", "--yes"]).success();
}

#[test]
fn new_refuses_clearly_and_a_failed_setup_leaves_nothing() {
    let sandbox = Sandbox::new();
    let failing = web_config(BASE + 250).replace("echo ran >> .setup-ran", "exit 3");
    let main = repository(&sandbox, &failing);
    let tree = sandbox
        .dir
        .path()
        .canonicalize()
        .unwrap()
        .join("humantime-broken");

    let failed = sandbox.berth(&main, &["new", "broken"]).code(1);
    assert!(
        failed.stderr.contains("the setup command `exit 3` failed"),
        "{}",
        failed.stderr
    );
    assert!(!tree.exists(), "the worktree is removed again");
    assert_eq!(
        git(&main, &["branch", "--list", "broken"]),
        "",
        "and its branch"
    );
    assert_eq!(
        git(&main, &["worktree", "list", "--porcelain"])
            .matches("worktree ")
            .count(),
        1
    );

    // A branch of that name exists: say how to use it.
    git(&main, &["branch", "taken"]);
    let taken = sandbox.berth(&main, &["new", "taken", "--no-up"]).code(2);
    assert!(taken.stderr.contains("--branch taken"), "{}", taken.stderr);
    // Not a name berth takes; not a git work tree.
    sandbox.berth(&main, &["new", "Bad Name"]).code(2);
    let plain = sandbox.project("plain", &web_config(BASE + 260));
    let outside = sandbox.berth(&plain, &["new", "x"]).code(2);
    assert!(
        outside.stderr.contains("not in a git work tree"),
        "{}",
        outside.stderr
    );
    // The main work tree is never removed by --worktree.
    std::fs::write(main.join("berth.toml"), web_config(BASE + 270)).unwrap();
    git(&main, &["commit", "-qam", "no setup"]);
    sandbox.berth(&main, &["prepare"]).success();
    let kept = sandbox.berth(&main, &["rm", "--worktree", "--yes"]).code(2);
    assert!(
        kept.stderr.contains("not a linked git worktree"),
        "{}",
        kept.stderr
    );
    sandbox.berth(&main, &["rm", "--yes"]).success();
}

/// The ports `prepare` leased for the instance at `dir`.
fn prepared_ports(sandbox: &Sandbox, dir: &Path, name: &[&str]) -> (u16, String) {
    let args = [name, &["prepare", "--json"]].concat();
    let run = sandbox.berth(dir, &args).success();
    let status = run.json();
    assert_eq!(status["services"][0]["state"], "stopped", "{status}");
    (web_port(&status), run.stderr)
}

#[test]
fn hash_strategy_gives_a_name_the_same_ports_on_every_machine() {
    // Two machines: two ledgers, two clones of one repository.
    let config = "[ports]\nstrategy = \"hash\"\nstride = 50\n\n\
                  [services.web]\ncommand = \"python3 -m http.server {{ port.web }} --bind 127.0.0.1\"\n\
                  port = 65000\n";
    let machines = [Sandbox::new(), Sandbox::new()];
    let mut seen = Vec::new();
    for sandbox in &machines {
        let main = repository(sandbox, config);
        let (main_port, _) = prepared_ports(sandbox, &main, &[]);
        assert_eq!(main_port, 65000, "the main work tree keeps the base port");
        sandbox
            .berth(&main, &["new", "feature-auth", "--no-up"])
            .success();
        let tree = main.with_file_name("humantime-feature-auth");
        let (port, _) = prepared_ports(sandbox, &tree, &[]);
        assert!(port > 65000 && (port - 65000) % 50 == 0, "{port}");
        // `prepare` wrote the files and started nothing.
        assert!(!accepts(port));
        assert!(tree.join(".berth/feature-auth/instance.json").is_file());
        seen.push((tree, port));
    }
    assert_eq!(
        seen[0].1, seen[1].1,
        "the same name, the same port on both machines"
    );

    // On a machine where that port is taken, the next free slot, with a note.
    let sandbox = &machines[1];
    let (tree, port) = &seen[1];
    sandbox.berth(tree, &["rm", "--yes"]).success();
    let holder = std::net::TcpListener::bind(("127.0.0.1", *port)).unwrap();
    let (moved, notes) = prepared_ports(sandbox, tree, &["--name", "feature-auth"]);
    drop(holder);
    assert_ne!(moved, *port);
    assert!(notes.contains("hashed offset"), "{notes}");
    for (sandbox, (tree, _)) in machines.iter().zip(&seen) {
        sandbox
            .berth(tree, &["rm", "--worktree", "--yes"])
            .success();
        let main = tree.with_file_name("humantime");
        sandbox.berth(&main, &["rm", "--yes"]).success();
    }
}

#[test]
fn zero_config_compose_worktrees_are_one_project_so_from_copies_across_them() {
    if !support::docker::available(
        "zero_config_compose_worktrees_are_one_project_so_from_copies_across_them",
    ) {
        return;
    }
    let sandbox = Sandbox::new();
    let main = sandbox.project_files(
        "app",
        &[(
            "compose.yaml",
            &format!(
                "services:\n  web:\n    image: {}\n    command: [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/site\"]\n    ports:\n      - \"13650:8080\"\n    volumes:\n      - site:/site\nvolumes:\n  site: {{}}\n",
                support::docker::IMAGE
            ),
        )],
    );
    git(&main, &["init", "-q", "-b", "main"]);
    git(&main, &["add", "-A"]);
    git(
        &main,
        &["commit", "-qm", "a compose project, no berth.toml"],
    );
    sandbox.berth(&main, &["up"]).success();
    sandbox
        .berth(
            &main,
            &[
                "exec",
                "web",
                "--",
                "sh",
                "-c",
                "echo main > /site/which.txt",
            ],
        )
        .success();
    assert_eq!(served(13650, "/which.txt"), "main\n");

    // A worktree made by git itself: the same project, so `--from app` finds main.
    let tree = main.with_file_name("app-feature");
    git(
        &main,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "feature",
            tree.to_str().unwrap(),
        ],
    );
    let up = sandbox
        .berth(&tree, &["up", "--from", "app", "--json"])
        .success();
    let status = up.json();
    assert_eq!(status["project"], "app", "{status}");
    let port = web_port(&status);
    assert_eq!(
        served(port, "/which.txt"),
        "main\n",
        "the copy of main's volume"
    );
    sandbox
        .berth(
            &tree,
            &[
                "exec",
                "web",
                "--",
                "sh",
                "-c",
                "echo feature > /site/which.txt",
            ],
        )
        .success();
    assert_eq!(served(port, "/which.txt"), "feature\n");
    assert_eq!(
        served(13650, "/which.txt"),
        "main\n",
        "main's data is its own"
    );
    sandbox
        .berth(&tree, &["rm", "--worktree", "--yes"])
        .success();
    sandbox.berth(&main, &["rm", "--yes"]).success();
    assert!(!tree.exists());
}
