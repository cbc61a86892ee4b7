//! How a log line is printed: `service | line` (`instance/service | line` with `--all`), or with `--json` one JSON object per
//! line (`time` is when following saw it; lines read back from the files carry none).

use std::io::Write;
use std::time::SystemTime;

use schemars::JsonSchema;
use serde::Serialize;

pub struct LineFormat {
    pub json: bool,
    /// `instance/service | line` (`logs --all`) rather than `service | line`.
    pub with_instance: bool,
    /// The width the prefix is padded to.
    pub width: usize,
}

impl LineFormat {
    pub fn write(
        &self,
        out: &mut impl Write,
        instance: &str,
        service: &str,
        line: &[u8],
        seen: Option<SystemTime>,
    ) -> std::io::Result<()> {
        if !self.json {
            let text = String::from_utf8_lossy(line);
            let width = self.width;
            return match self.with_instance {
                true => {
                    let prefix = format!("{instance}/{service}");
                    writeln!(out, "{prefix:<width$} | {text}")
                }
                false => writeln!(out, "{service:<width$} | {text}"),
            };
        }
        let object = LogLine::new(instance, service, line, seen);
        writeln!(out, "{}", serde_json::to_string(&object)?)
    }
}

/// One log line as `berth logs --json` prints it (and the MCP `logs` tool returns it).
#[derive(Debug, Serialize, JsonSchema)]
pub struct LogLine {
    /// When following saw the line; `null` for lines read back from the files, which keep
    /// no times.
    pub time: Option<String>,
    pub instance: String,
    pub service: String,
    pub stream: LineStream,
    /// The line, without its newline (invalid UTF-8 replaced).
    pub line: String,
}

/// Who wrote a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LineStream {
    /// berth's own lines: run separators, start errors.
    Berth,
    /// The service's stdout and stderr, together.
    Output,
}

impl LogLine {
    pub fn new(instance: &str, service: &str, line: &[u8], seen: Option<SystemTime>) -> Self {
        let text = String::from_utf8_lossy(line).into_owned();
        // berth's own lines (run separators, spawn errors) are told apart from the
        // service's output, which is stdout and stderr together.
        let stream = if text.starts_with("----- berth:") || text.starts_with("berth: ") {
            LineStream::Berth
        } else {
            LineStream::Output
        };
        LogLine {
            time: seen.map(|time| humantime::format_rfc3339_millis(time).to_string()),
            instance: instance.to_string(),
            service: service.to_string(),
            stream,
            line: text,
        }
    }
}
