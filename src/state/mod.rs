//! Files berth owns: atomic versioned writes, advisory locks, and the per-instance state.

mod atomic;
mod error;
mod instance;
mod lock;
pub mod seal;

pub use atomic::{create_private_dir, read_versioned, write_atomic, write_json_atomic};
pub use error::StateError;
pub use instance::{
    ComposeBackend, ComposeReady, ComposeSpec, DatabaseSpec, HttpStatus, INSTANCE_FORMAT_VERSION,
    InstanceFile, InstancePaths, InstanceState, LogLimits, ProcessSpec, ReadyCheck, RestartPolicy,
    ServiceRecord, ServiceSpec, ServiceState, SharedUse, check_state_root,
};
pub use lock::FileLock;
