//! Snapshots of an instance's data: the process services' files under its data
//! directory and its own Compose named volumes, kept per project under the ledger's
//! directory so they outlive the instance.
//!
//! - [`store`]: where snapshots live, their manifest, atomic save and removal;
//! - [`archive`]: the data directory packed into and unpacked from a tar file;
//! - [`volumes`]: named volumes streamed through `docker cp` of a created (never
//!   started) container of the service's own image, so no image is ever pulled;
//! - [`error`]: what can go wrong, as [`SnapshotError`].
//!
//! Stopping the instance around a copy and starting it again is the commands' job
//! (`commands::snapshot`), since only they know how to bring an instance up.

pub mod archive;
pub mod error;
pub mod store;
pub mod volumes;

pub use error::SnapshotError;
pub use store::{DataItem, Manifest, SNAPSHOT_FORMAT_VERSION, Staging, Store, VolumeItem};
