//! The per-instance state: `instance.json`, its paths and its seal.

mod instance;
pub mod seal;

// The durable-file helpers live in the leaf module `durable`, so that `git` and `ledger`
// use them without depending on the instance state; re-exported so `crate::state::X`
// paths keep working.
pub use crate::durable::{
    FileLock, StateError, create_private_dir, read_versioned, write_atomic, write_json_atomic,
};
pub use instance::{
    ComposeBackend, ComposeReady, ComposeSpec, DatabaseSpec, HttpStatus, INSTANCE_FORMAT_VERSION,
    InstanceFile, InstancePaths, InstanceState, LogLimits, ProcessSpec, ReadyCheck, RestartPolicy,
    ServiceRecord, ServiceSpec, ServiceState, SharedUse, check_state_root,
};
