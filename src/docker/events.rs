//! The engine's event stream: container events as they happen, so that a watcher can
//! wait for a change instead of asking the engine again and again.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::errors::Error as BollardError;
use bollard::models::{EventMessage, EventMessageTypeEnum};
use bollard::query_parameters::EventsOptionsBuilder;
use futures_util::{Stream, StreamExt};

use super::engine::label_filters;
use super::{Engine, EngineError};

/// One thing that happened to a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    /// The container's id.
    pub id: String,
    /// `create`, `start`, `die`, `health_status: healthy`, `destroy`, …
    pub action: String,
    /// The container's labels and the event's details (`name`, `image`, `exitCode`, …).
    pub attributes: BTreeMap<String, String>,
    /// When it happened, in nanoseconds since the Unix epoch.
    pub time_nano: i64,
}

impl ContainerEvent {
    /// The event of a container, or `None` for events of other objects.
    fn from_message(message: EventMessage) -> Option<ContainerEvent> {
        if message.typ != Some(EventMessageTypeEnum::CONTAINER) {
            return None;
        }
        let actor = message.actor.unwrap_or_default();
        Some(ContainerEvent {
            id: actor.id.unwrap_or_default(),
            action: message.action.unwrap_or_default(),
            attributes: actor.attributes.unwrap_or_default().into_iter().collect(),
            time_nano: message
                .time_nano
                .or(message.time.map(|seconds| seconds * 1_000_000_000))
                .unwrap_or(0),
        })
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<EventMessage, BollardError>> + Send>>;

/// Container events in the order the engine sends them. Iterating blocks until the next
/// event; [`ContainerEvents::next_within`] waits at most a given time.
pub struct ContainerEvents {
    /// An engine of its own, so that a thread waiting here never holds up the runtime
    /// other threads' requests run on.
    engine: Engine,
    stream: EventStream,
}

impl Engine {
    /// Events of the containers carrying every label in `labels`, from `since` on (only
    /// new ones when `None`). The request is sent when the first event is asked for.
    pub fn events(
        &self,
        labels: &[(&str, &str)],
        since: Option<SystemTime>,
    ) -> Result<ContainerEvents, EngineError> {
        let engine = Engine::new(self.endpoint().clone())?;
        let mut filters = label_filters(labels);
        filters.insert("type".to_string(), vec!["container".to_string()]);
        let mut options = EventsOptionsBuilder::new().filters(&filters);
        let since = since.map(|time| {
            let elapsed = time.duration_since(UNIX_EPOCH).unwrap_or_default();
            format!("{}.{:09}", elapsed.as_secs(), elapsed.subsec_nanos())
        });
        if let Some(since) = &since {
            options = options.since(since);
        }
        let stream: EventStream = Box::pin(engine.client()?.events(Some(options.build())));
        Ok(ContainerEvents { engine, stream })
    }
}

impl ContainerEvents {
    /// The next event, waiting at most `timeout`: `Ok(None)` when none came in time.
    pub fn next_within(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<ContainerEvent>, EngineError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let Self { engine, stream } = self;
        engine.block_on(async {
            loop {
                match tokio::time::timeout_at(deadline, stream.next()).await {
                    Err(_elapsed) => return Ok(None),
                    Ok(None) => return Err(ended()),
                    Ok(Some(Err(error))) => return Err(engine.error(PATH.to_string(), error)),
                    Ok(Some(Ok(message))) => {
                        if let Some(event) = ContainerEvent::from_message(message) {
                            return Ok(Some(event));
                        }
                    }
                }
            }
        })
    }
}

impl Iterator for ContainerEvents {
    type Item = Result<ContainerEvent, EngineError>;

    /// The next event, however long it takes; `None` once the engine ends the stream.
    fn next(&mut self) -> Option<Self::Item> {
        let Self { engine, stream } = self;
        engine.block_on(async {
            loop {
                match stream.next().await? {
                    Err(error) => return Some(Err(engine.error(PATH.to_string(), error))),
                    Ok(message) => {
                        if let Some(event) = ContainerEvent::from_message(message) {
                            return Some(Ok(event));
                        }
                    }
                }
            }
        })
    }
}

/// The request, for errors.
const PATH: &str = "GET /events";

fn ended() -> EngineError {
    EngineError::Protocol {
        path: PATH.to_string(),
        detail: "the engine ended the event stream".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_container_events() {
        let message: EventMessage = serde_json::from_str(
            r#"{"Type":"container","Action":"die","Actor":{"ID":"abc",
                "Attributes":{"exitCode":"3","name":"web","dev.berth.instance":"shop"}},
                "scope":"local","time":1700000000,"timeNano":1700000000123456789}"#,
        )
        .unwrap();
        let event = ContainerEvent::from_message(message).unwrap();
        assert_eq!(event.id, "abc");
        assert_eq!(event.action, "die");
        assert_eq!(event.attributes["exitCode"], "3");
        assert_eq!(event.time_nano, 1_700_000_000_123_456_789);
        let message: EventMessage = serde_json::from_str(
            r#"{"Type":"network","Action":"create","Actor":{"ID":"n"},"time":1}"#,
        )
        .unwrap();
        assert_eq!(ContainerEvent::from_message(message), None);
    }
}
