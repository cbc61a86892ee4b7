//! Rendering: tables for people, JSON for programs, both from the structs operations
//! return; the printer every command writes through.

pub mod env;
mod loglines;
mod printer;
pub mod router;
pub mod snapshots;
mod table;
pub mod views;

pub use loglines::{LineFormat, LineStream, LogLine};
pub use printer::Printer;
pub use table::Table;
