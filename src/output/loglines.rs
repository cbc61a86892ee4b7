//! How a log line is printed: `service | line`, or with `--json` one JSON object per
//! line (`time` is when following saw it; lines read back from the files carry none).

use std::io::Write;
use std::time::SystemTime;

pub struct LineFormat<'a> {
    pub json: bool,
    pub instance: &'a str,
    /// The width the service name is padded to.
    pub width: usize,
}

impl LineFormat<'_> {
    pub fn write(
        &self,
        out: &mut impl Write,
        service: &str,
        line: &[u8],
        seen: Option<SystemTime>,
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
