//! Shared test support: a temp project with its own BERTH_HOME, the real berth binary,
//! helper programs, and waiting on conditions with deadlines. Everything started is
//! stopped on drop.
#![allow(dead_code)]

pub mod docker;
pub mod postgres;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub fn berth_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_berth"))
}

/// A binary built from this workspace (`cargo build --workspace` builds them).
pub fn workspace_bin(name: &str) -> PathBuf {
    let path = berth_exe()
        .parent()
        .expect("berth has a directory")
        .join(name);
    assert!(
        path.exists(),
        "`{}` is missing: build the workspace first (`cargo build --workspace`), as the README's test command does",
        path.display()
    );
    path
}

pub fn helper() -> String {
    workspace_bin("berth-test-helper").display().to_string()
}

/// The result of one berth run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from_output(output: Output) -> Self {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn success(self) -> Self {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn code(self, expected: i32) -> Self {
        assert_eq!(
            self.code, expected,
            "unexpected exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("bad JSON ({error}):\n{}", self.stdout))
    }

    /// Whether stderr shows the configuration error `expected`, written in the error's
    /// one-line form `berth.toml:LINE:COLUMN: MESSAGE` (either part may be cut short), as
    /// berth draws it for people: `error: MESSAGE`, then `--> …/berth.toml:LINE:COLUMN`,
    /// then the offending line with a caret under the offending text. An `expected`
    /// without a place is looked for as it is.
    pub fn shows_config_error(&self, expected: &str) -> bool {
        let Some(rest) = expected.strip_prefix("berth.toml:") else {
            return self.stderr.contains(expected);
        };
        let (numbers, message) = rest.split_once(": ").unwrap_or((rest, ""));
        let place = format!("/berth.toml:{numbers}");
        let arrow = self
            .stderr
            .lines()
            .find_map(|line| line.trim_start().strip_prefix("--> "));
        self.stderr.contains(&format!("error: {message}"))
            && arrow.is_some_and(|path| path.contains(&place))
            && self
                .stderr
                .lines()
                .any(|line| line.trim_end().ends_with('^'))
    }
}

/// A scratch area: a BERTH_HOME and any number of project directories under one temp dir.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    /// BERTH_COMPOSE for every berth run (the Compose tool under test).
    pub compose: Option<String>,
    /// More variables for every berth run (`BERTH_NO_CGROUP=1`, say).
    pub env: Vec<(&'static str, &'static str)>,
}

impl Sandbox {
    pub fn new() -> Self {
        Sandbox {
            dir: tempfile::tempdir().expect("temp dir"),
            compose: None,
            env: Vec::new(),
        }
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("berth-home")
    }

    /// Creates `name/berth.toml` with `config` and returns the project directory.
    pub fn project(&self, name: &str, config: &str) -> PathBuf {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).expect("project dir");
        std::fs::write(dir.join("berth.toml"), config).expect("berth.toml");
        dir.canonicalize().expect("canonical")
    }

    pub fn command(&self, dir: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(berth_exe());
        command
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("BERTH_HOME", self.home())
            .env_remove("BERTH_INSTANCE")
            .env("NO_COLOR", "1");
        match &self.compose {
            Some(tool) => command.env("BERTH_COMPOSE", tool),
            None => command.env_remove("BERTH_COMPOSE"),
        };
        command.envs(self.env.iter().copied());
        command
    }

    pub fn berth(&self, dir: &Path, args: &[&str]) -> Run {
        Run::from_output(self.command(dir, args).output().expect("run berth"))
    }

    /// Creates `name/` holding each `(file, text)` and returns the project directory.
    pub fn project_files(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).expect("project dir");
        for (file, text) in files {
            std::fs::write(dir.join(file), text).expect("project file");
        }
        dir.canonicalize().expect("canonical")
    }

    pub fn ledger(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.home().join("ledger.json")).expect("ledger.json");
        serde_json::from_str(&text).expect("ledger parses")
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // The router of this BERTH_HOME, when a test started one.
        if self.home().join("router").exists() {
            let _ = self.command(self.dir.path(), &["router", "stop"]).output();
        }
        // Stop every instance this sandbox's ledger knows, so no test leaves processes.
        let Ok(text) = std::fs::read_to_string(self.home().join("ledger.json")) else {
            return;
        };
        let Ok(ledger) = serde_json::from_str::<serde_json::Value>(&text) else {
            return;
        };
        for entry in ledger["instances"].as_array().cloned().unwrap_or_default() {
            let name = entry["name"].as_str().unwrap_or_default();
            let root = PathBuf::from(entry["root"].as_str().unwrap_or_default());
            if root.exists() {
                let _ = self
                    .command(&root, &["--name", name, "down", "--volumes"])
                    .output();
            }
        }
    }
}

/// SIGKILLs `pid` (a supervisor, say) and waits until it is gone.
pub fn kill_and_wait(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    // Every thread must be gone, not only the leader: a leader that exits first shows as
    // a zombie while its other threads (one in fsync, say) still hold its files and locks.
    wait_for("the process to die", Duration::from_secs(10), || {
        !pid_alive(pid)
            && std::fs::read_dir(format!("/proc/{pid}/task"))
                .map_or(true, |tasks| tasks.count() <= 1)
    });
}

/// Runs `git` in `dir` with a fixed identity; its trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()
        .expect("run git");
    assert!(output.status.success(), "git {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Waits for `condition` until `timeout`, polling; panics with `what` on timeout.
#[track_caller]
pub fn wait_for(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn accepts(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

pub fn is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        && std::net::TcpListener::bind(("0.0.0.0", port)).is_ok()
}

/// A minimal HTTP GET on 127.0.0.1; returns (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Some((status, body))
}

pub fn pid_alive(pid: u32) -> bool {
    // A zombie is dead for our purposes: it runs nothing and holds no port.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// PIDs of processes whose command line contains `needle`.
pub fn pids_matching(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline"))
            && String::from_utf8_lossy(&cmdline)
                .replace('\0', " ")
                .contains(needle)
            && pid_alive(pid)
        {
            pids.push(pid);
        }
    }
    pids
}

/// The PIDs `status --json` reports, service name → pid.
pub fn service_pids(status: &serde_json::Value) -> Vec<(String, u32)> {
    status["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|service| {
            Some((
                service["name"].as_str()?.to_string(),
                service["pid"].as_u64()? as u32,
            ))
        })
        .collect()
}

pub fn port_of(status: &serde_json::Value, service: &str) -> u16 {
    status["services"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|entry| entry["name"] == service)
        .and_then(|entry| entry["ports"].as_object()?.values().next()?.as_u64())
        .unwrap_or_else(|| panic!("no port for {service} in {status}")) as u16
}

/// Whether every executable is installed; otherwise skip loudly, or fail under
/// BERTH_REQUIRE_PROGRAMS=1 (set by `.ci/run`).
pub fn installed(test: &str, programs: &[&str]) -> bool {
    installed_with_modules(test, programs, &[])
}

/// Like [`installed`], with Python modules `python3` must import as well.
pub fn installed_with_modules(test: &str, programs: &[&str], modules: &[&str]) -> bool {
    let succeeds = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .is_ok_and(|output| output.status.success())
    };
    let mut missing: Vec<String> = programs
        .iter()
        .filter(|program| !succeeds("sh", &["-c", &format!("command -v {program}")]))
        .map(|program| program.to_string())
        .collect();
    missing.extend(
        modules
            .iter()
            .filter(|module| !succeeds("python3", &["-c", &format!("import {module}")]))
            .map(|module| format!("python3 module {module}")),
    );
    if missing.is_empty() {
        return true;
    }
    if std::env::var("BERTH_REQUIRE_PROGRAMS").as_deref() == Ok("1") {
        panic!(
            "{test}: {missing:?} missing, and BERTH_REQUIRE_PROGRAMS=1 requires them (scripts/test-deps installs them)"
        );
    }
    eprintln!(
        "\n*** SKIPPED {test}: {missing:?} not installed (scripts/test-deps installs them) ***\n"
    );
    false
}
