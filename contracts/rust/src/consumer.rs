//! Checking received events against the wire rules and dead-lettering what cannot be processed.

use async_nats::jetstream::{self, AckKind, Message};

use crate::catalog::{Event, event_by_type};
use crate::error::{Error, Result, codes};
use crate::events::AnyEvent;
use crate::trace::TraceContext;
use crate::wire::{
    DeadLetterInput, FailureClass, Received, dead_letter_headers, dead_letter_subject, format_time,
    header_map, ordered_headers, read_event,
};

/// A received event that passed the checks of contracts/WIRE.md §4.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event: &'static Event,
    pub headers: Received,
    /// The decoded event: match on it.
    pub message: AnyEvent,
    /// This consumer's span: a child of the producer's traceparent (a new trace when the event
    /// carried none). Publish follow-up events with `trace.to_string()` as their traceparent.
    pub trace: TraceContext,
    /// The message's stream sequence (0 when the message carries no JetStream metadata).
    pub sequence: u64,
}

/// Checks a received message: headers, ce-type names an event published on this subject, and
/// the payload decodes as that event. The error's code says how to dead-letter it
/// (`FailureClass::of`). Field rules (protovalidate) are not checked in Rust.
pub fn decode(msg: &Message) -> Result<Delivery> {
    let (headers, data) = read_event(msg.headers.as_ref(), &msg.payload)?;
    let event = event_by_type(&headers.type_name)?;
    if event.subject != msg.subject.as_str() {
        return Err(Error::new(
            codes::UNKNOWN_TYPE,
            format!(
                "ce-type {} is published on {}, not on {}",
                event.type_name, event.subject, msg.subject
            ),
        ));
    }
    let message = AnyEvent::decode(&event.type_name, &data)?;
    let trace = headers
        .traceparent
        .as_deref()
        .and_then(TraceContext::parse)
        .map(|p| p.child())
        .unwrap_or_else(TraceContext::new_root);
    Ok(Delivery {
        event,
        headers,
        message,
        trace,
        sequence: msg.info().map(|i| i.stream_sequence).unwrap_or(0),
    })
}

/// Stores `msg` in the DLQ stream under `dlq.<subject>` with the headers of contracts/WIRE.md
/// §5, then terminates it so JetStream does not redeliver it.
pub async fn dead_letter(
    js: &jetstream::Context,
    msg: &Message,
    class: FailureClass,
    reason: &str,
) -> Result<()> {
    let info = msg.info().map_err(|e| failed(&e))?;
    let now = format_time(std::time::SystemTime::now());
    store_dead_letter(
        js,
        msg,
        DeadLetterInput {
            stream: info.stream.to_string(),
            sequence: info.stream_sequence,
            subject: msg.subject.to_string(),
            consumer: info.consumer.to_string(),
            deliveries: info.delivered.max(0) as u64,
            failure_class: class,
            reason: reason.to_string(),
            first_failure: now.clone(),
            last_failure: now,
        },
    )
    .await?;
    msg.ack_with(AckKind::Term).await.map_err(|e| failed(&e))
}

fn failed(e: &dyn std::fmt::Display) -> Error {
    Error::new(codes::PUBLISH_FAILED, format!("dead-letter: {e}"))
}

/// Stores `msg` in the DLQ stream under `dlq.<subject>` with the headers of `input`, without
/// acking it (a group member's messages have no acks).
pub(crate) async fn store_dead_letter(
    js: &jetstream::Context,
    msg: &Message,
    input: DeadLetterInput,
) -> Result<()> {
    let original = msg
        .headers
        .as_ref()
        .map(ordered_headers)
        .unwrap_or_default();
    let headers = dead_letter_headers(&original, &input);
    let mut map = header_map(&headers)?;
    // refused unless the DLQ stream stores it (contracts/WIRE.md §5)
    map.insert("Nats-Expected-Stream", "DLQ");
    js.publish_with_headers(dead_letter_subject(&msg.subject), map, msg.payload.clone())
        .await
        .map_err(|e| failed(&e))?
        .await
        .map_err(|e| failed(&e))?;
    Ok(())
}
