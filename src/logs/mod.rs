//! Service logs: written with a size cap and rotation by the supervisor's sink, and read
//! back across the rotated files by `logs`, `up` and the readiness `log` check.

mod cursor;
mod files;
mod header;
mod lines;
mod rotate;
mod sink;
mod tail;

pub use cursor::LogCursor;
pub use files::rotated_path;
pub use header::{is_header, run_started, setup_started};
pub use lines::{LineSplitter, MAX_LINE, each_line};
pub use rotate::RotatingLog;
pub use sink::{LogHandle, LogSink};
pub use tail::{READ_BUDGET, Scope, Tail, TailEnd, tail_lines};
