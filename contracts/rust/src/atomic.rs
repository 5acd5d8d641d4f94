//! Atomic batches (nats-server 2.12+, ADR-50): every event of the batch stored, or none.

use std::time::Instant;

use bytes::Bytes;

use crate::catalog::Event;
use crate::error::{Error, Result, codes};
use crate::events::EventMessage;
use crate::producer::{Producer, PublishOptions, Published};
use crate::wire::header_map;

/// The most events [`Producer::publish_atomic`] sends in one batch: nats-server's default limit.
pub const MAX_ATOMIC_BATCH: usize = 1000;

/// JetStream's acknowledgement of an atomic batch: every event stored at consecutive sequences
/// `first_seq..=last_seq` of `stream`, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtomicPublished {
    pub stream: String,
    pub first_seq: u64,
    pub last_seq: u64,
    pub events: Vec<Published>,
}

impl Producer {
    /// Publishes `events` (each with its options: ids, causation, trace) as one atomic batch:
    /// every event stored, or none, with one outcome. Refused before anything is sent, nothing
    /// stored: no events ([`codes::BATCH_EMPTY`]), more than [`MAX_ATOMIC_BATCH`]
    /// ([`codes::BATCH_TOO_LARGE`]), events of two streams ([`codes::BATCH_STREAMS`]), a stream
    /// without `allow_atomic` ([`codes::UNSUPPORTED`]), a TTL or delivery time
    /// ([`codes::PRODUCER_OPTIONS`]). The server's refusals store nothing either: atomic publish
    /// disabled ([`codes::UNSUPPORTED`]), over its limit ([`codes::BATCH_TOO_LARGE`]), an event
    /// whose msg id the stream holds ([`codes::REJECTED`]: refused whole; after an unknown
    /// outcome, the earlier attempt was stored). No answer to the commit is
    /// [`codes::OUTCOME_UNKNOWN`]: publish it again with the same ids (stored at most once).
    pub async fn publish_atomic<T: EventMessage>(
        &self,
        events: &[(T, PublishOptions)],
    ) -> Result<AtomicPublished> {
        let event: &Event = T::event();
        let encoded: Vec<(Vec<u8>, &PublishOptions)> =
            events.iter().map(|(e, o)| (e.encode_to_vec(), o)).collect();
        self.publish_atomic_encoded(event, &encoded).await
    }

    /// [`Producer::publish_atomic`] of already-encoded payloads of one event type (or of several
    /// types of one stream: pass each event with its own type through [`Producer::publish_atomic_of`]).
    pub async fn publish_atomic_encoded(
        &self,
        event: &Event,
        payloads: &[(Vec<u8>, &PublishOptions)],
    ) -> Result<AtomicPublished> {
        let typed: Vec<(&Event, &[u8], &PublishOptions)> = payloads
            .iter()
            .map(|(p, o)| (event, p.as_slice(), *o))
            .collect();
        self.publish_atomic_of(&typed).await
    }

    /// An atomic batch of events of any types of one stream, each given with its contract.
    pub async fn publish_atomic_of(
        &self,
        events: &[(&Event, &[u8], &PublishOptions)],
    ) -> Result<AtomicPublished> {
        let Some((first, _, _)) = events.first() else {
            return Err(Error::new(
                codes::BATCH_EMPTY,
                "an atomic batch needs at least one event",
            ));
        };
        if events.len() > MAX_ATOMIC_BATCH {
            return Err(Error::new(
                codes::BATCH_TOO_LARGE,
                format!(
                    "an atomic batch holds at most {MAX_ATOMIC_BATCH} events, got {}: split it (each part is then atomic on its own)",
                    events.len()
                ),
            ));
        }
        let mut msgs = Vec::with_capacity(events.len());
        let mut out = Vec::with_capacity(events.len());
        for (i, (ev, payload, opts)) in events.iter().enumerate() {
            if ev.stream != first.stream {
                return Err(Error::new(
                    codes::BATCH_STREAMS,
                    format!(
                        "an atomic batch is stored by one stream: event {i} ({}) is in stream {}, event 0 ({}) in {}",
                        ev.type_name, ev.stream, first.type_name, first.stream
                    ),
                ));
            }
            if opts.ttl.is_some() || opts.deliver_at.is_some() || opts.delay.is_some() {
                return Err(Error::new(
                    codes::PRODUCER_OPTIONS,
                    format!(
                        "event {i} of an atomic batch has a TTL or a delivery time: those apply to single publishes (publish)"
                    ),
                ));
            }
            let (id, msg_id, headers) = self.headers(ev, payload, opts);
            msgs.push((ev.subject.clone(), headers, Bytes::copy_from_slice(payload)));
            out.push(Published {
                subject: ev.subject.clone(),
                stream: String::new(),
                seq: 0,
                duplicate: false,
                id,
                msg_id,
            });
        }
        if !first.allow_atomic {
            return Err(Error::new(
                codes::UNSUPPORTED,
                format!(
                    "stream {} does not take atomic batches: set allow_atomic: true on its (jetkit.v1.stream) option and apply the streams, or publish the events one by one",
                    first.stream
                ),
            ));
        }
        let n = msgs.len();
        let batch_id = crate::wire::new_id().replace('-', "");
        let client = self.jetstream().client();
        let deadline = Instant::now() + self.timeout();
        for (i, (subject, mut headers, payload)) in msgs.into_iter().enumerate() {
            headers.push(("Nats-Batch-Id".into(), batch_id.clone()));
            headers.push(("Nats-Batch-Sequence".into(), (i + 1).to_string()));
            let last = i + 1 == n;
            if last {
                headers.push(("Nats-Batch-Commit".into(), "1".into()));
            }
            let map = header_map(&headers)?;
            // The first message is answered (the server says at once when it refuses the batch),
            // the middle ones are sent, the last one commits and carries the batch's ack.
            if i > 0 && !last {
                client
                    .publish_with_headers(subject, map, payload)
                    .await
                    .map_err(|e| unknown(first, n, &e.to_string()))?;
                continue;
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let answer = tokio::time::timeout(
                remaining,
                client.request_with_headers(subject, map, payload),
            )
            .await
            .map_err(|_| unknown(first, n, "no answer before the deadline"))?
            .map_err(|e| unknown(first, n, &e.to_string()))?;
            let value: serde_json::Value = if answer.payload.is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::from_slice(&answer.payload)
                    .map_err(|e| unknown(first, n, &format!("unreadable answer: {e}")))?
            };
            if let Some(err) = value.get("error") {
                return Err(refused(first, n, err));
            }
            if last {
                let stream = value
                    .get("stream")
                    .and_then(|s| s.as_str())
                    .unwrap_or_default()
                    .to_string();
                let last_seq = value.get("seq").and_then(|s| s.as_u64()).unwrap_or(0);
                if stream.is_empty() || last_seq < n as u64 {
                    return Err(unknown(
                        first,
                        n,
                        "the commit's answer names no stream or sequence",
                    ));
                }
                let first_seq = last_seq - n as u64 + 1;
                for (k, p) in out.iter_mut().enumerate() {
                    p.stream = stream.clone();
                    p.seq = first_seq + k as u64;
                }
                return Ok(AtomicPublished {
                    stream,
                    first_seq,
                    last_seq,
                    events: out,
                });
            }
        }
        unreachable!("the last message commits the batch")
    }
}

/// What the server's refusal of an atomic batch means (nothing of the batch is stored).
fn refused(ev: &Event, n: usize, err: &serde_json::Value) -> Error {
    let code = err.get("err_code").and_then(|c| c.as_u64()).unwrap_or(0);
    let status = err.get("code").and_then(|c| c.as_u64()).unwrap_or(0);
    let what = err
        .get("description")
        .and_then(|d| d.as_str())
        .unwrap_or("refused");
    match code {
        10174 => Error::new(
            codes::UNSUPPORTED,
            format!(
                "stream {} refused the atomic batch: atomic publish is not enabled on it; apply the streams from the contracts (allow_atomic)",
                ev.stream
            ),
        ),
        10199 => Error::new(
            codes::BATCH_TOO_LARGE,
            format!(
                "the server refused a batch of {n} events: over its max_batch_size ({what}); split it"
            ),
        ),
        10201 => Error::new(
            codes::REJECTED,
            format!(
                "stream {} refused the whole batch: it already holds an event's msg id (nothing of this batch was stored; after an unknown outcome, the earlier attempt was)",
                ev.stream
            ),
        ),
        _ if (400..500).contains(&status) => Error::new(
            codes::REJECTED,
            format!(
                "stream {} refused the atomic batch (nothing stored): {what} ({code})",
                ev.stream
            ),
        ),
        _ => unknown(ev, n, &format!("{what} ({code})")),
    }
}

fn unknown(ev: &Event, n: usize, why: &str) -> Error {
    Error::new(
        codes::OUTCOME_UNKNOWN,
        format!(
            "no definite answer to the atomic batch of {n} events for stream {} ({why}): it may be stored; publish it again with the same ids (stored at most once) to find out",
            ev.stream
        ),
    )
}
