//! One tool call: its operation runs on a blocking thread (operations block: they wait
//! on locks, processes and files), its progress goes to the client, and what it returns
//! becomes the tool's result: the struct `--json` prints as structured content with the
//! text a person reads, or, for any failure, a tool error (`isError`) carrying berth's
//! rendered message and hint. Nothing a call does ends the server.

use rmcp::RoleServer;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::service::RequestContext;
use serde::Serialize;

use super::progress::CallProgress;
use crate::error::Result;
use crate::instance::Progress;

/// Runs `operation` for the call `context` and answers with its result, drawn as text by
/// `text`.
pub async fn run<T, F>(
    context: RequestContext<RoleServer>,
    operation: F,
    text: fn(&T) -> String,
) -> CallToolResult
where
    T: Serialize + Send + 'static,
    F: FnOnce(&dyn Progress) -> Result<T> + Send + 'static,
{
    let (progress, forwarding) = CallProgress::start(&context);
    let finished = tokio::task::spawn_blocking(move || {
        let result = operation(&progress);
        (result, progress.into_lines())
    })
    .await;
    // Every progress notification goes out before the result does.
    if let Some(forwarding) = forwarding {
        let _ = forwarding.await;
    }
    match finished {
        Ok((Ok(value), lines)) => success(&value, &text(&value), &lines),
        Ok((Err(error), lines)) => failure(&error.render(false), &lines),
        // A panic in the operation: this call fails, the server goes on.
        Err(error) => failure(
            &format!("error: the operation stopped unexpectedly: {error}\n"),
            &[],
        ),
    }
}

/// `value` as structured content, and `text` (after the notes) as the text.
fn success<T: Serialize>(value: &T, text: &str, lines: &[String]) -> CallToolResult {
    match serde_json::to_value(value) {
        Ok(structured) => {
            let mut result = CallToolResult::success(vec![ContentBlock::text(joined(lines, text))]);
            result.structured_content = Some(structured);
            result
        }
        Err(error) => failure(
            &format!("error: cannot encode the result: {error}\n"),
            lines,
        ),
    }
}

fn failure(rendered: &str, lines: &[String]) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(joined(lines, rendered))])
}

/// The notes and warnings, one a line, then `text`, as a terminal would show them.
fn joined(lines: &[String], text: &str) -> String {
    let mut out = String::new();
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(text);
    out
}
