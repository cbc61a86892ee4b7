//! Durable files: crash-safe atomic writes, versioned JSON reads, advisory locks with a
//! deadline, and the error they all report ([`StateError`]).

mod atomic;
mod error;
mod lock;

pub use atomic::{
    Published, create_private_dir, publish_atomic, publish_json_atomic, read_versioned,
    write_atomic, write_json_atomic,
};
pub use error::StateError;
pub use lock::FileLock;
