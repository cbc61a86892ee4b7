//! The server: berth's tools over the process's stdio, on a Tokio runtime of its own,
//! until the client closes the connection.

use std::sync::Arc;
use std::time::Duration;

use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::{ServerHandler, ServiceExt, tool_handler};

use super::stdio;
use crate::context::Context;
use crate::error::{Error, Result};

/// The longest message the server reads: tool calls are small.
const MAX_MESSAGE: usize = 1024 * 1024;
/// How long calls still running when the client leaves get to finish (a cancelled
/// wait ends within milliseconds; a `down` takes its stop grace).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// The MCP server: the tools of [`super::tools`], each call on a context built from the
/// server's own (its ledger, lock timeout) and the call's `path`, `name` and `instance`.
#[derive(Clone)]
pub struct Berth {
    pub(super) base: Arc<Context>,
}

#[tool_handler(
    name = "berth",
    instructions = "berth runs isolated instances of a project's development stack side by side, each with its own ports, state and logs. Give every call `path`: the project directory (your work tree). `up` starts your instance and returns its services with ports and URLs; `status`, `port`, `url`, `env` and `logs` read it back; `down` stops it. A failure is a tool error whose text says what went wrong and, on a `hint:` line, what to do."
)]
impl ServerHandler for Berth {}

/// Serves MCP on stdin and stdout until the client closes them.
pub fn serve(base: Context) -> Result<()> {
    let (input, output) = stdio::take()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let server = Berth {
        base: Arc::new(base),
    };
    let served = runtime.block_on(async move {
        let transport =
            AsyncRwTransport::new_server(input, output).with_max_line_length(MAX_MESSAGE);
        let running = server.serve(transport).await.map_err(|error| {
            Error::failed(format!("cannot start the MCP session: {error}"), None)
        })?;
        running
            .waiting()
            .await
            .map_err(|error| Error::failed(format!("the MCP session failed: {error}"), None))
    });
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    served.map(|_| ())
}
