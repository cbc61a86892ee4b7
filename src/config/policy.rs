//! The per-service policies `berth.toml` sets and `instance.json` records: which HTTP
//! answers mean ready, how much of a service's output is kept, and when a process is
//! restarted.

use serde::{Deserialize, Serialize};

/// How much of one service's output is kept: the log rotates before it would exceed
/// `max_size` bytes, and `max_files` files are kept (`<service>.log` and
/// `<service>.log.1` … `.log.{max_files - 1}`, the oldest dropped).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogLimits {
    pub max_size: u64,
    pub max_files: u32,
}

impl LogLimits {
    pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;
    pub const DEFAULT_MAX_FILES: u32 = 5;
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            max_size: Self::DEFAULT_MAX_SIZE,
            max_files: Self::DEFAULT_MAX_FILES,
        }
    }
}

/// Which answers of an `http` readiness check mean ready (`ready.status`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum HttpStatus {
    /// A 2xx or 3xx answer (the default): the page itself works.
    #[default]
    Success,
    /// Any HTTP answer, 100 to 599: the server is up, whatever it says about the path,
    /// so an app that answers 404 on `/` is ready.
    Any,
    /// Exactly these codes.
    Codes(Vec<u16>),
}

impl HttpStatus {
    /// Whether an answer with status `code` means the service is ready.
    pub fn accepts(&self, code: u16) -> bool {
        match self {
            HttpStatus::Success => (200..400).contains(&code),
            HttpStatus::Any => (100..600).contains(&code),
            HttpStatus::Codes(codes) => codes.contains(&code),
        }
    }

    pub fn is_success(&self) -> bool {
        *self == HttpStatus::Success
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    OnFailure,
    Always,
    Never,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_status_rules_accept_what_they_say() {
        // (rule, code, accepted)
        let cases = [
            (HttpStatus::Success, 200, true),
            (HttpStatus::Success, 204, true),
            (HttpStatus::Success, 302, true),
            (HttpStatus::Success, 399, true),
            (HttpStatus::Success, 199, false),
            (HttpStatus::Success, 404, false),
            (HttpStatus::Success, 500, false),
            (HttpStatus::Any, 100, true),
            (HttpStatus::Any, 200, true),
            (HttpStatus::Any, 404, true),
            (HttpStatus::Any, 503, true),
            (HttpStatus::Any, 599, true),
            (HttpStatus::Any, 99, false),
            (HttpStatus::Any, 600, false),
            (HttpStatus::Any, 0, false),
            (HttpStatus::Codes(vec![200, 401]), 401, true),
            (HttpStatus::Codes(vec![200, 401]), 200, true),
            (HttpStatus::Codes(vec![200, 401]), 204, false),
            (HttpStatus::Codes(vec![200, 401]), 404, false),
        ];
        for (rule, code, accepted) in cases {
            assert_eq!(rule.accepts(code), accepted, "{rule:?} and {code}");
        }
    }
}
