//! `berth router` end to end, with what people run: a Python HTTP app and a WebSocket
//! service on the `websockets` library, reached with curl, the `websockets` client, and a
//! headless Chromium over http and over https/HTTP/2 with the router's CA trusted the way
//! `berth router trust` says. Routers listen on a port the kernel picks (`--port 0`), but
//! for the one restarted on its own port (16798); the stacks' base ports are this file's
//! own (16700-16799).
//!
//! The programs come from `scripts/test-deps`; without them the tests skip loudly, and
//! BERTH_REQUIRE_PROGRAMS=1 (set by `.ci/run`) makes that a failure.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{Sandbox, wait_for};

/// The HTTP service: who it is, what it was asked, a cookie on `/login`.
const APP: &str = r#"
import http.server, json, os
INSTANCE = os.environ["BERTH_INSTANCE"]

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/login":
            body = b"logged in\n"
            self.send_response(200)
            self.send_header("Set-Cookie", "session=" + INSTANCE + "; Path=/; HttpOnly")
        else:
            body = json.dumps({
                "instance": INSTANCE,
                "path": self.path,
                "cookie": self.headers.get("Cookie"),
                "host": self.headers.get("Host"),
                "forwarded_for": self.headers.get("X-Forwarded-For"),
                "forwarded_host": self.headers.get("X-Forwarded-Host"),
                "forwarded_proto": self.headers.get("X-Forwarded-Proto"),
            }).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"#;

/// The WebSocket service (the `websockets` library): echoes `INSTANCE:PROTO:message` on
/// `/socket`, serves a page at `/` that opens a WebSocket to its own origin, reports the
/// message back on `/report` (appended to `REPORT_FILE`), then does it all again with a
/// second WebSocket.
const WS: &str = r#"
import asyncio, http, os
from websockets.asyncio.server import serve

INSTANCE = os.environ["BERTH_INSTANCE"]
REPORT = os.environ["REPORT_FILE"]
PAGE = """<!doctype html><meta charset="utf-8"><title>ws</title><script>
const report = (message) => fetch('/report?' + new URLSearchParams({message, origin: location.origin}));
const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/socket';
const echo = (text, then) => {
  const socket = new WebSocket(url);
  socket.onopen = () => socket.send(text);
  socket.onmessage = (event) => { socket.close(); report(event.data).then(then); };
  socket.onerror = () => report('error');
};
echo('hello', () => echo('again', () => {}));
</script>"""

def process_request(connection, request):
    if request.path == "/socket":
        return None
    if request.path.startswith("/report"):
        with open(REPORT, "a") as report:
            report.write(request.path + "\n")
        return connection.respond(http.HTTPStatus.OK, "ok\n")
    response = connection.respond(http.HTTPStatus.OK, PAGE)
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = "text/html; charset=utf-8"
    return response

async def echo(websocket):
    proto = websocket.request.headers.get("X-Forwarded-Proto", "direct")
    async for message in websocket:
        await websocket.send(INSTANCE + ":" + proto + ":" + message)

async def main():
    async with serve(echo, "127.0.0.1", int(os.environ["PORT"]), process_request=process_request) as server:
        await server.serve_forever()

asyncio.run(main())
"#;

/// Whether the programs and the `websockets` library are installed; otherwise skip
/// loudly, or fail under BERTH_REQUIRE_PROGRAMS=1.
fn installed(test: &str, programs: &[&str]) -> bool {
    support::installed_with_modules(test, programs, &["websockets.asyncio.server"])
}

/// A copy of the stack in `sandbox/NAME` (the instance is named after the directory),
/// with its base ports at `base` and `base + 1`.
fn stack(sandbox: &Sandbox, name: &str, base: u16) -> PathBuf {
    let config = format!(
        r#"[ports]
stride = 10

[services.web]
command = "python3 app.py"
port = {base}
ready = {{ http = "/" }}

[services.ws]
command = "python3 ws.py"
port = {ws}
env = {{ REPORT_FILE = "{{{{ instance.root }}}}/report.txt" }}
"#,
        ws = base + 1
    );
    sandbox.project_files(
        name,
        &[("berth.toml", &config), ("app.py", APP), ("ws.py", WS)],
    )
}

/// Starts the router (any free port) and returns its port.
fn start_router(sandbox: &Sandbox, dir: &Path, extra: &[&str]) -> u16 {
    let mut args = vec!["--json", "router", "start", "--port", "0"];
    args.extend_from_slice(extra);
    let status = sandbox.berth(dir, &args).success().json();
    assert_eq!(status["running"], true, "{status}");
    status["port"].as_u64().expect("router port") as u16
}

/// `curl` with its own resolver for `*.localhost` (loopback, RFC 6761): status, body.
fn curl(args: &[&str]) -> (u16, String) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// `curl` as asked (a `-w` of the caller's own), its standard output.
fn curl_out(args: &[&str]) -> String {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn get_json(url: &str) -> serde_json::Value {
    let (code, body) = curl(&[url]);
    assert_eq!(code, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|error| panic!("{url}: {error}: {body}"))
}

/// Sends `hello` over a WebSocket to `ws://HOST:PORT/socket` through 127.0.0.1 (glibc does
/// not resolve `*.localhost`; the client still names HOST), returns the answer.
fn websocket_echo(host: &str, port: u16) -> String {
    let script = format!(
        r#"
import socket
from websockets.sync.client import connect
sock = socket.create_connection(("127.0.0.1", {port}))
with connect("ws://{host}:{port}/socket", sock=sock, open_timeout=10) as ws:
    ws.send("hello")
    print(ws.recv(timeout=10))
"#
    );
    let output = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("run python3");
    assert!(output.status.success(), "websocket to {host}: {output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The local addresses the process `pid` listens on, as `ss` shows them.
fn listening_addresses(pid: u32) -> Vec<String> {
    let output = Command::new("ss")
        .args(["-Hltnp"])
        .output()
        .expect("run ss");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains(&format!("pid={pid},")))
        .filter_map(|line| line.split_whitespace().nth(3).map(str::to_string))
        .collect()
}

#[test]
fn two_instances_are_reached_by_name_over_http_websocket_and_http2() {
    if !installed(
        "two_instances_are_reached_by_name_over_http_websocket_and_http2",
        &["python3", "curl", "ss"],
    ) {
        return;
    }
    let sandbox = Sandbox::new();
    let alpha = stack(&sandbox, "alpha", 16700);
    let beta = stack(&sandbox, "beta", 16700);
    sandbox.berth(&alpha, &["up"]).success();
    sandbox.berth(&beta, &["up"]).success();
    // A port of this file's own, not one the kernel picks: this test stops the router and
    // starts it again on the same port, which another test's router must not take meanwhile.
    let port: u16 = 16798;
    sandbox
        .berth(&alpha, &["router", "start", "--port", &port.to_string()])
        .success();

    // Loopback only: 127.0.0.1 and [::1], nothing else.
    let status = sandbox
        .berth(&alpha, &["--json", "router", "status"])
        .success()
        .json();
    let pid = status["pid"].as_u64().expect("router pid") as u32;
    let mut listening = listening_addresses(pid);
    listening.sort();
    let mut expected = vec![format!("127.0.0.1:{port}"), format!("[::1]:{port}")];
    expected.sort();
    assert_eq!(listening, expected);
    let hosts: Vec<&str> = status["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|route| route["host"].as_str().unwrap())
        .collect();
    for host in [
        "alpha.localhost",
        "web.alpha.localhost",
        "ws.beta.localhost",
    ] {
        assert!(hosts.contains(&host), "{host} not in {hosts:?}");
    }

    // Each name reaches its own instance, with the client's name and X-Forwarded-*.
    let web_alpha = get_json(&format!("http://web.alpha.localhost:{port}/x?y=1"));
    assert_eq!(web_alpha["instance"], "alpha");
    assert_eq!(web_alpha["path"], "/x?y=1");
    assert_eq!(web_alpha["host"], format!("web.alpha.localhost:{port}"));
    assert_eq!(
        web_alpha["forwarded_host"],
        format!("web.alpha.localhost:{port}")
    );
    assert_eq!(web_alpha["forwarded_proto"], "http");
    assert_eq!(web_alpha["forwarded_for"], "127.0.0.1");
    assert_eq!(
        get_json(&format!("http://web.beta.localhost:{port}/"))["instance"],
        "beta"
    );
    // The bare instance name is its first HTTP service.
    assert_eq!(
        get_json(&format!("http://alpha.localhost:{port}/"))["instance"],
        "alpha"
    );
    // HTTP/2 in cleartext (prior knowledge), and keep-alive: two requests, one connection.
    let h2c = curl_out(&[
        "--http2-prior-knowledge",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{http_version}",
        &format!("http://web.beta.localhost:{port}/"),
    ]);
    assert_eq!(h2c, "200 2");
    let connects = curl_out(&[
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{num_connects}\n",
        &format!("http://web.alpha.localhost:{port}/a"),
        &format!("http://web.alpha.localhost:{port}/b"),
    ]);
    assert_eq!(connects, "200 1\n200 0\n", "keep-alive: one connection");

    // The readiness probes closed their connections cleanly: no reset for the app to log.
    let logs = sandbox.berth(&alpha, &["logs", "web"]).success();
    assert!(!logs.stdout.contains("Traceback"), "{}", logs.stdout);

    // WebSockets, each to its own instance.
    assert_eq!(
        websocket_echo("ws.alpha.localhost", port),
        "alpha:http:hello"
    );
    assert_eq!(websocket_echo("ws.beta.localhost", port), "beta:http:hello");

    // A cookie set on one instance's name is not sent to another's.
    let jar = sandbox.dir.path().join("cookies.txt");
    let jar = jar.to_str().unwrap();
    let (code, _) = curl(&[
        "-c",
        jar,
        &format!("http://web.alpha.localhost:{port}/login"),
    ]);
    assert_eq!(code, 200);
    let again = |host: &str| {
        let (_, body) = curl(&["-b", jar, &format!("http://{host}:{port}/")]);
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["cookie"].clone()
    };
    assert_eq!(again("web.alpha.localhost"), "session=alpha");
    assert_eq!(again("web.beta.localhost"), serde_json::Value::Null);
    assert_eq!(again("alpha.localhost"), serde_json::Value::Null);

    // `berth url` prints the name while the router runs; `--direct` the port; both in JSON.
    let url = sandbox.berth(&alpha, &["url", "web"]).success();
    assert_eq!(
        url.stdout.trim(),
        format!("http://web.alpha.localhost:{port}")
    );
    let direct = sandbox.berth(&alpha, &["url", "web", "--direct"]).success();
    assert_eq!(direct.stdout.trim(), "http://127.0.0.1:16700");
    let both = sandbox
        .berth(&beta, &["--json", "url", "web"])
        .success()
        .json();
    assert_eq!(both["routed"], format!("http://web.beta.localhost:{port}"));
    assert_eq!(both["direct"], "http://127.0.0.1:16710");
    let shown = sandbox.berth(&alpha, &["status"]).success();
    assert!(
        shown
            .stdout
            .contains(&format!("http://web.alpha.localhost:{port}")),
        "{}",
        shown.stdout
    );

    // Unknown names reach nobody: 404, listing what is routed.
    let (code, page) = curl(&[&format!("http://nope.localhost:{port}/")]);
    assert_eq!(code, 404);
    assert!(
        page.contains("nope.localhost") && page.contains("web.alpha.localhost"),
        "{page}"
    );
    let (code, _) = curl(&[
        "-H",
        "Host: example.com",
        &format!("http://127.0.0.1:{port}/"),
    ]);
    assert_eq!(code, 404);
    let (code, _) = curl(&[&format!("http://db.alpha.localhost:{port}/")]);
    assert_eq!(code, 404);

    // A stopped instance's names answer with a page that names it.
    sandbox.berth(&beta, &["down"]).success();
    let (code, page) = curl(&[&format!("http://web.beta.localhost:{port}/")]);
    assert_eq!(code, 503, "{page}");
    assert!(
        page.contains("<code>web</code> of <code>beta</code> is stopped"),
        "{page}"
    );
    assert_eq!(
        get_json(&format!("http://web.alpha.localhost:{port}/"))["instance"],
        "alpha"
    );

    // The router restarted while instances run: the same names, nothing restarted.
    let before = sandbox
        .berth(&alpha, &["--json", "status"])
        .success()
        .json();
    sandbox.berth(&alpha, &["router", "stop"]).success();
    let (code, _) = curl(&[&format!("http://web.alpha.localhost:{port}/")]);
    assert_eq!(code, 0, "nothing answers once the router stopped");
    let restarted = sandbox
        .berth(
            &alpha,
            &["--json", "router", "start", "--port", &port.to_string()],
        )
        .success()
        .json();
    assert_eq!(restarted["port"], port);
    assert_eq!(
        get_json(&format!("http://web.alpha.localhost:{port}/"))["instance"],
        "alpha"
    );
    let after = sandbox
        .berth(&alpha, &["--json", "status"])
        .success()
        .json();
    assert_eq!(
        support::service_pids(&before),
        support::service_pids(&after)
    );

    // Instances that come later are routed without a restart.
    sandbox.berth(&beta, &["up"]).success();
    let gamma = stack(&sandbox, "gamma", 16700);
    sandbox.berth(&gamma, &["up"]).success();
    assert_eq!(
        get_json(&format!("http://web.gamma.localhost:{port}/"))["instance"],
        "gamma"
    );
    assert_eq!(
        get_json(&format!("http://web.beta.localhost:{port}/"))["instance"],
        "beta"
    );
    assert_eq!(
        websocket_echo("ws.gamma.localhost", port),
        "gamma:http:hello"
    );
}

#[test]
fn a_port_that_is_taken_is_refused_with_exit_3_and_its_holder() {
    let sandbox = Sandbox::new();
    let dir = sandbox.project("proj", "[services.app]\ncommand = \"true\"\n");
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = holder.local_addr().unwrap().port();
    let run = sandbox
        .berth(&dir, &["router", "start", "--port", &port.to_string()])
        .code(3);
    assert!(
        run.stderr.contains(&format!(
            "port {port} for the router is taken by PID {}",
            std::process::id()
        )),
        "{}",
        run.stderr
    );
    let status = sandbox
        .berth(&dir, &["--json", "router", "status"])
        .success()
        .json();
    assert_eq!(status["running"], false);
    // A second start of a running router with the same settings changes nothing; with
    // others, it is refused.
    let port = start_router(&sandbox, &dir, &[]);
    let again = sandbox
        .berth(
            &dir,
            &["--json", "router", "start", "--port", &port.to_string()],
        )
        .success()
        .json();
    assert_eq!(again["port"], port);
    sandbox
        .berth(
            &dir,
            &["router", "start", "--port", &port.to_string(), "--https"],
        )
        .code(1);
}

#[test]
fn the_hosts_block_is_written_kept_in_sync_and_removed() {
    if !installed(
        "the_hosts_block_is_written_kept_in_sync_and_removed",
        &["python3"],
    ) {
        return;
    }
    let mut sandbox = Sandbox::new();
    let hosts = sandbox.dir.path().join("hosts");
    let original = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n";
    std::fs::write(&hosts, original).unwrap();
    let hosts_path: &'static str = Box::leak(hosts.display().to_string().into_boxed_str());
    sandbox.env.push(("BERTH_HOSTS_FILE", hosts_path));
    let alpha = stack(&sandbox, "alpha", 16740);
    sandbox.berth(&alpha, &["up"]).success();
    let printed = sandbox.berth(&alpha, &["router", "hosts"]).success();
    assert!(
        printed
            .stdout
            .contains("127.0.0.1\tweb.alpha.localhost\n::1\tweb.alpha.localhost\n"),
        "{}",
        printed.stdout
    );
    assert_eq!(
        std::fs::read_to_string(&hosts).unwrap(),
        original,
        "printing edits nothing"
    );

    start_router(&sandbox, &alpha, &[]);
    sandbox
        .berth(&alpha, &["router", "hosts", "--write"])
        .success();
    let written = std::fs::read_to_string(&hosts).unwrap();
    assert!(written.starts_with(original), "{written}");
    assert!(
        written.contains("127.0.0.1\tws.alpha.localhost\n"),
        "{written}"
    );

    // The router follows the ledger: a new instance's names appear, a removed one's go.
    let beta = stack(&sandbox, "beta", 16740);
    sandbox.berth(&beta, &["up"]).success();
    wait_for(
        "beta's names in the hosts file",
        Duration::from_secs(10),
        || {
            std::fs::read_to_string(&hosts)
                .unwrap()
                .contains("web.beta.localhost")
        },
    );
    sandbox.berth(&beta, &["rm", "--yes"]).success();
    wait_for(
        "beta's names gone from the hosts file",
        Duration::from_secs(10),
        || {
            !std::fs::read_to_string(&hosts)
                .unwrap()
                .contains("beta.localhost")
        },
    );

    sandbox
        .berth(&alpha, &["router", "hosts", "--remove"])
        .success();
    assert_eq!(std::fs::read_to_string(&hosts).unwrap(), original);
}

/// A headless Chromium, with its own profile and `HOME` (where its NSS database lives),
/// killed with its whole process group on drop.
///
/// It runs in a network namespace of its own, whose loopback reaches the router through
/// [`forward_into`]: Chromium drops every connection when the machine's network changes
/// (`ERR_NETWORK_CHANGED`), and the Docker tests running beside this one add and remove
/// veth interfaces all the time. Seen in CI: the page's HTTP/2 connection closed under its
/// WebSocket, and a test waited for a report that never came.
struct Chromium {
    child: std::process::Child,
}

impl Chromium {
    /// Opens `url`, which names the router's `port` on a loopback name.
    fn open(home: &Path, url: &str, port: u16) -> Self {
        // `unshare` makes the namespace, the shell waits until the forwarder listens in
        // it, then becomes Chromium.
        let mut child = Command::new("unshare")
            .args([
                "--net",
                "--",
                "sh",
                "-c",
                "read go && exec \"$@\"",
                "sh",
                "chromium",
            ])
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--disable-default-apps",
                "--no-pings",
                // Anything but the loopback names goes to a proxy that is not there: the
                // browser sends nothing off this machine (nor could it, from its namespace).
                "--proxy-server=http://127.0.0.1:9",
                "--proxy-bypass-list=localhost;*.localhost;127.0.0.1;[::1]",
            ])
            .arg(format!(
                "--user-data-dir={}",
                home.join("profile").display()
            ))
            .arg(url)
            .env("HOME", home)
            // Its temporary files go with the sandbox.
            .env("TMPDIR", home)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            // Kept for a failure's message (see `page_report`).
            .stderr(std::fs::File::create(home.join("chromium.log")).expect("chromium's log"))
            .process_group(0)
            .spawn()
            .expect("start chromium");
        let mut go = child.stdin.take().expect("chromium's stdin");
        let chromium = Chromium { child };
        forward_into(chromium.child.id(), port);
        std::io::Write::write_all(&mut go, b"go\n").expect("tell chromium to start");
        chromium
    }
}

/// Listens on `port` of 127.0.0.1 and [::1] inside the network namespace of process
/// `pid` (once it has one of its own), and forwards every connection to the router on
/// 127.0.0.1:`port` of this one. Returns once it listens. Namespaces belong to threads:
/// one thread enters the new namespace and only accepts; connections to the router are
/// made on threads started by a thread that never left this one.
fn forward_into(pid: u32, port: u16) {
    let ours = std::fs::read_link("/proc/self/ns/net").expect("this network namespace");
    let theirs = format!("/proc/{pid}/ns/net");
    wait_for(
        "chromium's own network namespace",
        Duration::from_secs(10),
        || std::fs::read_link(&theirs).is_ok_and(|namespace| namespace != ours),
    );
    let namespace = std::fs::File::open(&theirs).expect("chromium's network namespace");
    let (accepted, connections) = std::sync::mpsc::channel::<std::net::TcpStream>();
    let (listening, ready) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        nix::sched::setns(&namespace, nix::sched::CloneFlags::CLONE_NEWNET)
            .expect("enter chromium's network namespace");
        // Started from this thread, `ip` runs in the new namespace too.
        let up = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .expect("run ip");
        assert!(up.success(), "loopback up in chromium's namespace");
        let listeners: Vec<std::net::TcpListener> = ["127.0.0.1", "[::1]"]
            .iter()
            .filter_map(|address| std::net::TcpListener::bind(format!("{address}:{port}")).ok())
            .collect();
        assert!(
            !listeners.is_empty(),
            "no loopback address in chromium's namespace"
        );
        listening.send(()).unwrap();
        let (first, rest) = listeners.split_first().unwrap();
        std::thread::scope(|scope| {
            for listener in rest {
                let accepted = accepted.clone();
                scope.spawn(move || accept_all(listener, &accepted));
            }
            accept_all(first, &accepted);
        });
    });
    std::thread::spawn(move || {
        for inbound in connections {
            let Ok(outbound) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                continue;
            };
            for (mut from, mut to) in [
                (inbound.try_clone().unwrap(), outbound.try_clone().unwrap()),
                (outbound, inbound),
            ] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    ready
        .recv_timeout(Duration::from_secs(10))
        .expect("the forwarder listens in chromium's namespace");
}

fn accept_all(
    listener: &std::net::TcpListener,
    accepted: &std::sync::mpsc::Sender<std::net::TcpStream>,
) {
    for stream in listener.incoming().flatten() {
        if accepted.send(stream).is_err() {
            return;
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

use std::os::unix::process::CommandExt as _;

/// What the page reported (its origin and both WebSockets' messages), once it did. A page
/// that does not report in time fails the test with what there is to see: the report so
/// far, the WebSocket service's log, the router's log and Chromium's own output.
fn page_report(sandbox: &Sandbox, dir: &Path, browser_home: &Path) -> String {
    let report = dir.join("report.txt");
    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    let started = std::time::Instant::now();
    // The service creates the file before it writes a line: wait for both whole lines.
    loop {
        let text = read(&report);
        if text.lines().count() >= 2 && text.ends_with('\n') {
            return text;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let chromium = read(&browser_home.join("chromium.log"));
            let tail: Vec<&str> = chromium.lines().rev().take(40).collect();
            panic!(
                "no report from the page in 60 s\n--- report so far:\n{text}\n--- the WebSocket service's log:\n{}\n--- router.log:\n{}\n--- chromium's last lines:\n{}",
                sandbox.berth(dir, &["logs", "ws"]).stdout,
                read(&sandbox.home().join("router/router.log")),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn chromium_loads_a_page_and_opens_a_websocket_through_the_router() {
    if !installed(
        "chromium_loads_a_page_and_opens_a_websocket_through_the_router",
        &["python3", "chromium"],
    ) {
        return;
    }
    let sandbox = Sandbox::new();
    let alpha = stack(&sandbox, "alpha", 16760);
    let beta = stack(&sandbox, "beta", 16760);
    sandbox.berth(&alpha, &["up"]).success();
    sandbox.berth(&beta, &["up"]).success();
    let port = start_router(&sandbox, &alpha, &[]);
    let browser_home = sandbox.dir.path().join("browser");
    std::fs::create_dir_all(&browser_home).unwrap();

    let _chromium = Chromium::open(
        &browser_home,
        &format!("http://ws.beta.localhost:{port}/"),
        port,
    );
    let report = page_report(&sandbox, &beta, &browser_home);
    assert!(
        report.contains("message=beta%3Ahttp%3Ahello")
            && report.contains("message=beta%3Ahttp%3Aagain")
            && report.contains(&format!("origin=http%3A%2F%2Fws.beta.localhost%3A{port}")),
        "{report}"
    );
    assert!(!alpha.join("report.txt").exists(), "alpha was not asked");
    let log = std::fs::read_to_string(sandbox.home().join("router/router.log")).unwrap();
    assert!(
        log.contains(&format!(
            "HTTP/1.1 ws.beta.localhost:{port}: upgraded to websocket with ws of beta"
        )),
        "{log}"
    );
}

#[test]
fn chromium_over_https_and_http2_with_the_router_ca_trusted() {
    if !installed(
        "chromium_over_https_and_http2_with_the_router_ca_trusted",
        &["python3", "chromium", "certutil", "curl"],
    ) {
        return;
    }
    let sandbox = Sandbox::new();
    let alpha = stack(&sandbox, "alpha", 16780);
    sandbox.berth(&alpha, &["up"]).success();
    let port = start_router(&sandbox, &alpha, &["--https"]);

    // Trusted the way `router trust` says, for Chromium's NSS database in its HOME.
    let trust = sandbox
        .berth(&alpha, &["--json", "router", "trust"])
        .success()
        .json();
    let ca = trust["ca"].as_str().unwrap().to_string();
    let step = trust["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["for"].as_str().unwrap().starts_with("Chrome"))
        .expect("a step for Chrome")["command"]
        .as_str()
        .unwrap()
        .to_string();
    let browser_home = sandbox.dir.path().join("browser");
    std::fs::create_dir_all(browser_home.join(".pki/nssdb")).unwrap();
    let nss = Command::new("certutil")
        .args(["-N", "--empty-password", "-d"])
        .arg(format!("sql:{}", browser_home.join(".pki/nssdb").display()))
        .status()
        .unwrap();
    assert!(nss.success());
    let trusted = Command::new("sh")
        .args(["-c", &step])
        .env("HOME", &browser_home)
        .status()
        .unwrap();
    assert!(trusted.success(), "{step}");

    // curl checks the certificate against the CA alone, over HTTP/2 (ALPN).
    let out = curl_out(&[
        "--cacert",
        &ca,
        "-w",
        "\n%{http_code} %{http_version}",
        &format!("https://web.alpha.localhost:{port}/"),
    ]);
    let (body, code_version) = out.rsplit_once('\n').unwrap();
    assert_eq!(code_version, "200 2", "{out}");
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["instance"], "alpha");
    assert_eq!(body["forwarded_proto"], "https");
    // A name the CA may not vouch for gets no certificate for it.
    let (code, _) = curl(&[
        "--cacert",
        &ca,
        "-H",
        "Host: example.com",
        &format!("https://127.0.0.1:{port}/"),
    ]);
    assert_eq!(
        code, 404,
        "an address is served, with localhost's certificate"
    );

    let _chromium = Chromium::open(
        &browser_home,
        &format!("https://ws.alpha.localhost:{port}/"),
        port,
    );
    let report = page_report(&sandbox, &alpha, &browser_home);
    assert!(
        report.contains("message=alpha%3Ahttps%3Ahello")
            && report.contains("message=alpha%3Ahttps%3Aagain")
            && report.contains(&format!("origin=https%3A%2F%2Fws.alpha.localhost%3A{port}")),
        "{report}"
    );
    // A WebSocket went over the page's HTTP/2 connection (RFC 8441 extended CONNECT).
    // Chromium takes that connection only once it is ready for WebSockets; early in the
    // page's life it may open its first one over HTTP/1.1 instead (seen once in a loaded
    // CI run), so the page opens a second one, a whole round trip later.
    let log = std::fs::read_to_string(sandbox.home().join("router/router.log")).unwrap();
    assert!(
        log.contains(&format!(
            "HTTP/2 ws.alpha.localhost:{port}: upgraded to websocket with ws of alpha"
        )),
        "{log}"
    );
}

#[test]
fn compose_services_are_routed_by_name_too() {
    if !support::docker::available("compose_services_are_routed_by_name_too")
        || !installed("compose_services_are_routed_by_name_too", &["curl"])
    {
        return;
    }
    let mut sandbox = Sandbox::new();
    sandbox.compose = Some(support::docker::compose_tools()[0].to_string());
    let compose = format!(
        "services:\n  web:\n    image: {}\n    command: [\"httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/site\"]\n    volumes: [\"./site:/site:ro\"]\n    ports: [\"16790:80\"]\n    stop_grace_period: 1s\n",
        support::docker::IMAGE
    );
    let mut dirs = Vec::new();
    for name in ["first", "second"] {
        let dir = sandbox.project_files(name, &[("compose.yml", &compose)]);
        std::fs::create_dir(dir.join("site")).unwrap();
        std::fs::write(dir.join("site/index.html"), format!("{name}\n")).unwrap();
        sandbox.berth(&dir, &["up"]).success();
        dirs.push(dir);
    }
    let port = start_router(&sandbox, &dirs[0], &[]);
    for name in ["first", "second"] {
        for host in [format!("web.{name}.localhost"), format!("{name}.localhost")] {
            let (code, body) = curl(&[&format!("http://{host}:{port}/index.html")]);
            assert_eq!((code, body.trim()), (200, name), "{host}");
        }
    }
    let url = sandbox.berth(&dirs[1], &["url", "web"]).success();
    assert_eq!(
        url.stdout.trim(),
        format!("http://web.second.localhost:{port}")
    );
}

#[test]
fn templates_name_services_through_the_router_and_a_wrong_default_is_located() {
    let sandbox = Sandbox::new();
    let config = r#"[router]
default = "web"

[services.web]
command = "sleep 60"
port = 16795
ready = { tcp = false }
env = { PUBLIC = "{{ public_url.web }}", ALLOWED_HOST = "{{ host.web }}", DIRECT = "{{ url.web }}" }
"#;
    let dir = sandbox.project("tmpl", config);
    let port = start_router(&sandbox, &dir, &[]);
    sandbox.berth(&dir, &["up"]).success();
    let env = sandbox
        .berth(&dir, &["env", "web", "--format", "json"])
        .success()
        .json();
    assert_eq!(env["PUBLIC"], format!("http://web.tmpl.localhost:{port}"));
    assert_eq!(env["ALLOWED_HOST"], "web.tmpl.localhost");
    assert_eq!(env["DIRECT"], "http://127.0.0.1:16795");
    let file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(".berth/tmpl/instance.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(file["router_default"], "web");

    let wrong = sandbox.project(
        "wrong",
        "[router]\ndefault = \"api\"\n\n[services.web]\ncommand = \"sleep 60\"\nport = 16796\n",
    );
    let run = sandbox.berth(&wrong, &["up"]).code(2);
    assert!(
        run.shows_config_error(
            "berth.toml:2:11: `default` names `api`, which is not a service of this project"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn a_failed_service_answers_502_with_a_page_naming_it_and_why() {
    if !installed(
        "a_failed_service_answers_502_with_a_page_naming_it_and_why",
        &["curl"],
    ) {
        return;
    }
    let sandbox = Sandbox::new();
    let dir = sandbox.project(
        "broken",
        "[services.bad]\ncommand = \"sh -c \\\"echo boom; exit 3\\\"\"\nport = 16797\nrestart = \"never\"\n",
    );
    sandbox.berth(&dir, &["up"]).code(4);
    let port = start_router(&sandbox, &dir, &[]);
    let (code, page) = curl(&[&format!("http://bad.broken.localhost:{port}/")]);
    assert_eq!(code, 502, "{page}");
    assert!(
        page.contains("<code>bad</code> of <code>broken</code> is failed"),
        "{page}"
    );
    assert!(page.contains("exited with status 3"), "{page}");
    assert!(page.contains("berth logs bad --name broken"), "{page}");
}
