//! berth.toml: the model, loading and validation (every error located), and templates.

mod error;
mod load;
mod model;
mod policy;
mod raw;
mod size;
mod target;
pub mod template;

pub use error::{ConfigError, Site};
pub use load::{COMPOSE_FILE_NAMES, CONFIG_FILE_NAME, ComposeResolver, find_project_root, load};
pub use model::{
    ComposeCatalog, ComposeConfig, ComposeServiceConfig, ComposeSettings, Config,
    DEFAULT_PORT_NAME, DEFAULT_WORKTREE_DIR, DatabaseConfig, DatabaseKind, EnvFileConfig,
    PerInstanceConfig, PortBase, PortStrategy, ReadyConfig, ServiceConfig, WorktreeConfig,
};
pub use policy::{HttpStatus, LogLimits, RestartPolicy};
pub use size::format_size;
pub use target::{
    GENERATED_HEADER, Protected, TargetProblem, check_target, protected_files, target_path,
    written_by_berth,
};
