//! Docker test support: the engine check (skip loudly, or fail under
//! BERTH_REQUIRE_DOCKER=1), a tiny image built locally `FROM scratch` from Debian's
//! static busybox (no image can be pulled), the Compose tools present, and queries of
//! what is left on the engine.

use std::path::Path;
use std::process::{Command, Stdio};

/// The image every compose test uses: busybox (sh, httpd, wget, …) and nothing else.
pub const IMAGE: &str = "berth-test-busybox:1";

/// True when the tests can use a Docker engine. Without one they skip with a loud
/// message, unless BERTH_REQUIRE_DOCKER=1 (set by CI), which makes that a failure.
pub fn available(test: &str) -> bool {
    let works = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if works {
        ensure_image();
        return true;
    }
    if std::env::var("BERTH_REQUIRE_DOCKER").as_deref() == Ok("1") {
        panic!("{test}: no Docker engine, and BERTH_REQUIRE_DOCKER=1 requires one");
    }
    eprintln!(
        "\n*** SKIPPED {test}: no Docker engine (set BERTH_REQUIRE_DOCKER=1 to fail instead) ***\n"
    );
    false
}

/// The Compose tools installed, as BERTH_COMPOSE values: v2 then v1. Under
/// BERTH_REQUIRE_DOCKER=1 both must be present.
pub fn compose_tools() -> Vec<&'static str> {
    let works = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    let mut tools = Vec::new();
    if works("docker", &["compose", "version"]) {
        tools.push("docker compose");
    }
    if works("docker-compose", &["version"]) {
        tools.push("docker-compose");
    }
    if std::env::var("BERTH_REQUIRE_DOCKER").as_deref() == Ok("1") {
        assert_eq!(
            tools.len(),
            2,
            "BERTH_REQUIRE_DOCKER=1 needs both Compose v2 and v1; found {tools:?}"
        );
    }
    assert!(!tools.is_empty(), "no Compose tool installed");
    tools
}

/// Builds [`IMAGE`] once per machine (under a lock, as tests run in parallel processes).
fn ensure_image() {
    let lock_path = std::env::temp_dir().join("berth-test-image.lock");
    let file = std::fs::File::create(&lock_path).expect("image lock");
    let _lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, error)| error)
        .expect("lock the image build");
    let exists = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if exists {
        return;
    }
    let busybox = Path::new("/bin/busybox");
    let output = Command::new("file").arg(busybox).output();
    let is_static = output
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).contains("statically linked"));
    assert!(
        is_static,
        "the compose tests need Debian's static busybox: apt-get install busybox-static"
    );
    let context = tempfile::tempdir().expect("build context");
    let bin = context.path().join("rootfs/bin");
    std::fs::create_dir_all(&bin).expect("rootfs");
    std::fs::create_dir_all(context.path().join("rootfs/www")).expect("www");
    std::fs::create_dir_all(context.path().join("rootfs/data")).expect("data");
    std::fs::write(context.path().join("rootfs/www/health"), "ok\n").expect("health");
    std::fs::copy(busybox, bin.join("busybox")).expect("copy busybox");
    for applet in [
        "sh", "httpd", "wget", "cat", "echo", "ls", "sleep", "env", "test", "mkdir", "nc",
    ] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("applet link");
    }
    std::fs::write(
        context.path().join("Dockerfile"),
        "FROM scratch\nCOPY rootfs/ /\nENV PATH=/bin\n",
    )
    .expect("Dockerfile");
    let status = Command::new("docker")
        .args(["build", "-q", "-t", IMAGE])
        .arg(context.path())
        .stdout(Stdio::null())
        .status()
        .expect("docker build");
    assert!(status.success(), "building {IMAGE} failed");
}

/// Lines of a `docker` listing command.
pub fn lines(args: &[&str]) -> Vec<String> {
    let output = Command::new("docker").args(args).output().expect("docker");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .filter(|line| !line.is_empty())
        .collect()
}

/// Names of the containers (running or not) labelled as `instance`'s.
pub fn containers_of(instance: &str) -> Vec<String> {
    lines(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=dev.berth.instance={instance}"),
        "--format",
        "{{.Names}}",
    ])
}

pub fn volume_exists(name: &str) -> bool {
    lines(&["volume", "ls", "--format", "{{.Name}}"])
        .iter()
        .any(|v| v == name)
}

pub fn network_exists(name: &str) -> bool {
    lines(&["network", "ls", "--format", "{{.Name}}"])
        .iter()
        .any(|n| n == name)
}

/// Host bindings of a container, as `docker port` prints them (`80/tcp -> 127.0.0.1:14080`).
pub fn port_bindings(container: &str) -> Vec<String> {
    lines(&["port", container])
}
