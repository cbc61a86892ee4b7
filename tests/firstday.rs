//! A new user's first day: a Heroku-style project (a Procfile with a release step, a
//! gunicorn web process that reads `$PORT` itself, a worker, a `.env`), taken as it comes:
//! `berth init`, then `berth up` in two work trees at once, no hand edits. Each instance
//! runs on its own ports with `.env` applied and the release step first; `berth env web`
//! and `berth exec web` show what the app sees; `rm` leaves the work tree as it was.
//! The 404 test moves its ports to 18900-18999 (`tests/readme.rs` has 18000-18799).

mod support;

use std::path::Path;
use std::process::Stdio;

use support::*;

const PROCFILE: &str = "release: sh -c 'sleep 0.5; echo done > released'\nweb: gunicorn --workers 1 app:app\nworker: python3 worker.py\n";

/// The app refuses to serve before the release step ran, and shows what it was given.
const APP: &str = r#"import os
def app(environ, start_response):
    released = os.path.exists("released")
    start_response("200 OK" if released else "500 Not Released", [("Content-Type", "text/plain")])
    return [("%s %s" % (os.environ.get("GREETING"), os.environ.get("PORT"))).encode()]
"#;

const WORKER: &str = "import os, time\nopen('worker.out', 'w').write(os.environ.get('GREETING', '') + ' ' + os.environ.get('PORT', ''))\ntime.sleep(600)\n";

fn project(sandbox: &Sandbox, name: &str) -> std::path::PathBuf {
    let dir = sandbox.project_files(
        name,
        &[
            ("Procfile", PROCFILE),
            ("app.py", APP),
            ("worker.py", WORKER),
            (".env", "GREETING=hello-from-dotenv\n"),
        ],
    );
    git(&dir, &["init", "-q"]);
    git(&dir, &["add", "."]);
    git(&dir, &["commit", "-qm", "app"]);
    dir
}

fn work_tree_state(dir: &Path) -> (String, String) {
    let status = git(dir, &["status", "--porcelain", "--ignored"]);
    let exclude = std::fs::read_to_string(dir.join(".git/info/exclude")).unwrap_or_default();
    (status, exclude)
}

#[test]
fn a_procfile_project_runs_twice_from_berth_init_alone() {
    if !std::path::Path::new("/usr/bin/gunicorn").exists() {
        if std::env::var("BERTH_REQUIRE_PROGRAMS").as_deref() == Ok("1") {
            panic!("gunicorn is missing, and BERTH_REQUIRE_PROGRAMS=1 requires it");
        }
        eprintln!("\n*** SKIPPED: gunicorn is not installed (scripts/test-deps installs it) ***\n");
        return;
    }
    let sandbox = Sandbox::new();
    let first = project(&sandbox, "shop");
    let second = project(&sandbox, "shop-feature");
    let before = work_tree_state(&first);

    for dir in [&first, &second] {
        let init = sandbox.berth(dir, &["init"]).success();
        assert!(
            init.stdout.contains("restart = \"never\""),
            "{}",
            init.stdout
        );
        assert!(
            init.stdout.contains("env_file = \".env\""),
            "{}",
            init.stdout
        );
        // Both worktrees are one project.
        let config = std::fs::read_to_string(dir.join("berth.toml"))
            .unwrap()
            .replace("name = \"shop-feature\"", "name = \"shop\"");
        std::fs::write(dir.join("berth.toml"), config).unwrap();
    }
    let ups: Vec<std::process::Child> = [&first, &second]
        .iter()
        .map(|dir| {
            sandbox
                .command(dir, &["up", "--timeout", "60"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for up in ups {
        Run::from_output(up.wait_with_output().unwrap()).success();
    }
    let mut ports = Vec::new();
    for dir in [&first, &second] {
        let status = sandbox.berth(dir, &["status", "--json"]).success().json();
        let web = port_of(&status, "web");
        let worker = port_of(&status, "worker");
        assert_ne!(web, worker, "every process gets its own PORT");
        let (code, body) = http_get(web, "/").expect("web answers");
        assert_eq!(code, 200, "the release step had not run: {body}");
        assert_eq!(body, format!("hello-from-dotenv {web}"));
        wait_for("the worker", std::time::Duration::from_secs(10), || {
            dir.join("worker.out").exists()
        });
        assert_eq!(
            std::fs::read_to_string(dir.join("worker.out")).unwrap(),
            format!("hello-from-dotenv {worker}")
        );
        // What the app sees, from the outside.
        let env = sandbox.berth(dir, &["env", "web"]).success().stdout;
        assert!(
            env.lines().any(|line| line == format!("PORT={web}")),
            "{env}"
        );
        assert!(
            env.lines().any(|line| line == "GREETING=hello-from-dotenv"),
            "{env}"
        );
        assert!(env.lines().any(|line| line.starts_with("PATH=")), "{env}");
        let exec = sandbox
            .berth(
                dir,
                &["exec", "web", "--", "sh", "-c", "echo $GREETING $PORT; pwd"],
            )
            .success()
            .stdout;
        assert_eq!(
            exec,
            format!("hello-from-dotenv {web}\n{}\n", dir.display())
        );
        let url = sandbox.berth(dir, &["url", "web"]).success().stdout;
        assert_eq!(url.trim(), format!("http://127.0.0.1:{web}"));
        let url = sandbox.berth(dir, &["url", "worker"]).success().stdout;
        assert_eq!(
            url.trim(),
            format!("127.0.0.1:{worker}"),
            "not HTTP: no http://"
        );
        ports.push(web);
    }
    assert_ne!(ports[0], ports[1], "two instances share a port");

    // `rm` leaves the work tree as it was, but for the berth.toml `init` wrote.
    sandbox.berth(&second, &["rm", "--yes"]).success();
    sandbox.berth(&first, &["rm", "--yes"]).success();
    for file in ["berth.toml", "released", "worker.out"] {
        std::fs::remove_file(first.join(file)).unwrap();
    }
    assert_eq!(work_tree_state(&first), before);
    assert!(!first.join(".berth").exists());
}

#[test]
fn up_with_no_services_is_a_usage_error() {
    let sandbox = Sandbox::new();
    let root = sandbox.project("empty", "[project]\nname = \"empty\"\n");
    let run = sandbox.berth(&root, &["up"]).code(2);
    assert!(
        run.stderr.contains("declares no services"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
}

#[test]
fn project_env_reaches_every_service_and_a_services_own_env_wins() {
    let sandbox = Sandbox::new();
    let root = sandbox.project_files(
        "projenv",
        &[
            (
                "berth.toml",
                "[project]\nenv = { SHARED = \"from-project\", LEVEL = \"project\" }\nenv_file = \"common.env\"\n\n[services.a]\ncommand = \"sleep 600\"\n\n[services.b]\ncommand = \"sleep 600\"\nenv = { LEVEL = \"service\" }\n",
            ),
            ("common.env", "FROM_FILE=yes\nLEVEL=file\n"),
        ],
    );
    sandbox.berth(&root, &["up"]).success();
    let a = sandbox
        .berth(&root, &["env", "a", "--format", "shell"])
        .success()
        .stdout;
    let b = sandbox.berth(&root, &["env", "b"]).success().stdout;
    assert!(a.contains("export SHARED=from-project"), "{a}");
    assert!(a.contains("export FROM_FILE=yes"), "{a}");
    assert!(a.contains("export LEVEL=project"), "{a}");
    assert!(b.lines().any(|line| line == "LEVEL=service"), "{b}");
    assert!(b.lines().any(|line| line == "SHARED=from-project"), "{b}");
    // And what `env` prints is what the process has.
    let pid = service_pids(&sandbox.berth(&root, &["status", "--json"]).success().json())
        .into_iter()
        .find(|(name, _)| name == "b")
        .unwrap()
        .1;
    let environ = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/environ")).unwrap())
        .replace('\0', "\n");
    assert!(
        environ.lines().any(|line| line == "LEVEL=service"),
        "{environ}"
    );
    assert!(
        environ.lines().any(|line| line == "FROM_FILE=yes"),
        "{environ}"
    );
    sandbox.berth(&root, &["down"]).success();
}

/// A web app that answers 404 on `/` (it serves only `/api/…`), run by `berth init`'s
/// config as it comes: `init` makes web's readiness an HTTP check that any answer passes,
/// so the app is ready; the 2xx/3xx default on `/` would never be.
#[test]
fn a_web_app_answering_404_on_its_root_is_ready_under_berth_init_s_config() {
    const APP: &str = "import http.server, os\n\
class Handler(http.server.BaseHTTPRequestHandler):\n    \
def do_GET(self):\n        \
found = self.path.startswith('/api/')\n        \
self.send_response(200 if found else 404)\n        \
self.end_headers()\n        \
self.wfile.write(b'api\\n' if found else b'no page here\\n')\n\
http.server.HTTPServer(('127.0.0.1', int(os.environ['PORT'])), Handler).serve_forever()\n";
    let sandbox = Sandbox::new();
    let dir = sandbox.project_files(
        "notfound",
        &[("Procfile", "web: python3 app.py\n"), ("app.py", APP)],
    );
    let init = sandbox.berth(&dir, &["init"]).success();
    assert!(
        init.stdout
            .contains("ready = { http = \"/\", status = \"any\" }"),
        "{}",
        init.stdout
    );
    // 5000 + 13900: the test's own ports.
    let status = sandbox
        .berth(
            &dir,
            &["up", "--json", "--timeout", "20", "--port-offset", "13900"],
        )
        .success()
        .json();
    let web = port_of(&status, "web");
    assert_eq!(web, 18900);
    assert_eq!(status["services"][0]["state"], "ready", "{status}");
    assert_eq!(http_get(web, "/").map(|(code, _)| code), Some(404));
    assert_eq!(
        sandbox.berth(&dir, &["url", "web"]).success().stdout.trim(),
        "http://127.0.0.1:18900"
    );
    sandbox.berth(&dir, &["down", "--release"]).success();

    // The control: the same app under the 2xx/3xx default never gets ready.
    let config = std::fs::read_to_string(dir.join("berth.toml"))
        .unwrap()
        .replace(", status = \"any\"", "");
    assert!(config.contains("ready = { http = \"/\" }"), "{config}");
    std::fs::write(dir.join("berth.toml"), config).unwrap();
    let run = sandbox
        .berth(&dir, &["up", "--timeout", "3", "--port-offset", "13900"])
        .code(4);
    assert!(run.stderr.contains("not ready"), "{}", run.stderr);
    sandbox.berth(&dir, &["down", "--release"]).success();
    assert!(is_free(18900));
}
