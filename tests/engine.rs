//! Compose as people run it, against the real engine with both Compose tools: an image
//! that declares a `VOLUME` (as the postgres, mysql and redis images do), a Compose
//! project someone else runs under the name berth would pick, and a supervisor killed
//! while its containers serve.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::docker::{self, IMAGE};
use support::*;

/// An image like the databases' official ones: it declares `/data` a volume.
const VOLUME_IMAGE: &str = "berth-test-volume:1";

fn ensure_volume_image() {
    let lock_path = std::env::temp_dir().join("berth-test-volume-image.lock");
    let file = std::fs::File::create(&lock_path).expect("image lock");
    let _lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, error)| error)
        .expect("lock the image build");
    if !docker::lines(&["image", "ls", "-q", VOLUME_IMAGE]).is_empty() {
        return;
    }
    let context = tempfile::tempdir().expect("build context");
    std::fs::write(
        context.path().join("Dockerfile"),
        format!("FROM {IMAGE}\nVOLUME /data\n"),
    )
    .expect("Dockerfile");
    let status = Command::new("docker")
        .args(["build", "-q", "-t", VOLUME_IMAGE])
        .arg(context.path())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("docker build");
    assert!(status.success(), "building {VOLUME_IMAGE} failed");
}

/// Every volume on the engine.
fn all_volumes() -> Vec<String> {
    docker::lines(&["volume", "ls", "-q"])
}

fn exec(container: &str, script: &str) -> String {
    let output = Command::new("docker")
        .args(["exec", container, "sh", "-c", script])
        .output()
        .expect("docker exec");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn container_of(sandbox: &Sandbox, dir: &Path, service: &str) -> String {
    let status = sandbox.berth(dir, &["status", "--json"]).success().json();
    status["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["name"] == service)
        .and_then(|entry| entry["container"].as_str())
        .unwrap_or_else(|| panic!("no container for {service}: {status}"))
        .to_string()
}

#[test]
fn data_in_an_image_declared_volume_survives_down_and_up_and_goes_with_down_volumes() {
    if !docker::available("image_declared_volume") {
        return;
    }
    ensure_volume_image();
    for tool in docker::compose_tools() {
        let mut sandbox = Sandbox::new();
        sandbox.compose = Some(tool.to_string());
        let name = format!("imgvol{}", tool.len());
        let compose = format!(
            "services:\n  store:\n    image: {VOLUME_IMAGE}\n    command: [\"sleep\", \"600\"]\n    stop_grace_period: 1s\n"
        );
        let dir = sandbox.project_files(&name, &[("compose.yml", &compose)]);
        sandbox.berth(&dir, &["up"]).success();
        let container = container_of(&sandbox, &dir, "store");
        // No anonymous volume: every volume the container mounts is the instance's own.
        let mounts = docker::lines(&[
            "inspect",
            "--format",
            "{{range .Mounts}}{{.Name}}\n{{end}}",
            &container,
        ]);
        assert!(
            !mounts.is_empty()
                && mounts
                    .iter()
                    .all(|mount| mount.starts_with(&format!("{name}_"))),
            "{tool}: {mounts:?}"
        );
        exec(&container, "echo kept > /data/file");
        let volume = format!("{name}_store-data");
        assert!(
            docker::volume_exists(&volume),
            "{tool}: no named volume {volume}"
        );
        let labels = docker::lines(&[
            "volume",
            "inspect",
            "--format",
            "{{index .Labels \"dev.berth.instance\"}}",
            &volume,
        ]);
        assert_eq!(labels, vec![name.clone()], "{tool}");

        sandbox.berth(&dir, &["down"]).success();
        sandbox.berth(&dir, &["up"]).success();
        let container = container_of(&sandbox, &dir, "store");
        assert_eq!(
            exec(&container, "cat /data/file"),
            "kept",
            "{tool}: data lost"
        );
        // A configuration change restarts the instance: the data stays too.
        std::fs::write(dir.join("compose.yml"), compose.replace("600", "601")).unwrap();
        sandbox.berth(&dir, &["up"]).success();
        let container = container_of(&sandbox, &dir, "store");
        assert_eq!(
            exec(&container, "cat /data/file"),
            "kept",
            "{tool}: data lost on restart"
        );

        sandbox.berth(&dir, &["down", "--volumes"]).success();
        assert!(
            !docker::volume_exists(&volume),
            "{tool}: down --volumes kept it"
        );
        let left: Vec<String> = all_volumes()
            .into_iter()
            .filter(|volume| volume.starts_with(&format!("{name}_")))
            .collect();
        assert!(left.is_empty(), "{tool}: volumes left: {left:?}");

        // A deleted work tree: `gc` removes the volume berth named for the image's
        // `VOLUME`, and keeps the one the user named (data).
        let named = format!("{compose}    volumes: [\"kept:/kept\"]\nvolumes:\n  kept:\n");
        std::fs::write(dir.join("compose.yml"), &named).unwrap();
        sandbox.berth(&dir, &["up"]).success();
        assert!(docker::volume_exists(&volume), "{tool}: no {volume}");
        let user_volume = format!("{name}_kept");
        assert!(
            docker::volume_exists(&user_volume),
            "{tool}: no {user_volume}"
        );
        sandbox.berth(&dir, &["down"]).success();
        std::fs::remove_dir_all(&dir).unwrap();
        let elsewhere = sandbox.project_files(
            &format!("{name}-other"),
            &[("compose.yml", "services: {}\n")],
        );
        sandbox.berth(&elsewhere, &["gc"]).success();
        assert!(
            !docker::volume_exists(&volume),
            "{tool}: gc kept the image-declared volume of a deleted work tree"
        );
        assert!(
            docker::volume_exists(&user_volume),
            "{tool}: gc deleted a volume the user named"
        );
        docker::lines(&["volume", "rm", &user_volume]);
    }
}

#[test]
fn a_foreign_compose_project_with_the_same_name_is_never_touched() {
    if !docker::available("foreign_compose_project") {
        return;
    }
    for tool in docker::compose_tools() {
        let mut sandbox = Sandbox::new();
        sandbox.compose = Some(tool.to_string());
        let name = format!("p{}", tool.len());
        let compose = format!(
            "services:\n  web:\n    image: {IMAGE}\n    command: [\"sleep\", \"600\"]\n    stop_grace_period: 1s\n"
        );
        // Someone runs an unrelated project as `NAME`, without berth.
        let theirs = sandbox.project_files("theirs", &[("compose.yml", &compose)]);
        let program: Vec<&str> = tool.split(' ').collect();
        let started = Command::new(program[0])
            .args(&program[1..])
            .args(["-p", &name, "up", "-d"])
            .current_dir(&theirs)
            .output()
            .expect("compose up");
        assert!(started.status.success(), "{started:?}");
        let foreign: Vec<String> = docker::lines(&[
            "ps",
            "-q",
            "--filter",
            &format!("label=com.docker.compose.project={name}"),
        ]);
        assert_eq!(foreign.len(), 1);

        // berth in a directory of that name picks another name and says so.
        let ours = sandbox.project_files(&name, &[("compose.yml", &compose)]);
        let up = sandbox.berth(&ours, &["up", "--json"]).success();
        let instance = up.json()["name"].as_str().unwrap().to_string();
        assert_ne!(instance, name, "{tool}");
        assert!(up.stderr.contains("not berth's"), "{tool}: {}", up.stderr);
        sandbox.berth(&ours, &["down"]).success();
        sandbox.berth(&ours, &["rm", "--yes"]).success();
        sandbox.berth(&ours, &["gc"]).success();
        let left = docker::lines(&[
            "ps",
            "-q",
            "--filter",
            &format!("label=com.docker.compose.project={name}"),
        ]);
        assert_eq!(left, foreign, "{tool}: berth touched the foreign project");
        // Asked for by name, it is refused.
        sandbox.berth(&ours, &["--name", &name, "up"]).code(2);
        let _ = Command::new(program[0])
            .args(&program[1..])
            .args(["-p", &name, "down", "-t", "1"])
            .current_dir(&theirs)
            .output();
    }
}

#[test]
fn containers_of_a_killed_supervisor_are_reaped_and_up_works_at_once() {
    if !docker::available("killed_compose_supervisor") {
        return;
    }
    for tool in docker::compose_tools() {
        let mut sandbox = Sandbox::new();
        sandbox.compose = Some(tool.to_string());
        let name = format!("killed{}", tool.len());
        let compose = format!(
            "services:\n  web:\n    image: {IMAGE}\n    command: [\"httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/www\"]\n    ports: [\"{}:80\"]\n    stop_grace_period: 1s\n",
            29000 + tool.len() as u16 * 10
        );
        let dir = sandbox.project_files(&name, &[("compose.yml", &compose)]);
        let status = sandbox.berth(&dir, &["up", "--json"]).success().json();
        let port = port_of(&status, "web");
        assert_eq!(http_get(port, "/health").map(|(code, _)| code), Some(200));
        kill_and_wait(status["supervisor_pid"].as_u64().unwrap() as u32);

        let run = sandbox.berth(&dir, &["ls", "--json"]).success();
        let ls = run.json();
        assert_eq!(ls[0]["state"], "crashed", "{tool}: {ls}\n{}", run.stderr);
        assert!(
            docker::containers_of(&name).is_empty(),
            "{tool}: containers outlived it"
        );
        wait_for("the port to be free", Duration::from_secs(10), || {
            is_free(port)
        });
        let again = sandbox.berth(&dir, &["up", "--json"]).success().json();
        assert_eq!(port_of(&again, "web"), port);
        sandbox.berth(&dir, &["down"]).success();
        assert!(docker::containers_of(&name).is_empty());
    }
}

/// The compose supervisor learns of a container's death from the engine's events: a
/// container stopped behind berth's back shows as failed within seconds, although a
/// settled instance is polled only every 30 s.
#[test]
fn a_container_stopped_behind_berths_back_is_seen_through_the_engines_events() {
    if !docker::available("container_events") {
        return;
    }
    let mut sandbox = Sandbox::new();
    sandbox.compose = Some(docker::compose_tools()[0].to_string());
    let compose = format!(
        "services:\n  web:\n    image: {IMAGE}\n    command: [\"httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/www\"]\n    ports: [\"29180:80\"]\n    stop_grace_period: 1s\n"
    );
    let dir = sandbox.project_files("evented", &[("compose.yml", &compose)]);
    sandbox.berth(&dir, &["up"]).success();
    let container = container_of(&sandbox, &dir, "web");
    // Settled: the supervisor now waits for events.
    std::thread::sleep(Duration::from_millis(1500));
    docker::lines(&["kill", &container]);
    wait_for(
        "berth to see the container die",
        Duration::from_secs(10),
        || {
            let status = sandbox.berth(&dir, &["status", "--json"]).success().json();
            status["services"][0]["state"] == "failed"
        },
    );
    sandbox.berth(&dir, &["down"]).success();
}
