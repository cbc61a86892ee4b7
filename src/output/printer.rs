//! The one place a command's output goes: data on stdout (a table or `--json`), notes,
//! warnings and results for people on stderr, a spinner on a terminal during long waits.

use std::cell::RefCell;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::env_vars;
use crate::instance::Progress;

/// How output is printed, from the global flags and the environment.
pub struct Printer {
    json: bool,
    quiet: bool,
    /// stderr is a terminal: long waits show a spinner.
    terminal: bool,
    colour: bool,
    spinner: RefCell<Option<ProgressBar>>,
}

impl Printer {
    pub fn new(json: bool, quiet: bool) -> Self {
        let terminal = std::io::stderr().is_terminal();
        Printer {
            json,
            quiet,
            terminal,
            colour: terminal && std::env::var_os(env_vars::NO_COLOR).is_none_or(|v| v.is_empty()),
            spinner: RefCell::new(None),
        }
    }

    pub fn json(&self) -> bool {
        self.json
    }

    /// Whether stderr is a terminal that takes colour (`NO_COLOR` unset or empty).
    pub fn colour(&self) -> bool {
        self.colour
    }

    /// Prints `value` as JSON when asked, else the text `render` draws from it.
    pub fn data<T: Serialize>(
        &self,
        value: &T,
        render: impl FnOnce(&T) -> String,
    ) -> std::io::Result<()> {
        if self.json {
            self.json_value(value)
        } else {
            self.text(&render(value))
        }
    }

    /// Prints `value` as pretty JSON on stdout.
    pub fn json_value<T: Serialize>(&self, value: &T) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
        self.text(&format!("{text}\n"))
    }

    /// Prints text as it is on stdout.
    pub fn text(&self, text: &str) -> std::io::Result<()> {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(text.as_bytes())?;
        stdout.flush()
    }

    /// A line for people on stderr that says what a command did (`stopped `web``):
    /// `--quiet` leaves it out.
    pub fn result(&self, message: &str) {
        if !self.quiet {
            self.stderr(message);
        }
    }

    /// An error, rendered as [`crate::Error::render`] does, `error:` in red on a
    /// terminal that takes colour.
    pub fn error(&self, rendered: &str) {
        self.done_waiting();
        let text = match rendered.strip_prefix("error:") {
            Some(rest) if self.colour => format!("\x1b[1;31merror:\x1b[0m{rest}"),
            _ => rendered.to_string(),
        };
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }

    fn stderr(&self, line: &str) {
        match self.spinner.borrow().as_ref() {
            Some(spinner) => spinner.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    fn labelled(&self, label: &str, colour: &str, message: &str) {
        if self.colour {
            self.stderr(&format!("\x1b[{colour}m{label}:\x1b[0m {message}"));
        } else {
            self.stderr(&format!("{label}: {message}"));
        }
    }
}

impl Progress for Printer {
    fn note(&self, message: &str) {
        if !self.quiet {
            self.labelled("note", "1", message);
        }
    }

    fn warning(&self, message: &str) {
        self.labelled("warning", "1;33", message);
    }

    fn waiting(&self, what: &str) {
        if !self.terminal || self.quiet {
            return;
        }
        let spinner = ProgressBar::new_spinner().with_message(what.to_string());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
            spinner.set_style(style);
        }
        spinner.enable_steady_tick(Duration::from_millis(100));
        if let Some(old) = self.spinner.replace(Some(spinner)) {
            old.finish_and_clear();
        }
    }

    fn done_waiting(&self) {
        if let Some(spinner) = self.spinner.take() {
            spinner.finish_and_clear();
        }
    }
}

impl Drop for Printer {
    fn drop(&mut self) {
        self.done_waiting();
    }
}
