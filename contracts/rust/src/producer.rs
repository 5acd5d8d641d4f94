//! Publishing contract events on JetStream per contracts/WIRE.md.

use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream;
use async_nats::jetstream::publish::PublishAck;

use crate::catalog::Event;
use crate::error::{Error, Result, codes};
use crate::events::EventMessage;
use crate::outcome::{Attempt, classify_ack, classify_send, jitter};
use crate::wire::{HeaderInput, event_headers, format_time, header_map, new_id};

/// How long one publish, all its attempts included, keeps trying when neither
/// [`PublishOptions::deadline`] nor [`Producer::with_timeout`] says otherwise. Well within
/// JetStream's default duplicate window (2 min), so every retry of one publish is de-duplicated.
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// The wait for one ack: an ack lost with a dropped connection or a leader that stepped down is
/// retried instead of waited for.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Backoff between attempts (full jitter): small enough to ride out a leader election soon
/// after the new leader is there.
const RETRY_BASE_DELAY: Duration = Duration::from_millis(25);
const RETRY_MAX_DELAY: Duration = Duration::from_millis(250);

/// Publishes events: subject from the contract, protobuf payload, CloudEvents headers, and a
/// Nats-Msg-Id so a retry with the same id is a no-op within the stream's duplicate window.
///
/// A publish returns the stream's ack or an error that says what is known:
/// - [`codes::REJECTED`]: JetStream refused the event (an API error with status 4xx, e.g. the
///   stream's max_msg_size), or the client could not send it at all (over max_payload, the
///   client is gone). It is not stored; the same publish would be refused again. Reported at
///   once, after one attempt.
/// - [`codes::OUTCOME_UNKNOWN`]: no definite answer before the deadline, after at least one
///   attempt was sent. The event MAY be stored: publish it again with the same id / msg id within
///   the stream's duplicate window; an ack with `duplicate == true` means it was stored.
///
/// Timeouts (each attempt waits at most 2 s for its ack), no responders (no stream captures the
/// subject yet, a leader election, a restarting server), a dropped connection, server errors
/// (5xx) and 10158 "duplicate message id is in process" are retried with the same Nats-Msg-Id,
/// headers and payload, with exponential backoff (25 ms doubling to 250 ms, full jitter), until
/// the deadline: [`PublishOptions::deadline`], else the producer's timeout from the call
/// ([`DEFAULT_PUBLISH_TIMEOUT`] unless set with [`Producer::with_timeout`]). A stored event is
/// never reported as refused. Dropping the publish future stops retrying; nothing is reported.
#[derive(Clone)]
pub struct Producer {
    js: jetstream::Context,
    source: String,
    timeout: Duration,
    registry_version: Option<u64>,
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
    /// When to stop retrying and report [`codes::OUTCOME_UNKNOWN`]; the producer's timeout from
    /// the call when None.
    pub deadline: Option<Instant>,
    /// The event's lifetime in its stream (`Nats-TTL`, whole seconds, at least 1 s); the
    /// contract's `ttl` when None. Needs `allow_msg_ttl` on the stream.
    pub ttl: Option<Duration>,
    /// Deliver the event at this time instead of now (a nats-server message schedule): it waits
    /// on `<subject>.scheduled.<msg id>` and the server publishes it to its subject then; the ack
    /// is the schedule's; [`Producer::cancel_scheduled`] cancels it. Needs `allow_msg_schedules`
    /// and stream subjects that capture `<subject>.scheduled.>`.
    pub deliver_at: Option<SystemTime>,
    /// `deliver_at` as a delay from now.
    pub delay: Option<Duration>,
}

/// How far in the past `deliver_at` may lie (a delay of 0, clocks a little apart): delivered at
/// once. Further back is a mistake, refused (the same rule as TypeScript and Go).
const SCHEDULE_PAST_TOLERANCE: Duration = Duration::from_secs(1);

/// Where a scheduled event waits: `<subject>.scheduled.<msg id>`.
fn schedule_subject(event: &Event, msg_id: &str) -> String {
    format!("{}.scheduled.{msg_id}", event.subject)
}

/// Whether `pattern` (NATS wildcards `*` and `>`) matches `subject`.
fn subject_matches(pattern: &str, subject: &str) -> bool {
    let (ps, ss): (Vec<&str>, Vec<&str>) =
        (pattern.split('.').collect(), subject.split('.').collect());
    for (i, p) in ps.iter().enumerate() {
        if *p == ">" {
            return i < ss.len();
        }
        if i >= ss.len() || (*p != "*" && *p != ss[i]) {
            return false;
        }
    }
    ps.len() == ss.len()
}

/// The subject and the `Nats-TTL` / `Nats-Schedule` headers a publish asks for, or why its
/// stream cannot take them (nothing is sent then).
fn timing(
    event: &Event,
    ttl: Option<Duration>,
    deliver_at: Option<SystemTime>,
    delay: Option<Duration>,
    msg_id: &str,
) -> Result<(String, Vec<(String, String)>)> {
    let ttl = ttl.or(event.ttl);
    let at = deliver_at.or_else(|| delay.map(|d| SystemTime::now() + d));
    let mut headers = Vec::new();
    let mut ttl_header = None;
    if let Some(ttl) = ttl {
        if ttl < Duration::from_secs(1) {
            return Err(Error::new(
                codes::PRODUCER_OPTIONS,
                format!("ttl must be at least 1s (the server counts whole seconds), got {ttl:?}"),
            ));
        }
        if !event.allow_msg_ttl {
            return Err(Error::new(
                codes::UNSUPPORTED,
                format!(
                    "{} cannot be published with a TTL: stream {} does not allow per-message TTLs. Set allow_msg_ttl: true on its (jetkit.v1.stream) option and apply the streams, or publish without ttl",
                    event.type_name, event.stream
                ),
            ));
        }
        ttl_header = Some(format!(
            "{}s",
            ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0)
        ));
    }
    let Some(at) = at else {
        if let Some(t) = ttl_header {
            headers.push(("Nats-TTL".to_string(), t));
        }
        return Ok((event.subject.clone(), headers));
    };
    let now = SystemTime::now();
    if let Ok(late) = now.duration_since(at) {
        if late > SCHEDULE_PAST_TOLERANCE {
            return Err(Error::new(
                codes::PRODUCER_OPTIONS,
                format!(
                    "deliver_at {} is {} s in the past: schedule a future time, or publish without deliver_at/delay to deliver now",
                    format_time(at),
                    late.as_secs()
                ),
            ));
        }
    }
    if let (Some(max_age), Ok(ahead)) = (event.stream_max_age, at.duration_since(now)) {
        if ahead >= max_age {
            return Err(Error::new(
                codes::PRODUCER_OPTIONS,
                format!(
                    "deliver_at {} is {} s ahead, beyond stream {}'s max_age of {} s: the schedule would expire before it fires. Schedule sooner, or raise max_age on the stream's (jetkit.v1.stream) option and apply the streams",
                    format_time(at),
                    ahead.as_secs(),
                    event.stream,
                    max_age.as_secs()
                ),
            ));
        }
    }
    let scheduled = schedule_subject(event, msg_id);
    let captured = event
        .stream_subjects
        .iter()
        .any(|s| subject_matches(s, &scheduled));
    if !event.allow_msg_schedules || !captured {
        let why = if event.allow_msg_schedules {
            format!(
                "does not capture {}.scheduled.> (its subjects: {})",
                event.subject,
                event.stream_subjects.join(", ")
            )
        } else {
            "does not allow message schedules".to_string()
        };
        return Err(Error::new(
            codes::UNSUPPORTED,
            format!(
                "{} cannot be scheduled: stream {} {why}. Set allow_msg_schedules: true on its (jetkit.v1.stream) option with subjects that capture <subject>.scheduled.>, apply the streams, or publish without deliver_at/delay",
                event.type_name, event.stream
            ),
        ));
    }
    // The schedule waits on its own subject; at its time the server publishes its body and
    // headers to the target. The event's TTL applies to what it publishes.
    headers.push((
        "Nats-Schedule".to_string(),
        format!("@at {}", format_time(at)),
    ));
    headers.push(("Nats-Schedule-Target".to_string(), event.subject.clone()));
    if let Some(t) = ttl_header {
        headers.push(("Nats-Schedule-TTL".to_string(), t));
    }
    Ok((scheduled, headers))
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
            timeout: DEFAULT_PUBLISH_TIMEOUT,
            registry_version: None,
        }
    }

    /// The contract registry version this crate's generated code was pushed as (`jetkit
    /// contracts list`): every event then carries `ce-dataschema`
    /// `jetkit:registry/<version>#<type>` (WIRE.md §4.4), so a consumer built before the type
    /// can decode it from the registry.
    pub fn with_registry_version(mut self, version: u64) -> Self {
        self.registry_version = Some(version);
        self
    }

    /// How long a publish without [`PublishOptions::deadline`] keeps trying
    /// ([`DEFAULT_PUBLISH_TIMEOUT`] by default).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Cancels an event published with `deliver_at`/`delay` that was not delivered yet: true when
    /// it was cancelled, false when there was nothing to cancel (delivered already, cancelled,
    /// or never scheduled).
    pub async fn cancel_scheduled(&self, event: &Event, msg_id: &str) -> Result<bool> {
        let filter = schedule_subject(event, msg_id);
        let answer: serde_json::Value = self
            .js
            .request(
                format!("STREAM.PURGE.{}", event.stream),
                &serde_json::json!({ "filter": filter }),
            )
            .await
            .map_err(|e| {
                Error::new(
                    codes::OUTCOME_UNKNOWN,
                    format!(
                        "could not cancel scheduled {} {msg_id}: no answer from stream {} ({e}); call again",
                        event.type_name, event.stream
                    ),
                )
            })?;
        if let Some(err) = answer.get("error") {
            return Err(Error::new(
                codes::REJECTED,
                format!(
                    "could not cancel scheduled {} {msg_id}: {} ({})",
                    event.type_name,
                    err.get("description")
                        .and_then(|d| d.as_str())
                        .unwrap_or("refused"),
                    err.get("err_code").and_then(|c| c.as_u64()).unwrap_or(0)
                ),
            ));
        }
        Ok(answer.get("purged").and_then(|n| n.as_u64()).unwrap_or(0) > 0)
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
        let (id, msg_id, mut headers) = self.headers(event, &payload, &opts);
        let (subject, timing_headers) =
            timing(event, opts.ttl, opts.deliver_at, opts.delay, &msg_id)?;
        headers.extend(timing_headers);
        let what = format!("{} on {} (msg id {msg_id})", event.type_name, event.subject);
        let deadline = opts
            .deadline
            .unwrap_or_else(|| Instant::now() + self.timeout);
        let ack = self
            .send_until_answered(
                &subject,
                header_map(&headers)?,
                payload.into(),
                deadline,
                &what,
                &msg_id,
            )
            .await?;
        Ok(Published {
            subject: event.subject.clone(),
            stream: ack.stream,
            seq: ack.sequence,
            duplicate: ack.duplicate,
            id,
            msg_id,
        })
    }

    /// The ce-id, msg id and CloudEvents headers of one event (WIRE.md §4), defaults filled in.
    pub(crate) fn headers(
        &self,
        event: &Event,
        payload: &[u8],
        opts: &PublishOptions,
    ) -> (String, String, Vec<(String, String)>) {
        let id = opts.id.clone().unwrap_or_else(new_id);
        let msg_id = opts.msg_id.clone().unwrap_or_else(|| id.clone());
        let headers = event_headers(&HeaderInput {
            id: id.clone(),
            type_name: event.type_name.clone(),
            source: self.source.clone(),
            time: format_time(opts.time.unwrap_or_else(SystemTime::now)),
            partition_key: Some(event.partition_key_of(payload)),
            correlation_id: Some(opts.correlation_id.clone().unwrap_or_else(|| id.clone())),
            causation_id: opts.causation_id.clone(),
            traceparent: opts.traceparent.clone(),
            tracestate: opts.tracestate.clone(),
            msg_id: Some(msg_id.clone()),
            dataschema: self
                .registry_version
                .map(|v| format!("jetkit:registry/{v}#{}", event.type_name)),
        });
        (id, msg_id, headers)
    }

    /// The JetStream context this producer publishes with.
    pub(crate) fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// How long a publish keeps trying by default.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends one message until JetStream answers definitely or `deadline` passes (see
    /// [`Producer`]). Every attempt is the same message: same Nats-Msg-Id, headers and payload,
    /// so the stream stores it at most once within its duplicate window.
    async fn send_until_answered(
        &self,
        subject: &str,
        headers: async_nats::HeaderMap,
        payload: bytes::Bytes,
        deadline: Instant,
        what: &str,
        msg_id: &str,
    ) -> Result<PublishAck> {
        let started = Instant::now();
        let (mut attempts, mut sent) = (0u32, false);
        let mut last = String::from("the deadline had passed before the first attempt");
        let mut delay = RETRY_BASE_DELAY;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                if !sent {
                    // Not stored, but not refused either: the same publish may well succeed.
                    return Err(Error::new(
                        codes::OUTCOME_UNKNOWN,
                        format!(
                            "no attempt of {what} was sent before its deadline ({last}); publish it again with the same msg id {msg_id}"
                        ),
                    ));
                }
                return Err(outcome_unknown(what, msg_id, attempts, started, &last));
            }
            attempts += 1;
            let attempt = async {
                // The ack future is awaited in its own step: an error before it says the message
                // was not handed to the connection.
                let ack = self
                    .js
                    .publish_with_headers(subject.to_string(), headers.clone(), payload.clone())
                    .await
                    .map_err(|e| (classify_send(&e), e.to_string()))?;
                ack.await.map_err(|e| (classify_ack(&e), e.to_string()))
            };
            let (failure, why) =
                match tokio::time::timeout(remaining.min(ATTEMPT_TIMEOUT), attempt).await {
                    Ok(Ok(ack)) => return Ok(ack),
                    Ok(Err(failed)) => failed,
                    Err(_) => (
                        Attempt::Ambiguous { sent: true },
                        format!("no ack within {:?}", remaining.min(ATTEMPT_TIMEOUT)),
                    ),
                };
            last = why;
            match failure {
                Attempt::Refused => {
                    return Err(Error::new(
                        codes::REJECTED,
                        format!(
                            "JetStream refused {what}: {last}. It is not stored, and the same publish would be refused again"
                        ),
                    ));
                }
                Attempt::Unsent if sent => {
                    return Err(outcome_unknown(what, msg_id, attempts, started, &last));
                }
                Attempt::Unsent => {
                    return Err(Error::new(
                        codes::REJECTED,
                        format!("{what} could not be sent: {last}. It is not stored"),
                    ));
                }
                Attempt::Ambiguous { sent: s } => sent |= s,
            }
            let wait = jitter(delay).min(deadline.saturating_duration_since(Instant::now()));
            tokio::time::sleep(wait).await;
            delay = (delay * 2).min(RETRY_MAX_DELAY);
        }
    }
}

fn outcome_unknown(what: &str, msg_id: &str, attempts: u32, started: Instant, last: &str) -> Error {
    Error::new(
        codes::OUTCOME_UNKNOWN,
        format!(
            "no definite answer for {what} after {attempts} attempt(s) in {} ms (last: {last}). The event MAY be stored: publish it again with the same msg id {msg_id} within the stream's duplicate window; an ack with duplicate == true means it was stored",
            started.elapsed().as_millis()
        ),
    )
}
