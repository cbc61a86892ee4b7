//! Configuration errors: each names the file, line, column and the offending text.

use std::path::PathBuf;

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
    #[error("{}:{line}:{column}: {message}\n  | {snippet}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        snippet: String,
        /// What to do, when more precise than "fix berth.toml".
        hint: Option<String>,
    },
}

/// Where a value stands in berth.toml, kept for errors found after loading (an env
/// file's target is checked again once rendered for an instance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub snippet: String,
}

impl Site {
    pub fn error(&self, message: impl Into<String>, hint: Option<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.clone(),
            line: self.line,
            column: self.column,
            message: message.into(),
            snippet: self.snippet.clone(),
            hint,
        }
    }
}

impl ConfigError {
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
