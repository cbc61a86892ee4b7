//! The Docker engine: which one to talk to (the same one the docker CLI and the Compose
//! tool use), and a small synchronous client for the questions berth asks it.

mod endpoint;
mod engine;
mod error;
mod events;
mod model;

pub use endpoint::{DEFAULT_HOST, DockerEnv, Endpoint, Origin, Selector, Tls, resolve};
pub use engine::Engine;
pub use error::EngineError;
pub use events::{ContainerEvent, ContainerEvents};
pub use model::{Container, ContainerDetails, Health, Network, PublishedPort, Volume};
