//! `berth logs`: service logs prefixed with the service name, read across their rotated
//! files; `--since-start` keeps only each service's current run; `-f` merges them live.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::cli::LogsArgs;
use crate::config::format_size;
use crate::context::Context;
use crate::error::Result;
use crate::lifecycle;
use crate::logs::{LogCursor, READ_BUDGET, Scope, Tail, TailEnd};
use crate::output;
use crate::state::{FileLock, InstanceFile, LogLimits};

/// Lines shown per log without `-n` (and without `--since-start`).
const DEFAULT_LINES: usize = 100;
/// The most `-f` reads from one log before it looks at the next.
const FOLLOW_BUDGET: u64 = 8 * 1024 * 1024;

/// One service's log, as chosen for printing.
struct Chosen {
    name: String,
    path: PathBuf,
    limits: LogLimits,
}

pub fn run(context: &Context, args: &LogsArgs) -> Result<()> {
    let selected = context.select()?;
    let file = selected.started_with(&args.services)?;
    let logs = chosen_logs(file, &args.services);
    let scope = if args.since_start {
        Scope::CurrentRun
    } else {
        Scope::All
    };
    let count = args.lines.unwrap_or(if args.since_start {
        usize::MAX
    } else {
        DEFAULT_LINES
    });
    let width = logs.iter().map(|log| log.name.len()).max().unwrap_or(0);
    let mut notes = Vec::new();
    let mut cursors = Vec::new();
    let mut stdout = std::io::stdout().lock();
    let format = LineFormat {
        json: context.json,
        instance: &file.name,
        width,
    };
    for log in &logs {
        let tail = Tail::read(&log.path, count, scope, log.limits);
        let printed = tail.for_each(|line| format.write(&mut stdout, &log.name, line, None));
        match printed {
            // stdout closed (piped into `head`): nothing more to do.
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            result => result?,
        }
        notes.extend(shortfall(log, &tail, count, scope));
        cursors.push(tail.follow(&log.path));
    }
    drop(stdout);
    for note in notes {
        output::note(&note);
    }
    if args.follow {
        follow(&logs, cursors, &AtomicBool::new(false), &format)?;
    }
    Ok(())
}

/// How a log line is printed: `service | line`, or with `--json` one JSON object per
/// line (`time` is when `-f` saw it; lines read back from the files carry no time).
struct LineFormat<'a> {
    json: bool,
    instance: &'a str,
    width: usize,
}

impl LineFormat<'_> {
    fn write(
        &self,
        out: &mut impl Write,
        service: &str,
        line: &[u8],
        seen: Option<std::time::SystemTime>,
    ) -> std::io::Result<()> {
        let text = String::from_utf8_lossy(line);
        if !self.json {
            return writeln!(out, "{service:<width$} | {text}", width = self.width);
        }
        // berth's own lines (run separators, spawn errors) are told apart from the
        // service's output, which is stdout and stderr together.
        let stream = if text.starts_with("----- berth:") || text.starts_with("berth: ") {
            "berth"
        } else {
            "output"
        };
        let object = serde_json::json!({
            "time": seen.map(|time| humantime::format_rfc3339_millis(time).to_string()),
            "instance": self.instance,
            "service": service,
            "stream": stream,
            "line": text,
        });
        writeln!(out, "{object}")
    }
}

/// What to say when a tail holds fewer lines than asked for.
fn shortfall(log: &Chosen, tail: &Tail, count: usize, scope: Scope) -> Option<String> {
    let name = &log.name;
    let kept = format!(
        "`[logs]` keeps {} × {} per service",
        format_size(log.limits.max_size),
        log.limits.max_files
    );
    match (tail.end, scope) {
        (TailEnd::Count | TailEnd::RunStart, _) => None,
        (TailEnd::Beginning, Scope::All) => None,
        (TailEnd::Beginning, Scope::CurrentRun) if tail.lines == 0 => None,
        (TailEnd::Beginning, Scope::CurrentRun) => Some(format!(
            "note: `{name}`: no run separator in its log; showing all {} lines",
            tail.lines
        )),
        (TailEnd::Rotated, Scope::All) => Some(format!(
            "note: `{name}`: {} of the {count} lines asked for are left; older ones were rotated away ({kept})",
            tail.lines
        )),
        (TailEnd::Rotated, Scope::CurrentRun) => Some(format!(
            "note: `{name}`: the start of its current run was rotated away; showing the {} lines left ({kept})",
            tail.lines
        )),
        (TailEnd::Bounded, _) => Some(format!(
            "note: `{name}`: showing its last {} lines; reading stopped after {}",
            tail.lines,
            format_size(READ_BUDGET)
        )),
    }
}

fn chosen_logs(file: &InstanceFile, services: &[String]) -> Vec<Chosen> {
    file.services
        .iter()
        .filter(|(name, _)| services.is_empty() || services.contains(name))
        .map(|(name, record)| Chosen {
            name: name.clone(),
            path: record.log().to_path_buf(),
            limits: record.log_limits(),
        })
        .collect()
}

/// Prints lines appended to any of the logs, as they arrive, until `stop` is set.
fn follow(
    logs: &[Chosen],
    mut cursors: Vec<LogCursor>,
    stop: &AtomicBool,
    format: &LineFormat,
) -> Result<()> {
    while !stop.load(Ordering::Relaxed) {
        let mut stdout = std::io::stdout().lock();
        let mut read = 0;
        let mut closed = false;
        for (log, cursor) in logs.iter().zip(&mut cursors) {
            read += cursor.read(FOLLOW_BUDGET, &mut |line| {
                closed = closed
                    || format
                        .write(
                            &mut stdout,
                            &log.name,
                            line,
                            Some(std::time::SystemTime::now()),
                        )
                        .is_err();
            });
        }
        if closed || stdout.flush().is_err() {
            // stdout closed (piped into `head`): following is over.
            return Ok(());
        }
        drop(stdout);
        if read == 0 {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

/// A flag set by SIGINT or SIGTERM (instead of the default of dying at once).
pub fn interrupt_flag() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&flag))?;
    }
    Ok(flag)
}

/// `up --attach`: follow every log in the foreground until `stop` is set (Ctrl-C),
/// then bring the instance down.
pub fn attach(context: &Context, file: &InstanceFile, stop: &AtomicBool) -> Result<()> {
    output::note("attached; press Ctrl-C to stop the instance");
    let logs = chosen_logs(file, &[]);
    let cursors = logs
        .iter()
        .map(|log| LogCursor::at_end(&log.path))
        .collect();
    let width = logs.iter().map(|log| log.name.len()).max().unwrap_or(0);
    let format = LineFormat {
        json: context.json,
        instance: &file.name,
        width,
    };
    follow(&logs, cursors, stop, &format)?;
    let paths = file.paths();
    let _operation = FileLock::acquire(
        &context.ledger.operation_lock(&file.name)?,
        context.lock_timeout,
    )?;
    lifecycle::stop(&paths)?;
    let mut ledger = context.ledger.lock()?;
    if let Some(entry) = ledger.data.find_mut(&file.name) {
        entry.started_at = None;
        ledger.save()?;
    }
    output::note(&format!("stopped `{}`", file.name));
    Ok(())
}
