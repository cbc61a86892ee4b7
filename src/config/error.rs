//! Configuration errors: each names the file, line, column and the offending text.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no `berth.toml` in `{}` or any parent directory", dir.display())]
    NotFound { dir: PathBuf },
    #[error("cannot read `{}`", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}\n  | {snippet}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        snippet: String,
    },
}

impl ConfigError {
    pub fn hint(&self) -> Option<String> {
        match self {
            ConfigError::NotFound { .. } => Some(
                "run berth inside a project (a directory with berth.toml), or pass -C DIR"
                    .to_string(),
            ),
            ConfigError::Read { .. } => None,
            ConfigError::Invalid { .. } => Some(
                "fix berth.toml; the README's configuration reference lists every key".to_string(),
            ),
        }
    }
}
