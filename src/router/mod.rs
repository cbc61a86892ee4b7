//! The router: one per `BERTH_HOME`, a background process that answers on the loopback
//! addresses for `SERVICE.INSTANCE.localhost` and `INSTANCE.localhost` and passes each
//! request to that service's port (HTTP/1.1, HTTP/2, WebSockets, optional HTTPS from a
//! local CA). It follows the ledger, so instances that come and go are routed without a
//! restart.

pub mod daemon;
mod error;
pub mod follow;
pub mod hosts;
mod log;
pub mod pages;
mod proxy;
pub mod routes;
pub mod serve;
pub mod state;
pub mod tls;

pub use error::RouterError;
pub use routes::{DEFAULT_PORT, Route, RouterAddress};
pub use state::{RouterFile, RouterPaths};
