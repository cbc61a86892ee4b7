//! What an operation reports while it runs: notes, warnings and long waits. Operations
//! never print; a command hands them its [`crate::output::Printer`], a long-running caller (an
//! MCP server, say) its own sink.

/// Where an operation's progress goes.
pub trait Progress {
    /// Something worth knowing that changes nothing the user asked for (`note: …`).
    fn note(&self, message: &str);
    /// Something that went wrong without failing the operation (`warning: …`).
    fn warning(&self, message: &str);
    /// A wait that may take long begins (`up` waiting for readiness, say); it ends at the
    /// next [`Progress::done_waiting`].
    fn waiting(&self, what: &str);
    fn done_waiting(&self);
    /// Whether the caller has given up on the operation (an MCP client cancelled the
    /// call): a wait for readiness then stops early, with an error. A command is never
    /// cancelled this way (Ctrl-C ends the process).
    fn cancelled(&self) -> bool {
        false
    }
}

/// Progress nobody reads.
pub struct Silent;

impl Progress for Silent {
    fn note(&self, _: &str) {}
    fn warning(&self, _: &str) {}
    fn waiting(&self, _: &str) {}
    fn done_waiting(&self) {}
}
