//! berth and the Compose tool talk to the engine the docker CLI would choose: a docker
//! context named by DOCKER_CONTEXT, or by `currentContext` in the docker config. The
//! context points at a socket proxy in front of the real engine, which notes who talks
//! through it, so the tests see berth, the Compose tool and the `docker` CLI children all
//! use the context; one whose socket does not exist stops berth with exit code 5.

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::docker::{self, IMAGE};
use support::{Run, Sandbox, http_get, wait_for};

const REAL_SOCKET: &str = "/var/run/docker.sock";

/// A docker config directory of its own, with the Compose v2 plugin reachable from it
/// (the docker CLI looks for plugins under the config directory).
struct DockerConfig {
    dir: tempfile::TempDir,
}

impl DockerConfig {
    fn new() -> DockerConfig {
        let dir = tempfile::tempdir().expect("docker config dir");
        let plugins = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker")))
            .map(|config| config.join("cli-plugins"))
            .filter(|plugins| plugins.is_dir());
        if let Some(plugins) = plugins {
            std::os::unix::fs::symlink(plugins, dir.path().join("cli-plugins"))
                .expect("link the CLI plugins");
        }
        DockerConfig { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `docker context create NAME --docker host=HOST` in this config.
    fn create_context(&self, name: &str, host: &str) {
        let output = Command::new("docker")
            .arg("--config")
            .arg(self.path())
            .args(["context", "create", name, "--docker"])
            .arg(format!("host={host}"))
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .output()
            .expect("docker context create");
        assert!(output.status.success(), "{output:?}");
    }

    /// `docker context use NAME`: writes `currentContext` into `config.json`.
    fn use_context(&self, name: &str) {
        let output = Command::new("docker")
            .arg("--config")
            .arg(self.path())
            .args(["context", "use", name])
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .output()
            .expect("docker context use");
        assert!(output.status.success(), "{output:?}");
        let config = std::fs::read_to_string(self.path().join("config.json")).unwrap();
        assert!(config.contains(name), "{config}");
    }
}

/// A unix socket that forwards every connection to the real engine and keeps the
/// `User-Agent` of each request it sees.
struct Proxy {
    socket: PathBuf,
    agents: Arc<Mutex<BTreeSet<String>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    fn start(socket: PathBuf) -> Proxy {
        let listener = UnixListener::bind(&socket).expect("proxy socket");
        let agents = Arc::new(Mutex::new(BTreeSet::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopped) = (agents.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(engine) = UnixStream::connect(REAL_SOCKET) else {
                    continue;
                };
                let seen = seen.clone();
                let (client_reader, engine_writer) = (client.try_clone().unwrap(), engine);
                let (engine_reader, client_writer) = (engine_writer.try_clone().unwrap(), client);
                std::thread::spawn(move || forward(client_reader, engine_writer, Some(seen)));
                std::thread::spawn(move || forward(engine_reader, client_writer, None));
            }
        });
        Proxy {
            socket,
            agents,
            stop,
        }
    }

    fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    fn agents(&self) -> BTreeSet<String> {
        self.agents.lock().unwrap().clone()
    }

    fn forget(&self) {
        self.agents.lock().unwrap().clear();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accepting thread so it sees the flag.
        let _ = UnixStream::connect(&self.socket);
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Copies `from` to `to` until either side closes; with `agents`, notes the User-Agent
/// header lines that pass (requests are read from their start: headers are text).
fn forward(mut from: UnixStream, mut to: UnixStream, agents: Option<Arc<Mutex<BTreeSet<String>>>>) {
    let mut buffer = [0; 64 * 1024];
    let mut pending = Vec::new();
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        if let Some(agents) = &agents {
            pending.extend_from_slice(&buffer[..read]);
            let text = String::from_utf8_lossy(&pending).into_owned();
            for line in text.split("\r\n") {
                if let Some(agent) = line
                    .strip_prefix("User-Agent: ")
                    .or_else(|| line.strip_prefix("user-agent: "))
                {
                    agents.lock().unwrap().insert(agent.to_string());
                }
            }
            // Keep only the unfinished last line for the next read.
            let keep = pending
                .windows(2)
                .rposition(|window| window == b"\r\n")
                .map_or(0, |end| end + 2);
            pending.drain(..keep);
            pending.truncate(4096);
        }
        if to.write_all(&buffer[..read]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// berth with this docker config, DOCKER_HOST unset and DOCKER_CONTEXT as given.
fn berth(
    sandbox: &Sandbox,
    config: &DockerConfig,
    context: Option<&str>,
    dir: &Path,
    args: &[&str],
) -> Run {
    let mut command = sandbox.command(dir, args);
    command
        .env("DOCKER_CONFIG", config.path())
        .env_remove("DOCKER_HOST");
    match context {
        Some(name) => command.env("DOCKER_CONTEXT", name),
        None => command.env_remove("DOCKER_CONTEXT"),
    };
    Run::from_output(command.output().expect("run berth"))
}

fn web_compose(port: u16) -> String {
    format!(
        "services:\n  web:\n    image: {IMAGE}\n    command: [\"sh\", \"-c\", \"echo web-started; exec httpd -f -p 80 -h /www\"]\n    ports: [\"{port}:80\"]\n    stop_grace_period: 1s\n"
    )
}

/// `up`, `status`, `logs` and `down` through the context; what went through the proxy.
fn up_status_down(
    sandbox: &Sandbox,
    config: &DockerConfig,
    context: Option<&str>,
    dir: &Path,
    name: &str,
    port: u16,
) {
    let up = berth(sandbox, config, context, dir, &["up", "--json"]).success();
    assert_eq!(up.json()["services"][0]["state"], "ready", "{}", up.stdout);
    assert_eq!(
        http_get(port, "/health").map(|(code, _)| code),
        Some(200),
        "the container serves"
    );
    let status = berth(sandbox, config, context, dir, &["status", "--json"]).success();
    let status = status.json();
    assert_eq!(status["services"][0]["state"], "ready", "{status}");
    assert!(status["services"][0]["container"].is_string(), "{status}");
    assert_eq!(docker::containers_of(name).len(), 1);
    // The supervisor copies the container's output with `docker logs`, also through the
    // context.
    wait_for(
        "the container's output in the log",
        Duration::from_secs(20),
        || {
            berth(sandbox, config, context, dir, &["logs", "web"])
                .stdout
                .contains("web-started")
        },
    );
    berth(sandbox, config, context, dir, &["down"]).success();
    assert!(
        docker::containers_of(name).is_empty(),
        "down left containers"
    );
}

#[track_caller]
fn assert_clients(proxy: &Proxy, tool: &str) {
    let agents = proxy.agents();
    let has = |prefix: &str| {
        agents
            .iter()
            .any(|agent| agent.to_ascii_lowercase().starts_with(prefix))
    };
    assert!(
        has("berth/"),
        "{tool}: berth did not use the context: {agents:?}"
    );
    let compose = if tool == "docker-compose" {
        "docker-compose/"
    } else {
        "compose/"
    };
    assert!(
        has(compose),
        "{tool}: the Compose tool did not use the context: {agents:?}"
    );
    assert!(
        has("docker-client/"),
        "{tool}: the docker CLI did not use the context: {agents:?}"
    );
}

#[test]
fn a_docker_context_is_the_engine_of_berth_and_the_compose_tool() {
    if !docker::available("a_docker_context_is_the_engine_of_berth_and_the_compose_tool") {
        return;
    }
    for (index, tool) in docker::compose_tools().into_iter().enumerate() {
        let mut sandbox = Sandbox::new();
        sandbox.compose = Some(tool.to_string());
        let config = DockerConfig::new();
        let proxy = Proxy::start(config.path().join("engine.sock"));
        let context = format!("berth-test-ctx-{}-{index}", std::process::id());
        config.create_context(&context, &proxy.host());

        // Named by DOCKER_CONTEXT.
        let port = 14700 + index as u16 * 10;
        let name = format!("ctxvar{index}");
        let dir = sandbox.project_files(&name, &[("compose.yml", &web_compose(port))]);
        up_status_down(&sandbox, &config, Some(&context), &dir, &name, port);
        assert_clients(&proxy, tool);

        // Named by `currentContext` in config.json (`docker context use`).
        proxy.forget();
        config.use_context(&context);
        let port = port + 1;
        let name = format!("ctxcur{index}");
        let dir = sandbox.project_files(&name, &[("compose.yml", &web_compose(port))]);
        up_status_down(&sandbox, &config, None, &dir, &name, port);
        assert_clients(&proxy, tool);
        drop(proxy);
    }
}

#[test]
fn a_context_without_an_engine_stops_berth_with_exit_code_5() {
    if !docker::available("a_context_without_an_engine_stops_berth_with_exit_code_5") {
        return;
    }
    let mut sandbox = Sandbox::new();
    sandbox.compose = Some(docker::compose_tools()[0].to_string());
    let config = DockerConfig::new();
    let context = format!("berth-test-ctx-gone-{}", std::process::id());
    let socket = config.path().join("absent.sock");
    config.create_context(&context, &format!("unix://{}", socket.display()));
    let dir = sandbox.project_files("ctxgone", &[("compose.yml", &web_compose(14790))]);

    let run = berth(&sandbox, &config, Some(&context), &dir, &["up"]).code(5);
    assert!(
        run.stderr.contains(&format!("docker context `{context}`")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&socket.display().to_string()),
        "{}",
        run.stderr
    );
    assert!(docker::containers_of("ctxgone").is_empty());

    // The same context as the current one.
    config.use_context(&context);
    let run = berth(&sandbox, &config, None, &dir, &["up"]).code(5);
    assert!(
        run.stderr.contains(&format!("docker context `{context}`")),
        "{}",
        run.stderr
    );

    // A context that does not exist at all is named too.
    let run = berth(
        &sandbox,
        &config,
        Some("berth-test-no-such-context"),
        &dir,
        &["up"],
    )
    .code(5);
    assert!(
        run.stderr.contains(
            "docker context `berth-test-no-such-context` (named by DOCKER_CONTEXT) does not exist"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: "), "{}", run.stderr);
}
