//! Configuration errors: each names the file, line, column and the offending text.

use std::ops::Range;
use std::path::PathBuf;

use annotate_snippets::{AnnotationKind, Level, Renderer, Snippet};

use crate::input::InputError;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no `berth.toml` in `{}` or any parent directory", dir.display())]
    NotFound { dir: PathBuf },
    #[error("cannot read `{}`", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Input(#[from] InputError),
    /// A mistake at a place in berth.toml. Its message is one line, `PATH:LINE:COLUMN:
    /// message` as compilers write it (for a table cell, a log); people get
    /// [`ConfigError::report`], which shows the offending text in its line.
    #[error("{}:{}:{}: {message}", site.path.display(), site.line, site.column)]
    Invalid {
        /// Boxed: the line it holds would make every `Result` carrying this error large.
        site: Box<Site>,
        message: String,
        /// What to do, when more precise than "fix berth.toml".
        hint: Option<String>,
    },
}

/// Where a value stands in berth.toml, kept for errors found after loading (an env
/// file's target is checked again once rendered for an instance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub path: PathBuf,
    /// Where the offending text starts: 1-based line, and column in characters.
    pub line: usize,
    pub column: usize,
    /// The line the offending text starts on, without its line break.
    pub source_line: String,
    /// The offending text: a byte range of `source_line` on character boundaries, empty
    /// to point between two characters (or past the line's end).
    pub span: Range<usize>,
}

impl Site {
    pub fn error(&self, message: impl Into<String>, hint: Option<String>) -> ConfigError {
        ConfigError::Invalid {
            site: Box::new(self.clone()),
            message: message.into(),
            hint,
        }
    }
}

impl ConfigError {
    /// A located error as people read it, drawn by annotate-snippets: `error:` and the
    /// message, the file with its line and column, the offending line under a gutter of
    /// line numbers and a caret under the offending text; in colour when `colour`, plain
    /// text otherwise. `None` for an error without a place, which reads as its message.
    pub fn report(&self, colour: bool) -> Option<String> {
        let ConfigError::Invalid { site, message, .. } = self else {
            return None;
        };
        let path = site.path.display().to_string();
        let report = [Level::ERROR.primary_title(message.as_str()).element(
            Snippet::source(site.source_line.as_str())
                .line_start(site.line)
                .path(path.as_str())
                .annotation(AnnotationKind::Primary.span(site.span.clone())),
        )];
        let renderer = if colour {
            Renderer::styled()
        } else {
            Renderer::plain()
        };
        Some(renderer.render(&report))
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            ConfigError::NotFound { .. } => Some(
                "run berth inside a project (a directory with berth.toml), or pass -C DIR"
                    .to_string(),
            ),
            ConfigError::Read { .. } => None,
            ConfigError::Input(error) => error.hint(),
            ConfigError::Invalid {
                hint: Some(hint), ..
            } => Some(hint.clone()),
            ConfigError::Invalid { hint: None, .. } => Some(
                "fix berth.toml; the README's configuration reference lists every key".to_string(),
            ),
        }
    }
}
