//! The Compose backend: tool detection, config resolution, the per-instance file, and
//! running the tool for an instance.

mod cache;
mod error;
mod foreign;
mod instance;
pub mod ports;
mod resolve;
mod rewrite;
mod run;
mod tool;

pub use cache::path as cache_path;
pub use error::ComposeError;
pub use foreign::foreign_projects;
pub use instance::{InstanceCompose, Resolved, engine, load_project};
pub use resolve::{ComposeProject, ComposeService, as_map, resolve};
pub use rewrite::{
    LABEL_IMAGE_VOLUME, LABEL_INSTANCE, LABEL_ROOT, LABEL_SHARED, RewriteInputs, Rewritten,
    rewrite, to_yaml,
};
pub use run::Runner;
pub use tool::ComposeTool;

/// The last `lines` lines of a command's output, for error messages.
pub fn tail(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
