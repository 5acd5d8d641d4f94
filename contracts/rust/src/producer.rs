//! Publishing contract events on JetStream per contracts/WIRE.md.

use std::time::SystemTime;

use async_nats::jetstream;

use crate::catalog::Event;
use crate::error::{Error, Result, codes};
use crate::events::EventMessage;
use crate::wire::{HeaderInput, event_headers, format_time, header_map, new_id};

/// Publishes events: subject from the contract, protobuf payload, CloudEvents headers, and a
/// Nats-Msg-Id so a retry with the same id is a no-op within the stream's duplicate window.
#[derive(Clone)]
pub struct Producer {
    js: jetstream::Context,
    source: String,
}

/// Per-event inputs of the headers; every field is optional.
#[derive(Debug, Clone, Default)]
pub struct PublishOptions {
    /// ce-id; a new UUIDv7 when None. Reuse it when retrying the same event.
    pub id: Option<String>,
    /// Nats-Msg-Id; the ce-id when None.
    pub msg_id: Option<String>,
    /// ce-time; now when None.
    pub time: Option<SystemTime>,
    /// Defaults to the ce-id (the first event of a flow starts the correlation).
    pub correlation_id: Option<String>,
    /// ce-id of the event that caused this one.
    pub causation_id: Option<String>,
    /// W3C trace context to continue (e.g. `delivery.trace.to_string()`).
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

/// JetStream's acknowledgement of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub subject: String,
    pub stream: String,
    pub seq: u64,
    /// True when the stream already had a message with this Nats-Msg-Id.
    pub duplicate: bool,
    pub id: String,
    pub msg_id: String,
}

impl Producer {
    /// A producer for the service named `service` (ce-source `/jetkit/<service>`).
    pub fn new(js: jetstream::Context, service: &str) -> Self {
        Producer {
            js,
            source: format!("/jetkit/{service}"),
        }
    }

    /// Encodes `event` and publishes it on its contract's subject.
    pub async fn publish<T: EventMessage>(
        &self,
        event: &T,
        opts: PublishOptions,
    ) -> Result<Published> {
        self.publish_encoded(T::event(), event.encode_to_vec(), opts)
            .await
    }

    /// Publishes an already-encoded payload as an event of `event`, unchecked: for tools and
    /// tests (e.g. a malformed message on purpose). Prefer `publish`.
    pub async fn publish_encoded(
        &self,
        event: &Event,
        payload: Vec<u8>,
        opts: PublishOptions,
    ) -> Result<Published> {
        let id = opts.id.unwrap_or_else(new_id);
        let msg_id = opts.msg_id.unwrap_or_else(|| id.clone());
        let headers = event_headers(&HeaderInput {
            id: id.clone(),
            type_name: event.type_name.clone(),
            source: self.source.clone(),
            time: format_time(opts.time.unwrap_or_else(SystemTime::now)),
            partition_key: Some(event.partition_key_of(&payload)),
            correlation_id: Some(opts.correlation_id.unwrap_or_else(|| id.clone())),
            causation_id: opts.causation_id,
            traceparent: opts.traceparent,
            tracestate: opts.tracestate,
            msg_id: Some(msg_id.clone()),
        });
        let failed = |e: &dyn std::fmt::Display| {
            Error::new(
                codes::PUBLISH_FAILED,
                format!(
                    "publish {} on {} (ce-id {id}): {e}",
                    event.type_name, event.subject
                ),
            )
        };
        let ack = self
            .js
            .publish_with_headers(event.subject.clone(), header_map(&headers)?, payload.into())
            .await
            .map_err(|e| failed(&e))?
            .await
            .map_err(|e| failed(&e))?;
        Ok(Published {
            subject: event.subject.clone(),
            stream: ack.stream,
            seq: ack.sequence,
            duplicate: ack.duplicate,
            id,
            msg_id,
        })
    }
}
