//! berth.toml: the model, loading and validation (every error located), and templates.

mod error;
mod load;
mod model;
mod raw;
mod size;
pub mod template;

pub use error::ConfigError;
pub use load::{COMPOSE_FILE_NAMES, CONFIG_FILE_NAME, ComposeResolver, find_project_root, load};
pub use model::{
    ComposeCatalog, ComposeConfig, ComposeServiceConfig, ComposeSettings, Config,
    DEFAULT_PORT_NAME, DatabaseConfig, DatabaseKind, EnvFileConfig, PerInstanceConfig, PortBase,
    ReadyConfig, ServiceConfig,
};
pub use size::format_size;
