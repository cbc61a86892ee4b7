//! The separator berth writes into a service's log when a run (or its setup) starts, so
//! that readers can find where the current run begins.

use std::time::SystemTime;

const PREFIX: &str = "----- berth: ";
const SUFFIX: &str = " -----";
/// Longer than any separator berth writes; a longer line is never taken for one.
pub const MAX_HEADER: usize = 128;

/// `----- berth: run 3 started 2026-12-01T22:40:01.123Z -----`: the service's process
/// starts for the `run`th time since the supervisor started.
pub fn run_started(run: u32, at: SystemTime) -> String {
    format!(
        "{PREFIX}run {run} started {}{SUFFIX}",
        humantime::format_rfc3339_millis(at)
    )
}

/// `----- berth: setup started 2026-12-01T22:40:01.123Z -----`: the service's setup
/// command starts (its output belongs to no run).
pub fn setup_started(at: SystemTime) -> String {
    format!(
        "{PREFIX}setup started {}{SUFFIX}",
        humantime::format_rfc3339_millis(at)
    )
}

/// Whether `line` (without its newline) is a separator berth wrote.
pub fn is_header(line: &[u8]) -> bool {
    line.len() <= MAX_HEADER
        && line.starts_with(PREFIX.as_bytes())
        && line.ends_with(SUFFIX.as_bytes())
        && std::str::from_utf8(line).is_ok_and(|line| line.contains(" started "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn separators_are_recognised_and_nothing_else() {
        let at = UNIX_EPOCH + Duration::from_millis(1_796_164_801_123);
        let run = run_started(3, at);
        assert_eq!(
            run,
            "----- berth: run 3 started 2026-12-01T22:40:01.123Z -----"
        );
        assert!(is_header(run.as_bytes()));
        assert!(is_header(setup_started(at).as_bytes()));
        assert!(!is_header(b"----- berth: something else -----"));
        assert!(!is_header(b"run 3 started"));
        assert!(!is_header(
            format!("{run}{}", " ".repeat(MAX_HEADER)).as_bytes()
        ));
    }
}
