//! Rendering: tables for people, JSON for programs, both from the same structs.

mod table;
mod views;

pub use table::Table;
pub use views::{GitView, LsRow, ServiceView, StatusView};

use serde::Serialize;

use crate::error::Result;

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    println!("{text}");
    Ok(())
}

/// Prints `value` as JSON when asked, else the text `render` draws from it.
pub fn emit<T: Serialize>(json: bool, value: &T, render: impl FnOnce(&T) -> String) -> Result<()> {
    if json {
        print_json(value)
    } else {
        print!("{}", render(value));
        Ok(())
    }
}

/// Prints a note for people on stderr (never mixed with data on stdout).
pub fn note(message: &str) {
    eprintln!("{message}");
}
