//! `berth mcp`: the operations as tools for coding agents, an MCP server on stdio built
//! on `rmcp`, the official Rust SDK. Beside the commands in the layers: it calls the
//! operations of [`crate::instance`] as they do, and renders with [`crate::output`].

mod call;
mod logs;
mod params;
mod progress;
mod server;
mod stdio;
mod tools;

pub use server::serve;
