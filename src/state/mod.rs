//! The per-instance state: `instance.json`, its paths and its seal.

mod instance;
pub mod seal;

// The durable-file helpers live in the leaf module `durable`, so that `git` and `ledger`
// use them without depending on the instance state; re-exported so `crate::state::X`
// paths keep working.
pub use crate::durable::{
    FileLock, Published, StateError, create_private_dir, read_versioned, write_atomic,
    write_json_atomic,
};
// The policies a service's configuration carries into its state are config's types;
// re-exported so `crate::state::X` paths keep working.
pub use crate::config::{HttpStatus, LogLimits, RestartPolicy};
pub use instance::{
    ComposeBackend, ComposeReady, ComposeSpec, DatabaseSpec, INSTANCE_FORMAT_VERSION, InstanceFile,
    InstancePaths, InstanceState, ProcessSpec, ReadyCheck, ServiceRecord, ServiceSpec,
    ServiceState, SharedUse, check_state_root,
};
