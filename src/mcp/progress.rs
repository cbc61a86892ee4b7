//! The progress sink of one tool call. Notes, warnings and long waits (`up` waiting for
//! readiness) become MCP progress notifications when the client sent a progress token,
//! with a beat every second while a wait lasts; notes and warnings also go into the
//! call's text. A call the client cancelled makes the operation's waits stop.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::service::RequestContext;
use rmcp::{Peer, RoleServer};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::instance::Progress;

/// How often a client hears that a wait goes on.
const BEAT: Duration = Duration::from_secs(1);

/// What the operation's thread hands to the forwarding task.
enum Event {
    Line(String),
    Waiting(String),
    DoneWaiting,
}

/// The [`Progress`] of one call; the operation runs on a blocking thread, so everything
/// for the client goes through a channel to a task that sends it.
pub struct CallProgress {
    /// None when the client asked for no progress.
    events: Option<UnboundedSender<Event>>,
    cancelled: CancellationToken,
    /// Notes and warnings, for the call's text.
    lines: Mutex<Vec<String>>,
}

impl CallProgress {
    /// The sink of the call `context`, and the task that forwards its progress to the
    /// client; that task ends once the sink is dropped and all it said is sent.
    pub fn start(context: &RequestContext<RoleServer>) -> (Self, Option<JoinHandle<()>>) {
        let (events, forwarding) = match context.meta.get_progress_token() {
            Some(token) => {
                let (sender, receiver) = unbounded_channel();
                let task = tokio::spawn(forward(context.peer.clone(), token, receiver));
                (Some(sender), Some(task))
            }
            None => (None, None),
        };
        let sink = CallProgress {
            events,
            cancelled: context.ct.clone(),
            lines: Mutex::new(Vec::new()),
        };
        (sink, forwarding)
    }

    /// The notes and warnings the operation gave, in order (`note: …`, `warning: …`).
    pub fn into_lines(self) -> Vec<String> {
        self.lines
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn send(&self, event: Event) {
        if let Some(events) = &self.events {
            // The forwarding task outlives the sink; a send fails only when the runtime
            // is shutting down, and then nobody listens.
            let _ = events.send(event);
        }
    }

    fn line(&self, line: String) {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line.clone());
        self.send(Event::Line(line));
    }
}

impl Progress for CallProgress {
    fn note(&self, message: &str) {
        self.line(format!("note: {message}"));
    }

    fn warning(&self, message: &str) {
        self.line(format!("warning: {message}"));
    }

    fn waiting(&self, what: &str) {
        self.send(Event::Waiting(what.to_string()));
    }

    fn done_waiting(&self) {
        self.send(Event::DoneWaiting);
    }

    fn cancelled(&self) -> bool {
        self.cancelled.is_cancelled()
    }
}

/// Sends each event as a progress notification (the count so far as its progress, which
/// only grows, as the protocol asks), and a beat while a wait lasts.
async fn forward(
    peer: Peer<RoleServer>,
    token: ProgressToken,
    mut events: UnboundedReceiver<Event>,
) {
    let mut sent = 0u32;
    let mut waiting: Option<(String, Instant)> = None;
    let mut beat = tokio::time::interval(BEAT);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let message = tokio::select! {
            event = events.recv() => match event {
                None => return,
                Some(Event::Line(line)) => line,
                Some(Event::Waiting(what)) => {
                    waiting = Some((what.clone(), Instant::now()));
                    beat.reset();
                    what
                }
                Some(Event::DoneWaiting) => {
                    waiting = None;
                    continue;
                }
            },
            _ = beat.tick(), if waiting.is_some() => match &waiting {
                Some((what, since)) => format!("{what} ({} s)", since.elapsed().as_secs()),
                None => continue,
            },
        };
        sent += 1;
        let notification =
            ProgressNotificationParam::new(token.clone(), f64::from(sent)).with_message(message);
        // A client that went away misses nothing it could use.
        let _ = peer.notify_progress(notification).await;
    }
}
