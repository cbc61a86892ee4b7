//! Why the supervisor could not start.

use crate::state::StateError;

/// Why the supervisor could not start (once started, a failing service is its state, not
/// an error of the supervisor).
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error(transparent)]
    State(#[from] StateError),
    /// `action` says what it was doing: `find its state directory`, `listen on its
    /// control socket`, ….
    #[error("the supervisor cannot {action}")]
    Start {
        action: &'static str,
        source: std::io::Error,
    },
}

impl SupervisorError {
    pub fn hint(&self) -> Option<String> {
        match self {
            SupervisorError::State(error) => error.hint(),
            SupervisorError::Start { .. } => None,
        }
    }
}
