//! `logs`: service logs read back across their rotated files, as a stream of lines a
//! caller prints or collects; `--since-start` keeps only each service's current run;
//! following merges the logs live. `up --attach` follows, then stops the instance.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use super::Progress;
use super::{lifecycle, select};
use crate::config::format_size;
use crate::context::Context;
use crate::error::Result;
use crate::logs::{LogCursor, READ_BUDGET, Scope, Tail, TailEnd};
use crate::state::{FileLock, InstanceFile, LogLimits};

/// Lines shown per log without a count (and without `since_start`).
const DEFAULT_LINES: usize = 100;
/// The most following reads from one log before it looks at the next.
const FOLLOW_BUDGET: u64 = 8 * 1024 * 1024;

/// What `logs` is asked for.
#[derive(Debug, Clone, Default)]
pub struct LogsOptions {
    /// Services to show; all when empty.
    pub services: Vec<String>,
    /// Lines from the end of each log (default 100; with `since_start`, the whole run).
    pub lines: Option<usize>,
    /// Only the lines of each service's current run.
    pub since_start: bool,
}

/// Where lines go: the instance, the service, the line (without its newline) and, for
/// lines seen while following, when. An error (stdout closed) ends the stream quietly.
pub type LineSink<'a> =
    dyn FnMut(&str, &str, &[u8], Option<SystemTime>) -> std::io::Result<()> + 'a;

/// One service's log, as chosen for reading.
struct Chosen {
    instance: String,
    name: String,
    path: PathBuf,
    limits: LogLimits,
}

/// The logs, read up to their ends, ready to follow what is appended next.
pub struct Follower {
    /// The sink failed (stdout closed): there is nothing more to send.
    pub closed: bool,
    logs: Vec<Chosen>,
    cursors: Vec<LogCursor>,
}

impl Follower {
    /// Sends lines appended to any of the logs, as they arrive, until `stop` is set or
    /// the sink fails.
    pub fn follow(mut self, stop: &AtomicBool, sink: &mut LineSink) -> Result<()> {
        while !stop.load(Ordering::Relaxed) {
            let mut read = 0;
            let mut closed = false;
            for (log, cursor) in self.logs.iter().zip(&mut self.cursors) {
                read += cursor.read(FOLLOW_BUDGET, &mut |line| {
                    closed = closed
                        || sink(&log.instance, &log.name, line, Some(SystemTime::now())).is_err();
                });
            }
            if closed {
                // stdout closed (piped into `head`): following is over.
                return Ok(());
            }
            if read == 0 {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }
}

/// The selected instance's logs, chosen and not read yet.
pub struct LogStream {
    /// The instance the lines are of.
    pub instance: String,
    logs: Vec<Chosen>,
    scope: Scope,
    count: usize,
}

/// Chooses the selected instance's logs as `options` ask.
pub fn logs(
    context: &Context,
    options: &LogsOptions,
    progress: &dyn Progress,
) -> Result<LogStream> {
    let selected = select(context, progress)?;
    let file = selected.started_with(&options.services)?;
    let (scope, count) = scope_and_count(options);
    Ok(LogStream {
        instance: file.name.clone(),
        logs: chosen_logs(file, &options.services),
        scope,
        count,
    })
}

/// The logs of every instance of the project (`logs --all`), one instance after the
/// other; `instance` of the stream is the project's name. An instance never started has
/// no logs, and services named that an instance lacks are skipped for it.
pub fn logs_all(
    context: &Context,
    options: &LogsOptions,
    progress: &dyn Progress,
) -> Result<LogStream> {
    let project = select::project_name(context, progress)?;
    let mut chosen = Vec::new();
    for entry in select::project_instances(context, progress)? {
        let one = select::select(&context.for_instance(&entry.name, &entry.root), progress)?;
        if let Some(file) = &one.file {
            chosen.extend(chosen_logs(file, &options.services));
        }
    }
    let (scope, count) = scope_and_count(options);
    Ok(LogStream {
        instance: project,
        logs: chosen,
        scope,
        count,
    })
}

fn scope_and_count(options: &LogsOptions) -> (Scope, usize) {
    let scope = if options.since_start {
        Scope::CurrentRun
    } else {
        Scope::All
    };
    let count = options.lines.unwrap_or(if options.since_start {
        usize::MAX
    } else {
        DEFAULT_LINES
    });
    (scope, count)
}

impl LogStream {
    /// The longest service name among the logs, with its instance's name when
    /// `with_instance` (for aligning a prefix).
    pub fn width(&self, with_instance: bool) -> usize {
        self.logs
            .iter()
            .map(|log| match with_instance {
                true => log.instance.len() + 1 + log.name.len(),
                false => log.name.len(),
            })
            .max()
            .unwrap_or(0)
    }

    /// Sends the last lines of each log to `sink`, one log after the other, and returns
    /// where they end, to follow from there.
    pub fn tail(self, sink: &mut LineSink, progress: &dyn Progress) -> Result<Follower> {
        let LogStream {
            instance: _,
            logs,
            scope,
            count,
        } = self;
        let mut notes = Vec::new();
        let mut cursors = Vec::new();
        for log in &logs {
            let tail = Tail::read(&log.path, count, scope, log.limits);
            let printed = tail.for_each(|line| sink(&log.instance, &log.name, line, None));
            match printed {
                // stdout closed (piped into `head`): nothing more to do.
                Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {
                    return Ok(Follower {
                        closed: true,
                        logs,
                        cursors,
                    });
                }
                result => result?,
            }
            notes.extend(shortfall(log, &tail, count, scope));
            cursors.push(tail.follow(&log.path));
        }
        for note in notes {
            progress.note(&note);
        }
        Ok(Follower {
            closed: false,
            logs,
            cursors,
        })
    }
}

/// `up --attach`: follows every log of the instance `file` from its end until `stop` is
/// set (Ctrl-C), then brings the instance down.
pub fn attach(
    context: &Context,
    file: &InstanceFile,
    stop: &AtomicBool,
    sink: &mut LineSink,
) -> Result<()> {
    at_end(file).follow(stop, sink)?;
    let _operation = FileLock::acquire(
        &context.ledger.operation_lock(&file.name)?,
        context.lock_timeout,
    )?;
    lifecycle::stop(&file.paths())?;
    let mut ledger = context.ledger.lock()?;
    if ledger.mark_stopped(&file.name) {
        ledger.save()?;
    }
    Ok(())
}

/// The logs of the instance `file` a follower reads from their ends.
pub fn at_end(file: &InstanceFile) -> Follower {
    let logs = chosen_logs(file, &[]);
    let cursors = logs
        .iter()
        .map(|log| LogCursor::at_end(&log.path))
        .collect();
    Follower {
        closed: false,
        logs,
        cursors,
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
            "`{name}`: no run separator in its log; showing all {} lines",
            tail.lines
        )),
        (TailEnd::Rotated, Scope::All) => Some(format!(
            "`{name}`: {} of the {count} lines asked for are left; older ones were rotated away ({kept})",
            tail.lines
        )),
        (TailEnd::Rotated, Scope::CurrentRun) => Some(format!(
            "`{name}`: the start of its current run was rotated away; showing the {} lines left ({kept})",
            tail.lines
        )),
        (TailEnd::Bounded, _) => Some(format!(
            "`{name}`: showing its last {} lines; reading stopped after {}",
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
            instance: file.name.clone(),
            name: name.clone(),
            path: record.log().to_path_buf(),
            limits: record.log_limits(),
        })
        .collect()
}
