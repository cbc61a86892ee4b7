//! End-to-end: `berth mcp` driven by a real MCP client, the official Python SDK (PyPI
//! `mcp`, installed by `scripts/test-deps`), started as the README's `.mcp.json` says.
//! `tests/mcp_client.py` lists the tools, brings a stack up (a real `python3 -m
//! http.server`) watching its progress notifications, reads ports, URL, env and logs,
//! restarts it, saves and restores a snapshot, makes mistakes on purpose, cancels an
//! `up` that waits forever, and brings it all down; this test asserts on the JSON report
//! it prints.
//!
//! Ports 11000-11099 (no other test file uses them): the stack 11000, the `up` that is
//! cancelled 11010.
//!
//! Without the SDK this test skips loudly, unless BERTH_REQUIRE_PROGRAMS=1 (set by
//! `.ci/run`) makes that a failure.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

const PORT: u16 = 11000;
const SLOW_PORT: u16 = 11010;
const TOOLS: &[&str] = &[
    "list_instances",
    "new",
    "up",
    "down",
    "restart",
    "status",
    "logs",
    "env",
    "url",
    "port",
    "snapshot_save",
    "snapshot_restore",
    "snapshot_list",
];

/// Whether python3 can import the MCP SDK; otherwise skip loudly, or fail under
/// BERTH_REQUIRE_PROGRAMS=1.
fn sdk_installed(test: &str) -> bool {
    let imported = Command::new("python3")
        .args(["-c", "import mcp"])
        .output()
        .is_ok_and(|output| output.status.success());
    if imported {
        return true;
    }
    if std::env::var("BERTH_REQUIRE_PROGRAMS").as_deref() == Ok("1") {
        panic!(
            "{test}: python3 cannot import `mcp` (the MCP Python SDK), and BERTH_REQUIRE_PROGRAMS=1 requires it (scripts/test-deps installs it)"
        );
    }
    eprintln!(
        "\n*** SKIPPED {test}: python3 cannot import `mcp` (scripts/test-deps installs the MCP Python SDK) ***\n"
    );
    false
}

/// The server entry of the README's `.mcp.json` example: (command, args).
fn readme_server() -> (String, Vec<String>) {
    let readme = include_str!("../README.md");
    let block = readme
        .split("```json\n")
        .skip(1)
        .filter_map(|rest| rest.split("\n```").next())
        .find(|block| block.contains("mcpServers"))
        .expect("README.md has a ```json block with `mcpServers`");
    let config: Value = serde_json::from_str(block).expect("the README's .mcp.json parses");
    let server = &config["mcpServers"]["berth"];
    let args = server["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|arg| arg.as_str().expect("an argument").to_string())
        .collect();
    (
        server["command"].as_str().expect("command").to_string(),
        args,
    )
}

/// Every word in backticks of the README's AGENTS.md snippet (the ```markdown block).
fn agents_snippet_words() -> Vec<String> {
    let readme = include_str!("../README.md");
    let block = readme
        .split("```markdown\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("README.md has the AGENTS.md snippet, a ```markdown block");
    block
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Runs the client with `config`; its report, or a panic with its output.
fn run_client(dir: &Path, config: &Value) -> Value {
    let config_path = dir.join("mcp-client.json");
    std::fs::write(&config_path, config.to_string()).expect("client config");
    let stdout_path = dir.join("mcp-client.out");
    let stderr_path = dir.join("mcp-client.err");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp_client.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("run python3");
    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the client") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    match status {
        Some(status) if status.success() => serde_json::from_str(&stdout)
            .unwrap_or_else(|error| panic!("the report is not JSON ({error}):\n{stdout}")),
        Some(status) => {
            panic!("the MCP client failed ({status})\nstdout:\n{stdout}\nstderr:\n{stderr}")
        }
        None => panic!("the MCP client ran past 240 s\nstdout:\n{stdout}\nstderr:\n{stderr}"),
    }
}

fn service<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["services"]
        .as_array()
        .and_then(|services| services.iter().find(|service| service["name"] == name))
        .unwrap_or_else(|| panic!("no service `{name}` in {status}"))
}

#[test]
fn an_mcp_client_brings_a_stack_up_reads_it_back_and_brings_it_down() {
    if !sdk_installed("an_mcp_client_brings_a_stack_up_reads_it_back_and_brings_it_down") {
        return;
    }
    let sandbox = Sandbox::new();
    let project = sandbox.project(
        "agent-stack",
        &format!(
            "[project]\nname = \"agent-stack\"\n\n[services.web]\n\
             command = \"python3 -m http.server {{{{ port.web }}}} --bind 127.0.0.1\"\n\
             port = {PORT}\nready = {{ http = \"/hello.txt\" }}\n"
        ),
    );
    std::fs::write(project.join("hello.txt"), "hello from the agent's stack\n").expect("hello");
    // A service that never listens: its `up` waits until it is cancelled.
    let slow = sandbox.project(
        "agent-slow",
        &format!(
            "[project]\nname = \"agent-slow\"\n\n[services.never]\n\
             command = \"sleep 600\"\nport = {SLOW_PORT}\n"
        ),
    );
    let (command, args) = readme_server();
    assert_eq!(command, "berth", "the README's .mcp.json runs `berth`");
    let mut env: serde_json::Map<String, Value> = std::env::vars()
        .filter(|(key, _)| key != "BERTH_INSTANCE" && key != "BERTH_COMPOSE")
        .map(|(key, value)| (key, Value::String(value)))
        .collect();
    env.insert("BERTH_HOME".into(), json!(sandbox.home()));
    env.insert("NO_COLOR".into(), json!("1"));
    let report = run_client(
        sandbox.dir.path(),
        &json!({
            "command": berth_exe(),
            "args": args,
            "env": env,
            "project": project,
            "slow_project": slow,
            "port": PORT,
        }),
    );

    // The tools, each with a description and input and output schemas; every
    // instance tool takes `path`, `name` and `instance`.
    assert_eq!(report["server"]["name"], "berth");
    let tools = report["tools"].as_object().expect("tools");
    let mut names: Vec<&str> = tools.keys().map(String::as_str).collect();
    names.sort_unstable();
    let mut expected = TOOLS.to_vec();
    expected.sort_unstable();
    assert_eq!(
        names, expected,
        "the tools of issues 15 and 17, and no others"
    );
    for (name, tool) in tools {
        assert!(
            tool["description"]
                .as_str()
                .is_some_and(|text| text.len() > 20),
            "{name} has a description"
        );
        assert_eq!(
            tool["has_output_schema"], true,
            "{name} has an output schema"
        );
        if name == "new" {
            // A new worktree's instance: its directory and name, both required.
            for input in ["path", "name"] {
                assert!(
                    tool["required"]
                        .as_array()
                        .expect("required")
                        .contains(&json!(input)),
                    "new requires `{input}`: {tool}"
                );
            }
        } else if name != "list_instances" {
            for input in ["path", "name", "instance"] {
                assert!(
                    tool["inputs"]
                        .as_array()
                        .expect("inputs")
                        .contains(&json!(input)),
                    "{name} takes `{input}`: {tool}"
                );
            }
            assert!(
                tool["required"]
                    .as_array()
                    .expect("required")
                    .contains(&json!("path")),
                "{name} requires `path`"
            );
        }
    }
    // The README's AGENTS.md snippet names only tools and arguments the server has.
    let known: Vec<String> = tools
        .iter()
        .flat_map(|(name, tool)| {
            std::iter::once(name.clone()).chain(
                tool["inputs"]
                    .as_array()
                    .expect("inputs")
                    .iter()
                    .map(|input| input.as_str().expect("input").to_string()),
            )
        })
        .collect();
    for word in agents_snippet_words() {
        let word = word.split(['(', ':', ' ']).next().unwrap_or_default();
        assert!(
            known.iter().any(|name| name == word),
            "the README's AGENTS.md snippet names `{word}`, which is no tool or argument of the server"
        );
    }

    // Up: structured content as `status --json` prints it, a text, progress seen.
    let up = &report["up"];
    assert_eq!(up["is_error"], false, "{up}");
    let status = &up["structured"];
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(service(status, "web")["state"], "ready");
    assert_eq!(service(status, "web")["ports"]["default"], PORT);
    assert!(up["text"].as_str().expect("text").contains("web"), "{up}");
    let progress = report["up_progress"].as_array().expect("progress");
    assert!(
        progress.iter().any(|event| event["message"]
            .as_str()
            .is_some_and(|message| message.contains("waiting for the services to be ready"))),
        "a progress notification while `up` waited: {progress:?}"
    );
    let cli_status = &report["cli_status"];
    assert_eq!(
        report["status"]["structured"]["services"],
        cli_status["services"]
    );
    assert_eq!(report["status"]["structured"]["name"], cli_status["name"]);

    // Ports, URL, env, logs; the stack answers on the reported port.
    assert_eq!(report["port"]["structured"], json!({ "port": PORT }));
    assert_eq!(report["port"]["text"], format!("{PORT}\n"));
    assert_eq!(
        report["url"]["structured"]["url"],
        format!("http://127.0.0.1:{PORT}")
    );
    assert_eq!(
        report["env"]["structured"]["BERTH_PORT_WEB"],
        PORT.to_string()
    );
    assert_eq!(report["env_web"]["structured"]["PORT"], PORT.to_string());
    assert_eq!(report["http"]["status"], 200, "{}", report["http"]);
    assert_eq!(report["http"]["body"], "hello from the agent's stack\n");
    let lines = report["logs"]["structured"]["lines"]
        .as_array()
        .expect("lines");
    assert!(
        lines.iter().any(|line| line["line"]
            .as_str()
            .unwrap_or_default()
            .contains("GET /hello.txt?from=mcp-client ")),
        "the client's request in the web log: {}",
        report["logs"]
    );
    assert!(
        lines
            .iter()
            .all(|line| line["service"] == "web" && line["instance"] == "agent-stack")
    );
    assert!(
        report["logs_since_start"]["structured"]["lines"]
            .as_array()
            .expect("lines")
            .len()
            <= 5
    );
    let listed = &report["list_instances"]["structured"]["instances"];
    assert!(
        listed
            .as_array()
            .expect("instances")
            .iter()
            .any(|row| row["name"] == "agent-stack"),
        "{listed}"
    );
    assert_eq!(
        report["snapshot_list"]["structured"]["snapshots"],
        json!([])
    );

    // Restart and snapshots; their notes come in the text.
    assert_eq!(
        report["restart"]["is_error"], false,
        "{}",
        report["restart"]
    );
    assert_eq!(
        service(&report["restart"]["structured"], "web")["state"],
        "ready"
    );
    let saved = &report["snapshot_save"];
    assert_eq!(saved["is_error"], false, "{saved}");
    assert_eq!(saved["structured"]["name"], "before");
    assert!(
        saved["text"]
            .as_str()
            .expect("text")
            .starts_with("note: stopping `agent-stack`"),
        "{saved}"
    );
    assert_eq!(
        report["snapshot_list_saved"]["structured"]["snapshots"][0]["name"],
        "before"
    );
    let restored = &report["snapshot_restore"];
    assert_eq!(restored["is_error"], false, "{restored}");
    assert_eq!(restored["structured"]["instance"], "agent-stack");
    assert_eq!(report["http_after_restore"]["status"], 200);

    // Mistakes are tool errors with berth's message and hint; the server goes on.
    let missing = &report["missing_path"];
    assert_eq!(missing["is_error"], true, "{missing}");
    let text = missing["text"].as_str().expect("text");
    assert!(
        text.starts_with("error: `path` `/nonexistent/berth-mcp-test`: No such file or directory"),
        "{text}"
    );
    assert!(text.contains("\nhint: "), "{text}");
    let bad = &report["bad_arguments"];
    assert_eq!(bad["is_error"], true, "{bad}");
    assert!(
        bad["text"]
            .as_str()
            .expect("text")
            .contains("missing field `service`"),
        "{bad}"
    );
    let unknown = &report["unknown_service"];
    assert_eq!(unknown["is_error"], true, "{unknown}");
    assert!(
        unknown["text"].as_str().expect("text").contains("`nope`"),
        "{unknown}"
    );
    assert_eq!(report["too_many_lines"]["is_error"], true);
    assert_eq!(report["after_mistakes"]["is_error"], false);

    // A cancelled `up` stops waiting: its progress went on until then, and `down` of that
    // instance got the lock at once.
    let cancel = &report["cancel"];
    assert_eq!(cancel["returned"], false, "{cancel}");
    assert!(
        cancel["progress"].as_array().expect("progress").len() >= 2,
        "a beat while the wait lasted: {cancel}"
    );
    assert_eq!(
        report["slow_down"]["is_error"], false,
        "{}",
        report["slow_down"]
    );
    assert!(
        cancel["down_seconds"].as_f64().expect("seconds") < 15.0,
        "{cancel}"
    );

    // Down: stopped, ports released, nothing answers.
    assert_eq!(
        report["down"]["structured"],
        json!({ "name": "agent-stack", "state": "stopped", "released": true })
    );
    assert_eq!(
        report["status_after_down"]["structured"]["state"],
        "stopped"
    );
    assert_eq!(report["http_after_down"]["status"], Value::Null);
    assert!(!accepts(PORT) && !accepts(SLOW_PORT));
}
