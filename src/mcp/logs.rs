//! `logs` for a caller that keeps what it reads: the last lines of each log, collected
//! instead of printed, bounded in count and in bytes (a tool's result is held whole in
//! memory on both sides).

use schemars::JsonSchema;
use serde::Serialize;

use super::params::{self, Since};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::instance::Progress;
use crate::instance::logs::{self, LogsOptions};
use crate::output::LogLine;

const DEFAULT_LINES: usize = 100;
const MAX_LINES: usize = 1000;
/// The most line text one call returns, shared evenly by the logs it reads.
const MAX_BYTES: usize = 256 * 1024;

/// What `logs` returns: the lines as `berth logs --json` prints them, one object each.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LogLines {
    pub instance: String,
    /// Each log's lines, oldest first, one log after the other.
    pub lines: Vec<LogLine>,
    /// Older lines were left out to keep the result within 256 KiB of text.
    pub truncated: bool,
}

/// The last lines of the selected instance's logs, as `params` ask.
pub fn read(context: &Context, params: &params::Logs, progress: &dyn Progress) -> Result<LogLines> {
    let count = params.lines.unwrap_or(DEFAULT_LINES);
    if count == 0 || count > MAX_LINES {
        return Err(Error::usage(
            format!("`lines` is {count}; it is from 1 to {MAX_LINES}"),
            None,
        ));
    }
    let options = LogsOptions {
        services: params.service.iter().cloned().collect(),
        lines: Some(count),
        since_start: params.since == Some(Since::Start),
    };
    let stream = logs::logs(context, &options, progress)?;
    let instance = stream.instance.clone();
    // The stream reads one log after the other.
    let mut per_log: Vec<Vec<LogLine>> = Vec::new();
    stream.tail(
        &mut |instance, service, line, seen| {
            let line = LogLine::new(instance, service, line, seen);
            match per_log.last_mut() {
                Some(lines) if lines[0].service == service => lines.push(line),
                _ => per_log.push(vec![line]),
            }
            Ok(())
        },
        progress,
    )?;
    let share = MAX_BYTES / per_log.len().max(1);
    let mut truncated = false;
    let mut lines = Vec::new();
    for log in per_log {
        let first = newest_within(&log, share);
        truncated |= first > 0;
        lines.extend(log.into_iter().skip(first));
    }
    Ok(LogLines {
        instance,
        lines,
        truncated,
    })
}

/// Where the newest lines of `log` that fit in `budget` bytes begin.
fn newest_within(log: &[LogLine], budget: usize) -> usize {
    let mut used = 0;
    let mut first = log.len();
    while first > 0 && used + log[first - 1].line.len() <= budget {
        first -= 1;
        used += log[first].line.len();
    }
    first
}

/// `service | line`, as `berth logs` prints them.
pub fn text(logs: &LogLines) -> String {
    let width = logs
        .lines
        .iter()
        .map(|line| line.service.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for line in &logs.lines {
        out.push_str(&format!("{:<width$} | {}\n", line.service, line.line));
    }
    if logs.truncated {
        out.push_str("(older lines left out: the result holds at most 256 KiB of text)\n");
    }
    if logs.lines.is_empty() {
        out.push_str(&format!("no log lines of `{}`\n", logs.instance));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(lengths: &[usize]) -> Vec<LogLine> {
        lengths
            .iter()
            .map(|length| LogLine::new("demo", "web", "x".repeat(*length).as_bytes(), None))
            .collect()
    }

    #[test]
    fn the_newest_lines_that_fit_are_kept() {
        assert_eq!(newest_within(&lines(&[5, 5, 5]), 100), 0);
        assert_eq!(newest_within(&lines(&[5, 5, 5]), 10), 1);
        assert_eq!(newest_within(&lines(&[5, 5, 50]), 10), 3);
        assert_eq!(newest_within(&[], 10), 0);
    }
}
