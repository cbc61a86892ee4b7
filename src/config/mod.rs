//! berth.toml: the model, loading and validation (every error located), and templates.

mod error;
mod load;
mod model;
mod raw;
pub mod template;

pub use error::ConfigError;
pub use load::{CONFIG_FILE_NAME, find_project_root, load};
pub use model::{Config, DEFAULT_PORT_NAME, PortBase, ReadyConfig, ServiceConfig};
