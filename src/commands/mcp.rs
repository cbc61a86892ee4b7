//! `berth mcp`: serve the operations as MCP tools on stdio, until the client leaves.

use crate::context::Context;
use crate::error::Result;

pub fn run(context: Context) -> Result<()> {
    crate::mcp::serve(context)
}
