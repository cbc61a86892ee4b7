//! End-to-end: service logs are bounded (rotation under a flood, a supervisor that stays
//! small under output without newlines), carry run separators, and `logs` and `up` read
//! them across rotated files.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::*;

/// Every file in `dir` with its size.
fn files_in(dir: &Path) -> Vec<(String, u64)> {
    let mut files: Vec<(String, u64)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| {
                    let size = entry.metadata().map(|meta| meta.len()).unwrap_or(0);
                    (entry.file_name().to_string_lossy().into_owned(), size)
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// The number in the newest complete `flood N xxx…` line in `dir`: in `flood.log`, or
/// in `flood.log.1` just after a rotation, before the next write creates `flood.log`.
fn newest_flood_number(dir: &Path) -> u64 {
    let mut number = None;
    wait_for("a flood line in the log", Duration::from_secs(5), || {
        number = ["flood.log", "flood.log.1"].iter().find_map(|name| {
            let text = std::fs::read(dir.join(name)).ok()?;
            // A write in progress may show part of a line: only whole lines count.
            let whole = &text[..text.iter().rposition(|byte| *byte == b'\n')?];
            let line = whole.rsplit(|byte| *byte == b'\n').next()?;
            let line = std::str::from_utf8(line).ok()?;
            line.strip_prefix("flood ")?.split(' ').next()?.parse().ok()
        });
        number.is_some()
    });
    number.unwrap_or_default()
}

fn instance_json(root: &Path, name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(root.join(format!(".berth/{name}/instance.json")))
        .unwrap_or_default();
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

/// Resident memory of `pid` in KiB (`VmRSS`), and its peak (`VmHWM`).
fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

#[test]
fn a_flooding_service_stays_within_its_cap_and_logs_shows_the_newest_lines() {
    let sandbox = Sandbox::new();
    let root = sandbox.project(
        "flood",
        &format!(
            r#"
[logs]
max_size = "1MiB"
max_files = 3

[services.flood]
command = "{} flood"
"#,
            helper()
        ),
    );
    let cap: u64 = 3 * 1024 * 1024;
    sandbox.berth(&root, &["up"]).success();
    let logs: PathBuf = root.join(".berth/flood/logs");
    let started = Instant::now();
    let mut largest = 0;
    let mut rotations_seen = false;
    // Four seconds of flood, the directory measured all along.
    while started.elapsed() < Duration::from_secs(4) {
        let files = files_in(&logs);
        let total: u64 = files.iter().map(|(_, size)| size).sum();
        largest = largest.max(total);
        assert!(total <= cap, "logs hold {total} bytes: {files:?}");
        for (name, size) in &files {
            assert!(*size <= 1024 * 1024, "{name} holds {size} bytes");
        }
        // A rotation renames one file at a time: a name may be missing for a moment.
        for (name, _) in &files {
            assert!(
                ["flood.log", "flood.log.1", "flood.log.2"].contains(&name.as_str()),
                "{files:?}"
            );
        }
        rotations_seen |= files.iter().any(|(name, _)| name == "flood.log.2");
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed();
    let last = newest_flood_number(&logs);
    assert!(rotations_seen);
    // `flood N ` plus 100 bytes of padding and a newline per line.
    let written = (last as f64) * (108.0 + (last as f64).log10());
    eprintln!(
        "flood: about {:.0} MB/s through the sink ({last} lines in {:.1} s); logs held at most {largest} bytes (cap {cap})",
        written / elapsed.as_secs_f64() / 1e6,
        elapsed.as_secs_f64()
    );

    // The newest lines, in order, from a log that is still being written.
    let before = newest_flood_number(&logs);
    let run = sandbox
        .berth(&root, &["logs", "-n", "5", "flood"])
        .success();
    let numbers: Vec<u64> = run
        .stdout
        .lines()
        .map(|line| {
            let text = line
                .strip_prefix("flood | flood ")
                .unwrap_or_else(|| panic!("{line}"));
            text.split(' ').next().unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(numbers.len(), 5, "{}", run.stdout);
    assert!(
        numbers.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "{numbers:?}"
    );
    assert!(numbers[4] >= before, "{numbers:?} older than {before}");
    assert!(run.stderr.is_empty(), "{}", run.stderr);

    sandbox.berth(&root, &["down"]).success();
    let names: Vec<String> = files_in(&logs).into_iter().map(|(name, _)| name).collect();
    assert_eq!(names, ["flood.log", "flood.log.1", "flood.log.2"]);

    // Asking for more than the files keep says so, on stderr. Read once the flood has
    // stopped: at 100 MB/s the files rotate every 10 ms, faster than a reader under load
    // opens three of them, so only a still log has a fixed set of lines to count.
    let run = sandbox
        .berth(&root, &["logs", "-n", "1000000", "flood"])
        .success();
    let printed = run.stdout.lines().count();
    assert!(printed > 10_000 && printed < 1_000_000, "{printed}");
    assert!(
        run.stderr.contains(&format!(
            "note: `flood`: {printed} of the 1000000 lines asked for are left; older ones were rotated away (`[logs]` keeps 1MiB × 3 per service)"
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn output_without_newlines_under_a_log_check_keeps_the_supervisor_small() {
    let sandbox = Sandbox::new();
    let root = sandbox.project(
        "spew",
        r#"
[logs]
max_size = "1MiB"
max_files = 2

[services.spew]
command = "cat /dev/zero"
ready = { log = "never printed" }
"#,
    );
    let up = sandbox
        .command(&root, &["up", "--timeout", "5"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut supervisor = 0;
    wait_for("the supervisor", Duration::from_secs(10), || {
        supervisor = instance_json(&root, "spew")["supervisor"]["pid"]
            .as_u64()
            .unwrap_or(0) as u32;
        supervisor != 0
    });
    let logs = root.join(".berth/spew/logs");
    let mut samples = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        if let Some((rss, _)) = memory_kib(supervisor) {
            samples.push(rss);
        }
        let total: u64 = files_in(&logs).iter().map(|(_, size)| size).sum();
        assert!(total <= 2 * 1024 * 1024, "logs hold {total} bytes");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (rss, peak) = memory_kib(supervisor).expect("the supervisor is alive");
    let first = samples.first().copied().unwrap_or(0);
    eprintln!(
        "supervisor under `cat /dev/zero`: VmRSS {first} KiB after start, {rss} KiB after 4 s, peak {peak} KiB"
    );
    // Before, the readiness check kept every byte without a newline: gigabytes here.
    assert!(peak < 64 * 1024, "peak {peak} KiB");
    assert!(rss < first + 16 * 1024, "{first} KiB → {rss} KiB");
    let output = up.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("not ready after 5 s"),
        "{}",
        &stderr[..stderr.len().min(2000)]
    );
    sandbox.berth(&root, &["down"]).success();
    // The logs hold lines of at most 16 KiB, however long the stream without newlines.
    for (name, _) in files_in(&logs) {
        let text = std::fs::read(logs.join(&name)).unwrap();
        let longest = text.split(|byte| *byte == b'\n').map(<[u8]>::len).max();
        assert!(longest <= Some(16 * 1024), "{name}: {longest:?}");
    }
}

#[test]
fn runs_are_separated_and_a_failure_shows_only_the_current_run() {
    let sandbox = Sandbox::new();
    let root = sandbox.project(
        "runs",
        r#"
[services.job]
command = "sh -c 'echo attempt-$$; echo failing now; exit 3'"
restart = "never"
# Never ready, so `up` always sees it fail (a service without a port is ready once
# started, which a quick exit may or may not beat).
ready = { log = "never printed" }
"#,
    );
    let attempts = |text: &str| -> Vec<String> {
        text.lines()
            .filter_map(|line| Some(line.split_once("attempt-")?.1.to_string()))
            .collect()
    };
    let first = sandbox.berth(&root, &["up"]).code(4);
    assert!(
        first.stderr.contains("last lines of this run in `"),
        "{}",
        first.stderr
    );
    assert!(
        first.stderr.contains("job | failing now"),
        "{}",
        first.stderr
    );
    assert_eq!(attempts(&first.stderr).len(), 1, "{}", first.stderr);
    sandbox.berth(&root, &["down"]).success();

    let second = sandbox.berth(&root, &["up"]).code(4);
    let shown = attempts(&second.stderr);
    assert_eq!(shown.len(), 1, "only this run's lines: {}", second.stderr);
    assert_ne!(shown, attempts(&first.stderr));
    assert!(!second.stderr.contains("----- berth:"), "{}", second.stderr);

    // The log keeps both runs, each after its separator.
    let log = std::fs::read_to_string(root.join(".berth/runs/logs/job.log")).unwrap();
    let separators: Vec<&str> = log
        .lines()
        .filter(|line| line.starts_with("----- berth: run 1 started "))
        .collect();
    assert_eq!(separators.len(), 2, "{log}");
    assert!(separators.iter().all(|line| line.ends_with(" -----")));
    let all = sandbox.berth(&root, &["logs", "job"]).success();
    assert_eq!(attempts(&all.stdout).len(), 2, "{}", all.stdout);
    assert_eq!(
        all.stdout
            .matches("job | ----- berth: run 1 started")
            .count(),
        2
    );
    let current = sandbox
        .berth(&root, &["logs", "--since-start", "job"])
        .success();
    assert_eq!(
        current.stdout,
        format!("job | attempt-{}\njob | failing now\n", shown[0])
    );
    assert!(current.stderr.is_empty(), "{}", current.stderr);
    let last = sandbox
        .berth(&root, &["logs", "--since-start", "-n", "1", "job"])
        .success();
    assert_eq!(last.stdout, "job | failing now\n");
    sandbox.berth(&root, &["down"]).success();
}

#[test]
fn a_log_check_matches_a_line_written_after_a_rotation() {
    // 64 KiB files: the ready line comes after a few rotations' worth of output.
    let sandbox = Sandbox::new();
    let root = sandbox.project(
        "late",
        r#"
[logs]
max_size = "64KiB"
max_files = 2

[services.late]
command = "sh -c 'head -c 400000 /dev/zero | tr \"\\0\" \"x\" | fold -w 100; echo; echo now-ready; exec sleep 600'"
ready = { log = "^now-ready$" }
"#,
    );
    let status = sandbox
        .berth(&root, &["up", "--timeout", "20", "--json"])
        .success()
        .json();
    assert_eq!(status["services"][0]["state"], "ready", "{status}");
    let names: Vec<String> = files_in(&root.join(".berth/late/logs"))
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(names, ["late.log", "late.log.1"]);
    sandbox.berth(&root, &["down"]).success();
}

#[test]
fn a_restart_puts_the_old_process_s_last_lines_before_the_new_separator() {
    let sandbox = Sandbox::new();
    let root = sandbox.project(
        "restarts",
        r#"
[services.job]
command = "sh -c 'trap \"echo stopping-$$; exit 0\" TERM; echo started-$$; while :; do sleep 0.05; done'"
ready = { log = "^started-" }
"#,
    );
    sandbox.berth(&root, &["up"]).success();
    sandbox.berth(&root, &["restart", "job"]).success();
    let log = std::fs::read_to_string(root.join(".berth/restarts/logs/job.log")).unwrap();
    // (sh also reports the `sleep` the TERM killed: `Terminated`.)
    let shape: Vec<&str> = log
        .lines()
        .filter_map(|line| {
            if line.starts_with("----- berth: run ") {
                Some("separator")
            } else {
                ["started", "stopping"]
                    .into_iter()
                    .find(|word| line.starts_with(&format!("{word}-")))
            }
        })
        .collect();
    assert_eq!(
        shape,
        ["separator", "started", "stopping", "separator", "started"],
        "{log}"
    );
    assert!(log.contains("----- berth: run 2 started "), "{log}");
    let current = sandbox
        .berth(&root, &["logs", "--since-start", "job"])
        .success();
    assert_eq!(current.stdout.lines().count(), 1, "{}", current.stdout);
    assert!(current.stdout.starts_with("job | started-"));
    sandbox.berth(&root, &["down"]).success();
}

/// `logs --json` prints JSON lines: instance, service, stream (berth's own lines apart
/// from the service's output) and the line.
#[test]
fn logs_json_prints_one_object_per_line() {
    let sandbox = Sandbox::new();
    let root = sandbox.project(
        "jsonlogs",
        "[services.talk]\ncommand = \"sh -c 'echo hello; echo world >&2; exec sleep 600'\"\n",
    );
    sandbox.berth(&root, &["up"]).success();
    wait_for("the lines", std::time::Duration::from_secs(10), || {
        sandbox.berth(&root, &["logs"]).stdout.contains("world")
    });
    let run = sandbox.berth(&root, &["logs", "--json"]).success();
    let objects: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}")))
        .collect();
    let lines: Vec<(&str, &str)> = objects
        .iter()
        .map(|object| {
            assert_eq!(object["instance"], "jsonlogs");
            assert_eq!(object["service"], "talk");
            (
                object["stream"].as_str().unwrap(),
                object["line"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(lines.contains(&("output", "hello")), "{lines:?}");
    assert!(lines.contains(&("output", "world")), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|(stream, line)| *stream == "berth" && line.contains("run 1 started")),
        "{lines:?}"
    );
    sandbox.berth(&root, &["down"]).success();
}
