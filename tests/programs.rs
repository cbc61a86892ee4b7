//! The conformance suite: the programs people run in dev stacks, not berth's own helpers.
//! Redis, nginx, gunicorn and PostgreSQL rewrite their process titles over their
//! environment, fork workers, or daemonize; node sets `process.title`. Each program runs
//! in two instances (two work trees of one project) through the same life: up, answers,
//! restart, down, `kill -9` of the supervisor then the next command, `kill -9` of
//! `berth up` at several moments then `down`. After each, nothing of the instance may be
//! left: no process, no listening port.
//!
//! Every scenario also runs as on a machine without cgroups (`BERTH_NO_CGROUP=1`, the
//! `…_without_cgroups` tests), where a service's processes are found by their session,
//! group, tree, recorded PIDs and run token alone.
//!
//! Each scenario has its own thousand ports (20000–28999), so no two tests contend for
//! one: X000–X499 with cgroups, X500–X999 without.
//!
//! `scripts/test-deps` installs the programs; without them these tests skip loudly, unless
//! BERTH_REQUIRE_PROGRAMS=1 (set by `.ci/run`) makes that a failure.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

/// How berth tracks processes in a test: by cgroup (where the machine allows one), or as
/// on a machine without cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Cgroup,
    NoCgroup,
}

impl Mode {
    /// The scenario's first port in this mode: the lower half of its thousand with
    /// cgroups, the upper half without.
    fn port(self, base: u16) -> u16 {
        match self {
            Mode::Cgroup => base,
            Mode::NoCgroup => base + 500,
        }
    }

    /// A sandbox whose every berth command runs in this mode.
    fn sandbox(self) -> Sandbox {
        let mut sandbox = Sandbox::new();
        if self == Mode::NoCgroup {
            sandbox.env.push(("BERTH_NO_CGROUP", "1"));
        }
        sandbox
    }

    /// Without cgroups, no process of the instance is in a cgroup berth made (else the
    /// test would not exercise the fallback at all).
    #[track_caller]
    fn check(self, dir: &Path) {
        if self == Mode::Cgroup {
            return;
        }
        for (pid, command) in processes_of(dir) {
            let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            assert!(
                !cgroup.contains("/berth/"),
                "PID {pid} ({command}) is in berth's cgroup {cgroup:?} under BERTH_NO_CGROUP=1"
            );
        }
    }
}

/// One program under test: its project files (with `berth.toml`), the service that
/// serves, and how to ask it a question.
struct Program {
    name: &'static str,
    files: Vec<(&'static str, String)>,
    service: &'static str,
    answers: fn(u16) -> bool,
}

fn redis_answers(port: u16) -> bool {
    exchange(port, b"PING\r\n").is_some_and(|reply| reply.starts_with("+PONG"))
}

fn http_answers(port: u16) -> bool {
    http_get(port, "/").is_some_and(|(code, _)| code == 200)
}

fn postgres_answers(port: u16) -> bool {
    Command::new("pg_isready")
        .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
        .status()
        .is_ok_and(|status| status.success())
}

/// Sends `request` and returns what the server answers first.
fn exchange(port: u16, request: &[u8]) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(request).ok()?;
    let mut buffer = [0u8; 256];
    let read = stream.read(&mut buffer).ok()?;
    Some(String::from_utf8_lossy(&buffer[..read]).into_owned())
}

/// Live processes that belong to a project directory: run in it, or name it on their
/// command line (daemons that left every process group and session included).
fn processes_of(dir: &Path) -> Vec<(u32, String)> {
    let own = std::process::id();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != own && pid_alive(*pid))
        .filter_map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
            (cwd.starts_with(dir) || cmdline.contains(&dir.display().to_string()))
                .then_some((pid, cmdline))
        })
        .collect()
}

#[track_caller]
fn assert_nothing_left(dir: &Path, port: u16, after: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = processes_of(dir);
        if left.is_empty() && is_free(port) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "after {after}: processes left {left:?}, port {port} free: {}",
            is_free(port)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn status(sandbox: &Sandbox, dir: &Path) -> serde_json::Value {
    sandbox.berth(dir, &["status", "--json"]).success().json()
}

fn pid_of(status: &serde_json::Value, service: &str) -> u32 {
    service_pids(status)
        .into_iter()
        .find(|(name, _)| name == service)
        .unwrap_or_else(|| panic!("no pid for {service} in {status}"))
        .1
}

/// The whole life of `program` in two instances at once.
fn conformance(program: Program, mode: Mode) {
    let sandbox = mode.sandbox();
    let files: Vec<(&str, &str)> = program
        .files
        .iter()
        .map(|(name, text)| (*name, text.as_str()))
        .collect();
    let first = sandbox.project_files(&format!("{}-a", program.name), &files);
    let second = sandbox.project_files(&format!("{}-b", program.name), &files);
    let service = program.service;

    // Up, both at once, each on its own port, each answering.
    let mut ups: Vec<std::process::Child> = [&first, &second]
        .iter()
        .map(|dir| {
            sandbox
                .command(dir, &["up", "--timeout", "60"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn berth up")
        })
        .collect();
    for child in ups.drain(..) {
        Run::from_output(child.wait_with_output().expect("berth up")).success();
    }
    let first_status = status(&sandbox, &first);
    let second_status = status(&sandbox, &second);
    let first_port = port_of(&first_status, service);
    let second_port = port_of(&second_status, service);
    assert_ne!(first_port, second_port, "two instances share a port");
    mode.check(&first);
    mode.check(&second);
    assert!(
        (program.answers)(first_port),
        "{} does not answer",
        program.name
    );
    assert!(
        (program.answers)(second_port),
        "{} does not answer",
        program.name
    );

    // Restart: a new process answers on the same port, the old ones are gone.
    let supervisor = first_status["supervisor_pid"].as_u64().unwrap() as u32;
    let before: Vec<u32> = processes_of(&first)
        .iter()
        .map(|(pid, _)| *pid)
        .filter(|pid| *pid != supervisor)
        .collect();
    sandbox.berth(&first, &["restart", service]).success();
    let restarted = status(&sandbox, &first);
    assert_ne!(pid_of(&restarted, service), pid_of(&first_status, service));
    assert_eq!(port_of(&restarted, service), first_port);
    assert!((program.answers)(first_port), "no answer after restart");
    for pid in before {
        assert!(
            !pid_alive(pid),
            "PID {pid} of the first run survived the restart"
        );
    }

    // Down: nothing left of the first; the second still answers.
    sandbox.berth(&first, &["down"]).success();
    assert_nothing_left(&first, first_port, "down");
    assert!(
        (program.answers)(second_port),
        "down of one stopped the other"
    );

    // kill -9 of the supervisor, then any command: everything reaped, `up` at once.
    let supervisor = second_status["supervisor_pid"].as_u64().unwrap() as u32;
    kill_and_wait(supervisor);
    let after = sandbox.berth(&second, &["status", "--json"]).success();
    assert_eq!(after.json()["state"], "crashed", "{}", after.stderr);
    assert_nothing_left(
        &second,
        second_port,
        "kill -9 of the supervisor and `status`",
    );
    sandbox.berth(&second, &["up", "--timeout", "60"]).success();
    assert_eq!(port_of(&status(&sandbox, &second), service), second_port);
    assert!((program.answers)(second_port), "no answer after the crash");

    // kill -9 of `berth up` at several moments, then `down`.
    for delay in [0u64, 40, 150, 400] {
        let mut up = sandbox
            .command(&first, &["up", "--timeout", "60"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn berth up");
        std::thread::sleep(Duration::from_millis(delay));
        let _ = up.kill();
        let _ = up.wait();
        sandbox.berth(&first, &["down"]).success();
        assert_nothing_left(
            &first,
            first_port,
            &format!("kill -9 of up after {delay} ms"),
        );
    }
    sandbox.berth(&first, &["up", "--timeout", "60"]).success();
    assert!((program.answers)(first_port));

    // rm of a running instance, and of one whose supervisor was killed.
    sandbox.berth(&first, &["rm", "--yes"]).success();
    assert_nothing_left(&first, first_port, "rm");
    sandbox.berth(&first, &["up", "--timeout", "60"]).success();
    kill_and_wait(status(&sandbox, &first)["supervisor_pid"].as_u64().unwrap() as u32);
    sandbox.berth(&first, &["rm", "--yes"]).success();
    assert_nothing_left(&first, first_port, "kill -9 of the supervisor and `rm`");

    // kill -9 of the supervisor, then `ls`, and then `gc`.
    let supervisor = status(&sandbox, &second)["supervisor_pid"]
        .as_u64()
        .unwrap() as u32;
    kill_and_wait(supervisor);
    sandbox.berth(&second, &["ls"]).success();
    assert_nothing_left(&second, second_port, "kill -9 of the supervisor and `ls`");
    sandbox.berth(&second, &["up", "--timeout", "60"]).success();
    assert!(
        (program.answers)(second_port),
        "no answer after `ls` reaped"
    );
    let supervisor = status(&sandbox, &second)["supervisor_pid"]
        .as_u64()
        .unwrap() as u32;
    kill_and_wait(supervisor);
    sandbox.berth(sandbox.dir.path(), &["gc"]).success();
    assert_nothing_left(&second, second_port, "kill -9 of the supervisor and `gc`");

    // gc of an instance whose work tree is gone (moved away) while it runs.
    sandbox.berth(&second, &["up", "--timeout", "60"]).success();
    let moved = sandbox.dir.path().join(format!("{}-moved", program.name));
    std::fs::rename(&second, &moved).unwrap();
    sandbox.berth(sandbox.dir.path(), &["gc"]).success();
    assert_nothing_left(&moved, second_port, "gc of a moved work tree");
    assert_nothing_left(&second, second_port, "gc of a moved work tree");
}

fn config(body: &str) -> String {
    format!("[project]\nname = \"conformance\"\n\n{body}")
}

fn redis_server_in(mode: Mode) {
    if !installed("redis_server", &["redis-server"]) {
        return;
    }
    let port = mode.port(20000);
    conformance(
        Program {
            name: "redis",
            files: vec![(
                "berth.toml",
                config(&format!(
                    "[services.redis]\ncommand = \"redis-server --port {{{{ port.redis }}}} --bind 127.0.0.1 --save '' --appendonly no --dir {{{{ instance.data }}}}\"\nport = {port}\n"
                )),
            )],
            service: "redis",
            answers: redis_answers,
        },
        mode,
    );
}

fn redis_server_behind_sh_in(mode: Mode) {
    if !installed("redis_server_behind_sh", &["redis-server"]) {
        return;
    }
    let port = mode.port(21000);
    conformance(
        Program {
            name: "redis-sh",
            files: vec![(
                "berth.toml",
                config(&format!(
                    "[services.redis]\ncommand = \"redis-server --port $PORT --bind 127.0.0.1 --save '' --appendonly no\"\nshell = true\nport = {port}\n"
                )),
            )],
            service: "redis",
            answers: redis_answers,
        },
        mode,
    );
}

const NGINX_CONF: &str = "worker_processes 2;\nerror_log stderr;\nevents { worker_connections 64; }\nhttp {\n  access_log off;\n  client_body_temp_path DATA/body;\n  proxy_temp_path DATA/proxy;\n  fastcgi_temp_path DATA/fastcgi;\n  uwsgi_temp_path DATA/uwsgi;\n  scgi_temp_path DATA/scgi;\n  server {\n    listen 127.0.0.1:PORT;\n    location / { return 200 \"nginx\\n\"; }\n  }\n}\n";

/// nginx with its configuration written for the instance's port at each start.
fn nginx(name: &'static str, daemon: bool, port: u16) -> Program {
    let daemon_flag = if daemon { "" } else { "daemon off; " };
    let command = format!(
        "sed -e s/PORT/$PORT/ -e s#DATA#{{{{ instance.data }}}}# nginx.conf.in > {{{{ instance.data }}}}/nginx.conf && exec nginx -e stderr -p {{{{ instance.data }}}} -c {{{{ instance.data }}}}/nginx.conf -g '{daemon_flag}pid {{{{ instance.data }}}}/nginx.pid;'"
    );
    Program {
        name,
        files: vec![
            (
                "berth.toml",
                config(&format!(
                    "[services.nginx]\ncommand = \"{}\"\nshell = true\nport = {port}\nready = {{ http = \"/\" }}\n",
                    command.replace('\\', "\\\\").replace('"', "\\\"")
                )),
            ),
            ("nginx.conf.in", NGINX_CONF.to_string()),
        ],
        service: "nginx",
        answers: http_answers,
    }
}

fn nginx_master_and_workers_in(mode: Mode) {
    if !installed("nginx_master_and_workers", &["nginx"]) {
        return;
    }
    conformance(nginx("nginx", false, mode.port(22000)), mode);
}

fn nginx_that_daemonizes_in(mode: Mode) {
    if !installed("nginx_that_daemonizes", &["nginx"]) {
        return;
    }
    conformance(nginx("nginx-daemon", true, mode.port(23000)), mode);
}

fn node_server_that_sets_its_title_in(mode: Mode) {
    if !installed("node_server_that_sets_its_title", &["node"]) {
        return;
    }
    let port = mode.port(24000);
    let server = "process.title = 'conformance-node';\nrequire('http').createServer((req, res) => res.end('node\\n')).listen(Number(process.env.PORT), '127.0.0.1');\n";
    conformance(
        Program {
            name: "node",
            files: vec![
                (
                    "berth.toml",
                    config(&format!(
                        "[services.web]\ncommand = \"node server.js\"\nport = {port}\nready = {{ http = \"/\" }}\n"
                    )),
                ),
                ("server.js", server.to_string()),
            ],
            service: "web",
            answers: http_answers,
        },
        mode,
    );
}

fn gunicorn_with_setproctitle_in(mode: Mode) {
    if !installed("gunicorn_with_setproctitle", &["/usr/bin/gunicorn"]) {
        return;
    }
    let port = mode.port(25000);
    let app = "def app(environ, start_response):\n    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [b'gunicorn\\n']\n";
    conformance(
        Program {
            name: "gunicorn",
            files: vec![
                (
                    "berth.toml",
                    config(&format!(
                        "[services.web]\ncommand = \"/usr/bin/gunicorn --workers 2 --bind 127.0.0.1:{{{{ port.web }}}} app:app\"\nport = {port}\nready = {{ http = \"/\" }}\n"
                    )),
                ),
                ("app.py", app.to_string()),
            ],
            service: "web",
            answers: http_answers,
        },
        mode,
    );
}

/// A server that forks, starts a new session, forks again and exits, as a classic Unix
/// daemon does: the service's first process exits 0 while the grandchild serves.
const DAEMON: &str = r#"import http.server, os, sys
port = int(os.environ["PORT"])
if os.fork():
    sys.exit(0)
os.setsid()
if os.fork():
    os._exit(0)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"daemon\n")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"#;

fn a_double_forking_daemon_in(mode: Mode) {
    if !installed("a_double_forking_daemon", &["python3"]) {
        return;
    }
    let port = mode.port(26000);
    conformance(
        Program {
            name: "daemon",
            files: vec![
                (
                    "berth.toml",
                    config(&format!(
                        "[services.web]\ncommand = \"python3 daemon.py\"\nport = {port}\nready = {{ http = \"/\" }}\n"
                    )),
                ),
                ("daemon.py", DAEMON.to_string()),
            ],
            service: "web",
            answers: http_answers,
        },
        mode,
    );
}

/// The tests' PostgreSQL service, stopped with its fast shutdown (SIGINT).
fn postgres_stopped_by_sigint(bin: &Path, port: u16) -> String {
    support::postgres::process_service(bin, "db", port).replace(
        "stop_grace = \"20s\"",
        "stop_grace = \"20s\"\nstop_signal = \"SIGINT\"",
    )
}

fn postgresql_as_its_own_user_in(mode: Mode) {
    let Some(bin) = support::postgres::server_bin("postgresql_as_its_own_user") else {
        return;
    };
    let service = postgres_stopped_by_sigint(&bin, mode.port(27000));
    conformance(
        Program {
            name: "postgres",
            files: vec![("berth.toml", config(&service))],
            service: "db",
            answers: postgres_answers,
        },
        mode,
    );
}

/// PostgreSQL with a client connected: SIGTERM would start a "smart" shutdown that waits
/// for the client until berth kills the server; `stop_signal = "SIGINT"` stops it at once
/// and cleanly, so the next start runs no crash recovery.
fn postgresql_with_a_connected_client_stops_cleanly_in(mode: Mode) {
    let Some(bin) =
        support::postgres::server_bin("postgresql_with_a_connected_client_stops_cleanly")
    else {
        return;
    };
    let sandbox = mode.sandbox();
    let service = postgres_stopped_by_sigint(&bin, mode.port(28000));
    let root = sandbox.project("pgstop", &service);
    sandbox.berth(&root, &["up", "--timeout", "60"]).success();
    let port = port_of(&status(&sandbox, &root), "db");
    let mut client = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "app",
            "-d",
            "postgres",
        ])
        .args(["-c", "select pg_sleep(600)"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("psql");
    wait_for("the client to connect", Duration::from_secs(10), || {
        Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "app",
                "-d",
                "postgres",
                "-tAc",
            ])
            .arg("select count(*) from pg_stat_activity where query like 'select pg_sleep%'")
            .output()
            .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "1")
    });
    let started = Instant::now();
    sandbox.berth(&root, &["down"]).success();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "down waited out the grace period ({took:?}): the server was killed, not stopped"
    );
    let _ = client.wait();
    assert_nothing_left(&root, port, "down with a client connected");
    let log = root.join(".berth/pgstop/logs/db.log");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("fast shutdown request"), "{text}");
    sandbox.berth(&root, &["up", "--timeout", "60"]).success();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("automatic recovery in progress"),
        "the next start recovered from a crash:\n{text}"
    );
    sandbox.berth(&root, &["down"]).success();
}

/// A user's own shell carrying the instance's variables (`eval "$(berth env)"`,
/// `berth shell`) is not the instance's: `down`, `rm` and `gc` leave it alone.
fn a_users_shell_with_the_instance_environment_survives_down_rm_and_gc_in(mode: Mode) {
    let sandbox = mode.sandbox();
    let root = sandbox.project("usershell", "[services.idle]\ncommand = \"sleep 600\"\n");
    sandbox.berth(&root, &["up"]).success();
    mode.check(&root);
    let env = sandbox.berth(&root, &["env"]).success().stdout;
    let mut shell = Command::new("sh")
        .arg("-c")
        .arg(format!("set -a\n{env}\nexec sleep 600"))
        .current_dir(&root)
        .spawn()
        .expect("user's shell");
    let pid = shell.id();
    wait_for(
        "the shell to read its environment",
        Duration::from_secs(5),
        || {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
                String::from_utf8_lossy(&environ).contains("BERTH_INSTANCE=usershell")
            })
        },
    );
    sandbox.berth(&root, &["down"]).success();
    assert!(pid_alive(pid), "down killed the user's shell");
    sandbox.berth(&root, &["up"]).success();
    sandbox.berth(&root, &["rm", "--yes"]).success();
    assert!(pid_alive(pid), "rm killed the user's shell");
    sandbox.berth(&root, &["up"]).success();
    let moved: PathBuf = sandbox.dir.path().join("usershell-moved");
    std::fs::rename(&root, &moved).unwrap();
    sandbox.berth(sandbox.dir.path(), &["gc"]).success();
    assert!(pid_alive(pid), "gc killed the user's shell");
    let _ = shell.kill();
    let _ = shell.wait();
}

// Each scenario with cgroups (where the machine allows them), and as on a machine
// without (`BERTH_NO_CGROUP=1`).

#[test]
fn redis_server() {
    redis_server_in(Mode::Cgroup);
}

#[test]
fn redis_server_without_cgroups() {
    redis_server_in(Mode::NoCgroup);
}

#[test]
fn redis_server_behind_sh() {
    redis_server_behind_sh_in(Mode::Cgroup);
}

#[test]
fn redis_server_behind_sh_without_cgroups() {
    redis_server_behind_sh_in(Mode::NoCgroup);
}

#[test]
fn nginx_master_and_workers() {
    nginx_master_and_workers_in(Mode::Cgroup);
}

#[test]
fn nginx_master_and_workers_without_cgroups() {
    nginx_master_and_workers_in(Mode::NoCgroup);
}

#[test]
fn nginx_that_daemonizes() {
    nginx_that_daemonizes_in(Mode::Cgroup);
}

#[test]
fn nginx_that_daemonizes_without_cgroups() {
    nginx_that_daemonizes_in(Mode::NoCgroup);
}

#[test]
fn node_server_that_sets_its_title() {
    node_server_that_sets_its_title_in(Mode::Cgroup);
}

#[test]
fn node_server_that_sets_its_title_without_cgroups() {
    node_server_that_sets_its_title_in(Mode::NoCgroup);
}

#[test]
fn gunicorn_with_setproctitle() {
    gunicorn_with_setproctitle_in(Mode::Cgroup);
}

#[test]
fn gunicorn_with_setproctitle_without_cgroups() {
    gunicorn_with_setproctitle_in(Mode::NoCgroup);
}

#[test]
fn a_double_forking_daemon() {
    a_double_forking_daemon_in(Mode::Cgroup);
}

#[test]
fn a_double_forking_daemon_without_cgroups() {
    a_double_forking_daemon_in(Mode::NoCgroup);
}

#[test]
fn postgresql_as_its_own_user() {
    postgresql_as_its_own_user_in(Mode::Cgroup);
}

#[test]
fn postgresql_as_its_own_user_without_cgroups() {
    postgresql_as_its_own_user_in(Mode::NoCgroup);
}

#[test]
fn postgresql_with_a_connected_client_stops_cleanly() {
    postgresql_with_a_connected_client_stops_cleanly_in(Mode::Cgroup);
}

#[test]
fn postgresql_with_a_connected_client_stops_cleanly_without_cgroups() {
    postgresql_with_a_connected_client_stops_cleanly_in(Mode::NoCgroup);
}

#[test]
fn a_users_shell_with_the_instance_environment_survives_down_rm_and_gc() {
    a_users_shell_with_the_instance_environment_survives_down_rm_and_gc_in(Mode::Cgroup);
}

#[test]
fn a_users_shell_with_the_instance_environment_survives_down_rm_and_gc_without_cgroups() {
    a_users_shell_with_the_instance_environment_survives_down_rm_and_gc_in(Mode::NoCgroup);
}
