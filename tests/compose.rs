//! End-to-end tests of compose services on a real Docker engine, with both Compose v2 and
//! v1, on images built locally `FROM scratch`. Host ports 14000-14999.

mod support;

use std::time::Duration;

use support::docker::{self, IMAGE};
use support::{Sandbox, http_get, wait_for};

/// A web server with a healthcheck, an explicit container name, a named, a shared and an
/// external volume, and environment values YAML 1.1 would misread if left unquoted.
fn web_compose(external: &str, base: u16) -> String {
    format!(
        r#"services:
  web:
    image: {IMAGE}
    container_name: web-fixed
    command: ["sh", "-c", "httpd -p 81 -h /www && exec httpd -f -p 80 -h /www"]
    ports:
      - "{base}:80"
      - target: 81
        published: {next}
    environment:
      FLAG: "yes"
      DURATION: "1:30"
      MODE: "0755"
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1:80/health"]
      interval: 1s
    stop_grace_period: 1s
    volumes:
      - data:/data
      - common:/common
      - ext:/ext
volumes:
  data:
  common:
  ext:
    external: true
    name: {external}
"#,
        next = base + 1
    )
}

const SHARED: &str = "[compose]\nshared = [\"common\"]\n";

fn isolated_instances(tool: &str, tag: &str, base: u16) {
    let mut sandbox = Sandbox::new();
    sandbox.compose = Some(tool.to_string());
    let external = format!("berth-test-ext-{tag}-{}", std::process::id());
    docker::lines(&["volume", "create", &external]);
    let compose = web_compose(&external, base);
    let a = sandbox.project_files(
        &format!("{tag}a"),
        &[("compose.yml", &compose), ("berth.toml", SHARED)],
    );
    let b = sandbox.project_files(
        &format!("{tag}b"),
        &[("compose.yml", &compose), ("berth.toml", SHARED)],
    );
    // Two checkouts of one project: the shared volume is named after the project.
    std::fs::write(
        a.join("berth.toml"),
        format!("[project]\nname = \"{tag}\"\n{SHARED}"),
    )
    .unwrap();
    std::fs::write(
        b.join("berth.toml"),
        format!("[project]\nname = \"{tag}\"\n{SHARED}"),
    )
    .unwrap();
    let (name_a, name_b) = (format!("{tag}a"), format!("{tag}b"));

    let up_a = sandbox.berth(&a, &["up", "--json"]).success().json();
    let up_b = sandbox.berth(&b, &["up", "--json"]).success().json();
    let port = |status: &serde_json::Value, name: &str| {
        status["services"][0]["ports"][name].as_u64().unwrap() as u16
    };
    assert_eq!(port(&up_a, "80"), base);
    assert_eq!(
        port(&up_b, "80"),
        base + 100,
        "the second instance moves by one stride"
    );
    assert_eq!(port(&up_b, "81"), base + 101);
    for (status, name) in [(&up_a, &name_a), (&up_b, &name_b)] {
        assert_eq!(status["services"][0]["state"], "ready", "{status}");
        let (code, body) = http_get(port(status, "80"), "/health").expect("web answers");
        assert_eq!((code, body.trim()), (200, "ok"));
        let container = format!("{name}-web");
        assert_eq!(
            docker::containers_of(name),
            std::slice::from_ref(&container)
        );
        let bindings = docker::port_bindings(&container);
        assert!(!bindings.is_empty());
        assert!(
            bindings.iter().all(|line| line.contains("-> 127.0.0.1:")),
            "published on 127.0.0.1 only: {bindings:?}"
        );
        assert!(docker::volume_exists(&format!("{name}_data")));
        assert!(docker::network_exists(&format!("{name}_default")));
        // Read back through Compose's own YAML parser (PyYAML for v1): strings stay strings.
        let env = sandbox.berth(
            &sandbox.dir.path().join(name),
            &["exec", "web", "--", "env"],
        );
        let env = env.success().stdout;
        for expected in ["FLAG=yes", "DURATION=1:30", "MODE=0755"] {
            assert!(
                env.lines().any(|line| line == expected),
                "{expected} in\n{env}"
            );
        }
    }
    assert!(docker::volume_exists(&format!("{tag}_common")));

    // Data written in one instance is absent in the other.
    sandbox
        .berth(
            &a,
            &[
                "exec",
                "web",
                "--",
                "sh",
                "-c",
                "echo from-a > /data/marker",
            ],
        )
        .success();
    let read_a = sandbox
        .berth(&a, &["exec", "web", "--", "cat", "/data/marker"])
        .success();
    assert_eq!(read_a.stdout.trim(), "from-a");
    let read_b = sandbox.berth(&b, &["exec", "web", "--", "cat", "/data/marker"]);
    assert_ne!(
        read_b.code, 0,
        "instance b must not see a's data: {}",
        read_b.stdout
    );

    // Tearing down a (with its volumes) leaves b running and untouched.
    sandbox.berth(&a, &["down", "--volumes"]).success();
    assert!(docker::containers_of(&name_a).is_empty());
    assert!(!docker::volume_exists(&format!("{name_a}_data")));
    assert!(!docker::network_exists(&format!("{name_a}_default")));
    assert!(
        docker::volume_exists(&external),
        "an external volume is never removed"
    );
    assert!(
        docker::volume_exists(&format!("{tag}_common")),
        "a shared volume stays"
    );
    assert_eq!(
        http_get(base + 100, "/health").map(|(code, _)| code),
        Some(200)
    );
    assert!(docker::volume_exists(&format!("{name_b}_data")));

    sandbox
        .berth(&b, &["down", "--volumes", "--release"])
        .success();
    assert!(docker::containers_of(&name_b).is_empty());
    assert!(!docker::volume_exists(&format!("{name_b}_data")));
    assert!(!docker::network_exists(&format!("{name_b}_default")));
    assert!(docker::volume_exists(&external));
    docker::lines(&["volume", "rm", &external, &format!("{tag}_common")]);
}

#[test]
fn instances_are_isolated_with_compose_v2() {
    if !docker::available("instances_are_isolated_with_compose_v2") {
        return;
    }
    if docker::compose_tools().contains(&"docker compose") {
        isolated_instances("docker compose", "isov2", 14080);
    } else {
        eprintln!("*** SKIPPED: Compose v2 is not installed ***");
    }
}

#[test]
fn instances_are_isolated_with_compose_v1() {
    if !docker::available("instances_are_isolated_with_compose_v1") {
        return;
    }
    if docker::compose_tools().contains(&"docker-compose") {
        isolated_instances("docker-compose", "isov1", 14680);
    } else {
        eprintln!("*** SKIPPED: Compose v1 is not installed ***");
    }
}

fn environ_of(pid: u64) -> String {
    String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default())
        .replace('\0', "\n")
}

#[test]
fn process_and_compose_services_wait_for_each_other() {
    if !docker::available("process_and_compose_services_wait_for_each_other") {
        return;
    }
    let mut sandbox = Sandbox::new();
    sandbox.compose = Some(docker::compose_tools()[0].to_string());
    let compose = format!(
        r#"services:
  db:
    image: {IMAGE}
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    ports: ["14280:80"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1:80/health"]
      interval: 1s
    stop_grace_period: 1s
  front:
    image: {IMAGE}
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    ports: ["14290:80"]
    stop_grace_period: 1s
"#
    );
    let toml = format!(
        r#"[services.api]
command = "{helper} serve --port {{{{ port.api }}}}"
port = 14250
depends_on = ["db"]
env = {{ DB_URL = "{{{{ url.db }}}}", DB_PORT = "{{{{ port.db.80 }}}}" }}

[services.front]
depends_on = ["api"]
"#,
        helper = support::helper()
    );
    let dir = sandbox.project_files("mixed", &[("compose.yml", &compose), ("berth.toml", &toml)]);
    let status = sandbox.berth(&dir, &["up", "--json"]).success().json();
    let service = |name: &str| {
        status["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap()
    };
    for name in ["db", "front", "api"] {
        assert_eq!(service(name)["state"], "ready", "{status}");
    }
    let instance = std::fs::read_to_string(dir.join(".berth/mixed/instance.json")).unwrap();
    let instance: serde_json::Value = serde_json::from_str(&instance).unwrap();
    let at = |name: &str, field: &str| {
        humantime::parse_rfc3339(instance["services"][name][field].as_str().unwrap()).unwrap()
    };
    assert!(
        at("db", "ready_at") <= at("api", "started_at"),
        "api waits for db"
    );
    assert!(
        at("api", "ready_at") <= at("front", "started_at"),
        "front waits for api"
    );
    let pid = service("api")["pid"].as_u64().unwrap();
    let environ = environ_of(pid);
    assert!(
        environ.contains("DB_URL=http://127.0.0.1:14280\n"),
        "{environ}"
    );
    assert!(environ.contains("DB_PORT=14280\n"), "{environ}");
    assert!(environ.contains("BERTH_PORT_DB_80=14280\n"), "{environ}");
    let port = sandbox.berth(&dir, &["port", "db", "80"]).success();
    assert_eq!(port.stdout.trim(), "14280");
    let url = sandbox.berth(&dir, &["url", "front"]).success();
    assert_eq!(url.stdout.trim(), "http://127.0.0.1:14290");
    let logs = sandbox.berth(&dir, &["logs", "-n", "50"]).success();
    assert!(
        logs.stdout
            .lines()
            .any(|line| line.starts_with("api") && line.contains("listening on 14250")),
        "{}",
        logs.stdout
    );

    // A second `up` of an unchanged project keeps the containers; `restart` restarts one.
    let container_id = |name: &str| docker::lines(&["inspect", "--format", "{{.Id}}", name]);
    let db_container =
        sandbox.berth(&dir, &["status", "--json"]).success().json()["services"][0]["container"]
            .as_str()
            .unwrap()
            .to_string();
    let before = container_id(&db_container);
    sandbox.berth(&dir, &["up"]).success();
    assert_eq!(container_id(&db_container), before, "up is idempotent");
    let restarted = sandbox
        .berth(&dir, &["restart", "db", "--json"])
        .success()
        .json();
    assert_eq!(restarted["services"][0]["state"], "ready", "{restarted}");
    assert_eq!(restarted["services"][0]["restarts"], 1, "{restarted}");

    // status asks the engine: container names and health, and a container stopped
    // behind berth's back shows at once.
    // berth runs the healthcheck's test itself, so it can be ready before Docker's first
    // scheduled check; status shows Docker's own view once it has one.
    let mut live = serde_json::Value::Null;
    wait_for(
        "Docker to report db healthy",
        Duration::from_secs(15),
        || {
            live = sandbox.berth(&dir, &["status", "--json"]).success().json();
            live["services"][0]["health"] == "healthy"
        },
    );
    let db = &live["services"][0];
    assert_eq!(db["name"], "db");
    let front = db["container"].as_str().unwrap().replace("db", "front");
    assert!(docker::containers_of("mixed").contains(&front), "{front}");
    docker::lines(&["stop", "-t", "0", &front]);
    let live = sandbox.berth(&dir, &["status", "--json"]).success().json();
    assert_eq!(live["services"][1]["name"], "front");
    assert_eq!(live["services"][1]["state"], "failed", "{live}");

    sandbox.berth(&dir, &["down"]).success();
    assert!(docker::containers_of("mixed").is_empty());
    assert!(!support::pid_alive(pid as u32));
}

#[test]
fn compose_failures_have_clear_errors_and_exit_codes() {
    if !docker::available("compose_failures_have_clear_errors_and_exit_codes") {
        return;
    }
    let mut sandbox = Sandbox::new();
    sandbox.compose = Some(docker::compose_tools()[0].to_string());

    let crash = format!(
        "services:\n  job:\n    image: {IMAGE}\n    command: [\"sh\", \"-c\", \"echo boom-before-exit; exit 3\"]\n    ports: [\"14380:80\"]\n"
    );
    let dir = sandbox.project_files("crash", &[("compose.yml", &crash)]);
    let run = sandbox.berth(&dir, &["up", "--timeout", "60"]).code(4);
    assert!(run.stderr.contains("service `job`"), "{}", run.stderr);
    assert!(run.stderr.contains("status 3"), "{}", run.stderr);
    assert!(run.stderr.contains("boom-before-exit"), "{}", run.stderr);
    sandbox.berth(&dir, &["down"]).success();
    assert!(docker::containers_of("crash").is_empty());

    let range = format!("services:\n  web:\n    image: {IMAGE}\n    ports: [\"14400-14410:80\"]\n");
    let dir = sandbox.project_files("range", &[("compose.yml", &range)]);
    let run = sandbox.berth(&dir, &["up"]).code(2);
    assert!(
        run.stderr.contains("`web`") && run.stderr.contains("14400-14410"),
        "{}",
        run.stderr
    );

    let broken = "services:\n  web:\n    image: [unclosed\n";
    let dir = sandbox.project_files("broken", &[("compose.yml", broken)]);
    let run = sandbox.berth(&dir, &["up"]).code(2);
    assert!(run.stderr.contains("config"), "{}", run.stderr);

    let fine = format!("services:\n  web:\n    image: {IMAGE}\n    ports: [\"14420:80\"]\n");
    let dir = sandbox.project_files("notool", &[("compose.yml", &fine)]);
    sandbox.compose = Some("/nonexistent/compose".to_string());
    let run = sandbox.berth(&dir, &["up"]).code(5);
    assert!(run.stderr.contains("BERTH_COMPOSE"), "{}", run.stderr);
    // Nothing was written into the user's project but berth's own directory.
    let mut entries: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries, ["compose.yml"]);
}

#[test]
fn ports_published_by_other_containers_are_taken() {
    if !docker::available("ports_published_by_other_containers_are_taken") {
        return;
    }
    let mut sandbox = Sandbox::new();
    sandbox.compose = Some(docker::compose_tools()[0].to_string());
    let foreign = format!("berth-test-foreign-{}", std::process::id());
    docker::lines(&[
        "run",
        "-d",
        "--rm",
        "--name",
        &foreign,
        "-p",
        "127.0.0.1:14500:80",
        IMAGE,
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]);
    let compose = format!(
        "services:\n  web:\n    image: {IMAGE}\n    command: [\"httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/www\"]\n    ports: [\"14500:80\"]\n    stop_grace_period: 1s\n"
    );
    let dir = sandbox.project_files("beside", &[("compose.yml", &compose)]);
    let strict = sandbox.berth(&dir, &["up", "--strict-ports"]).code(3);
    assert!(strict.stderr.contains(&foreign), "{}", strict.stderr);
    let up = sandbox.berth(&dir, &["up", "--json"]).success();
    assert_eq!(
        up.json()["services"][0]["ports"]["80"],
        14600,
        "{}",
        up.stdout
    );
    wait_for("web answers", Duration::from_secs(10), || {
        http_get(14600, "/health").is_some()
    });
    sandbox.berth(&dir, &["down"]).success();
    docker::lines(&["rm", "-f", &foreign]);
}

#[test]
fn a_killed_supervisor_leaves_nothing_after_down() {
    if !docker::available("a_killed_supervisor_leaves_nothing_after_down") {
        return;
    }
    let mut sandbox = Sandbox::new();
    sandbox.compose = Some(docker::compose_tools()[0].to_string());
    let compose = format!(
        "services:\n  web:\n    image: {IMAGE}\n    command: [\"httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/www\"]\n    ports: [\"14880:80\"]\n    stop_grace_period: 1s\n    volumes: [data:/data]\nvolumes:\n  data:\n"
    );
    let dir = sandbox.project_files("orphan", &[("compose.yml", &compose)]);
    let status = sandbox.berth(&dir, &["up", "--json"]).success().json();
    let supervisor = status["supervisor_pid"].as_u64().unwrap() as i32;
    let id = docker::lines(&[
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        "label=dev.berth.instance=orphan",
    ]);
    let followers = || support::pids_matching(&format!("--follow {}", id[0]));
    assert!(
        !followers().is_empty(),
        "the supervisor copies the container's logs"
    );
    support::kill_and_wait(supervisor as u32);
    assert_eq!(
        docker::containers_of("orphan").len(),
        1,
        "the container outlives it"
    );
    let crashed = sandbox.berth(&dir, &["status", "--json"]).success().json();
    assert_eq!(crashed["state"], "crashed", "{crashed}");

    sandbox.berth(&dir, &["down", "--volumes"]).success();
    assert!(docker::containers_of("orphan").is_empty());
    assert!(!docker::volume_exists("orphan_data"));
    assert!(!docker::network_exists("orphan_default"));
    assert!(followers().is_empty(), "no `docker logs` process is left");
    // And it comes back up.
    sandbox.berth(&dir, &["up"]).success();
    assert_eq!(http_get(14880, "/health").map(|(code, _)| code), Some(200));
}

#[test]
fn profiles_choose_which_compose_services_run() {
    if !docker::available("profiles_choose_which_compose_services_run") {
        return;
    }
    // Compose v1's `config` prints services of inactive profiles too: berth must drop them.
    let tools = docker::compose_tools();
    let mut sandbox = Sandbox::new();
    sandbox.compose = Some(tools[tools.len() - 1].to_string());
    let compose = format!(
        "services:\n  web:\n    image: {IMAGE}\n    command: [\"httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/www\"]\n    ports: [\"14900:80\"]\n    stop_grace_period: 1s\n  debug:\n    image: {IMAGE}\n    command: [\"httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/www\"]\n    ports: [\"14910:80\"]\n    profiles: [debug]\n    stop_grace_period: 1s\n"
    );
    let dir = sandbox.project_files("prof", &[("compose.yml", &compose)]);
    let names = |status: &serde_json::Value| -> Vec<String> {
        let mut names: Vec<String> = status["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    };
    let plain = sandbox.berth(&dir, &["up", "--json"]).success().json();
    assert_eq!(names(&plain), ["web"]);
    assert_eq!(docker::containers_of("prof").len(), 1);

    std::fs::write(
        dir.join("berth.toml"),
        "[compose]\nprofiles = [\"debug\"]\n",
    )
    .unwrap();
    let with_debug = sandbox.berth(&dir, &["up", "--json"]).success().json();
    assert_eq!(names(&with_debug), ["debug", "web"]);
    assert_eq!(
        http_get(14910, "/health").map(|(code, _)| code),
        Some(200),
        "the profile's service runs"
    );
    sandbox.berth(&dir, &["down"]).success();
    assert!(docker::containers_of("prof").is_empty());
}

#[test]
fn rm_and_gc_remove_only_the_instance_they_are_about() {
    if !docker::available("rm_and_gc_remove_only_the_instance_they_are_about") {
        return;
    }
    let mut sandbox = Sandbox::new();
    sandbox.compose = Some(docker::compose_tools()[0].to_string());
    let compose = format!(
        "services:\n  web:\n    image: {IMAGE}\n    command: [\"httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/www\"]\n    ports: [\"14950:80\"]\n    stop_grace_period: 1s\n    volumes: [data:/data]\nvolumes:\n  data:\n"
    );
    let keep = sandbox.project_files("keep", &[("compose.yml", &compose)]);
    let gone = sandbox.project_files("gone", &[("compose.yml", &compose)]);
    let worktree = sandbox.project_files("worktree", &[("compose.yml", &compose)]);
    for dir in [&keep, &gone, &worktree] {
        sandbox.berth(dir, &["up"]).success();
    }
    let removed = sandbox
        .berth(&gone, &["rm", "--yes", "--json"])
        .success()
        .json();
    let what: Vec<String> = removed["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["kind"].as_str().unwrap(),
                r["what"].as_str().unwrap()
            )
        })
        .collect();
    assert!(what.contains(&"volume gone_data".to_string()), "{what:?}");
    assert!(docker::containers_of("gone").is_empty());
    assert!(!docker::volume_exists("gone_data"));
    assert!(!docker::network_exists("gone_default"));
    assert!(!gone.join(".berth/gone").exists());

    // A deleted worktree: gc removes its containers and network, keeps its volume (data).
    std::fs::remove_dir_all(&worktree).unwrap();
    sandbox.berth(&keep, &["gc"]).success();
    assert!(docker::containers_of("worktree").is_empty());
    assert!(!docker::network_exists("worktree_default"));
    assert!(
        docker::volume_exists("worktree_data"),
        "gc never deletes data"
    );
    docker::lines(&["volume", "rm", "worktree_data"]);

    // The instance nobody asked about is untouched.
    assert_eq!(docker::containers_of("keep").len(), 1);
    assert!(docker::volume_exists("keep_data"));
    let status = sandbox.berth(&keep, &["status", "--json"]).success().json();
    assert_eq!(status["services"][0]["state"], "ready", "{status}");
    sandbox.berth(&keep, &["rm", "--yes"]).success();
    assert!(docker::containers_of("keep").is_empty());
    assert!(!docker::volume_exists("keep_data"));
}

#[test]
fn init_then_up_on_a_compose_project() {
    if !docker::available("init_then_up_on_a_compose_project") {
        return;
    }
    let mut sandbox = Sandbox::new();
    sandbox.compose = Some(docker::compose_tools()[0].to_string());
    let compose = format!(
        "services:\n  web:\n    image: {IMAGE}\n    command: [\"httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/www\"]\n    ports: [\"14970:80\"]\n    stop_grace_period: 1s\n"
    );
    let dir = sandbox.project_files("fresh", &[("compose.yml", &compose)]);
    let init = sandbox.berth(&dir, &["init"]).success();
    assert!(init.stdout.contains("[compose]"), "{}", init.stdout);
    assert!(
        init.stdout.contains("web: publishes 14970:80"),
        "{}",
        init.stdout
    );
    let up = sandbox.berth(&dir, &["up", "--json"]).success().json();
    assert_eq!(up["services"][0]["ports"]["80"], 14970);
    assert_eq!(http_get(14970, "/health").map(|(code, _)| code), Some(200));
    sandbox.berth(&dir, &["down"]).success();
}

#[test]
fn compose_services_see_the_instance_env_file_values() {
    if !docker::available("compose_services_see_the_instance_env_file_values") {
        return;
    }
    let mut sandbox = Sandbox::new();
    sandbox.compose = Some(docker::compose_tools()[0].to_string());
    let compose = format!(
        "services:\n  web:\n    image: {IMAGE}\n    command: [\"httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/www\"]\n    ports: [\"14990:80\"]\n    environment:\n      OWN: mine\n    stop_grace_period: 1s\n"
    );
    let toml = "[[env_files]]\nsource = \".env\"\ntarget = \".env.local\"\nservices = [\"web\"]\nset = { WHO = \"{{ instance.name }}\" }\n";
    let dir = sandbox.project_files(
        "envy",
        &[
            ("compose.yml", &compose),
            ("berth.toml", toml),
            (
                ".env",
                "SELF_URL=http://localhost:14990/x\nOWN=from-env-file\n",
            ),
        ],
    );
    sandbox.berth(&dir, &["--name", "envy", "up"]).success();
    let second = sandbox.berth(&dir, &["--name", "envy-2", "up"]).success();
    assert!(second.stderr.contains("offset 100"), "{}", second.stderr);
    let env = sandbox
        .berth(&dir, &["--name", "envy-2", "exec", "web", "--", "env"])
        .success();
    let lines: Vec<&str> = env.stdout.lines().collect();
    assert!(
        lines.contains(&"SELF_URL=http://localhost:15090/x"),
        "{lines:?}"
    );
    assert!(lines.contains(&"WHO=envy-2"), "{lines:?}");
    assert!(
        lines.contains(&"OWN=mine"),
        "the Compose file's own value wins: {lines:?}"
    );
    for name in ["envy", "envy-2"] {
        sandbox.berth(&dir, &["--name", name, "down"]).success();
    }
}
