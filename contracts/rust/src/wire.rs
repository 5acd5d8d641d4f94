//! Headers of an event and of a dead letter (contracts/WIRE.md §4-§5).

use std::time::{SystemTime, UNIX_EPOCH};

use async_nats::HeaderMap;

use crate::binding::{
    Attributes, binary_attributes, is_protobuf_media_type, is_structured, percent_encode,
    read_structured,
};
use crate::error::{Error, Result, codes};
use crate::trace::TraceContext;

/// Header names of an event, as jetkit writes them; readers match them case-insensitively
/// (CloudEvents NATS binding §3.1.3.1).
pub mod names {
    pub const ID: &str = "ce-id";
    pub const SPEC_VERSION: &str = "ce-specversion";
    pub const TYPE: &str = "ce-type";
    pub const SOURCE: &str = "ce-source";
    pub const TIME: &str = "ce-time";
    pub const DATA_CONTENT_TYPE: &str = "ce-datacontenttype";
    /// The registry version the payload was encoded with (WIRE.md §4.4).
    pub const DATA_SCHEMA: &str = "ce-dataschema";
    pub const PARTITION_KEY: &str = "ce-partitionkey";
    pub const CORRELATION_ID: &str = "ce-correlationid";
    pub const CAUSATION_ID: &str = "ce-causationid";
    pub const TRACEPARENT: &str = "traceparent";
    pub const TRACESTATE: &str = "tracestate";
    /// The same trace context as the CloudEvents distributed tracing extension's attributes.
    pub const CE_TRACEPARENT: &str = "ce-traceparent";
    pub const CE_TRACESTATE: &str = "ce-tracestate";
    /// Names the event format of a structured-mode message.
    pub const CONTENT_TYPE: &str = "content-type";
    /// JetStream de-duplication id; equals ce-id except on dead letters and replays.
    pub const MSG_ID: &str = "Nats-Msg-Id";
    /// Set on a replay of a dead letter: `<DLQ stream>:<DLQ sequence>`.
    pub const REPLAY_OF: &str = "Jetkit-Replay-Of";
    pub const DLQ_STREAM: &str = "Jetkit-Dlq-Stream";
    pub const DLQ_SEQUENCE: &str = "Jetkit-Dlq-Sequence";
    pub const DLQ_SUBJECT: &str = "Jetkit-Dlq-Subject";
    pub const DLQ_CONSUMER: &str = "Jetkit-Dlq-Consumer";
    pub const DLQ_DELIVERIES: &str = "Jetkit-Dlq-Deliveries";
    pub const DLQ_FAILURE_CLASS: &str = "Jetkit-Dlq-Failure-Class";
    pub const DLQ_REASON: &str = "Jetkit-Dlq-Reason";
    pub const DLQ_FIRST_FAILURE: &str = "Jetkit-Dlq-First-Failure";
    pub const DLQ_LAST_FAILURE: &str = "Jetkit-Dlq-Last-Failure";
}
use names::*;

const DLQ_NAMES: [&str; 9] = [
    DLQ_STREAM,
    DLQ_SEQUENCE,
    DLQ_SUBJECT,
    DLQ_CONSUMER,
    DLQ_DELIVERIES,
    DLQ_FAILURE_CLASS,
    DLQ_REASON,
    DLQ_FIRST_FAILURE,
    DLQ_LAST_FAILURE,
];

pub const SPEC_VERSION_1_0: &str = "1.0";
pub const CONTENT_TYPE: &str = "application/protobuf";
/// Longest header value written from free text, in characters of the percent-encoded (ASCII)
/// value; longer text is cut and ends with `…` (`%E2%80%A6`).
pub const MAX_HEADER_VALUE: usize = 1024;

/// An ordered header list: (name, value).
pub type Headers = Vec<(String, String)>;

/// What the headers of one event are built from.
#[derive(Debug, Clone, Default)]
pub struct HeaderInput {
    /// ce-id: unique per event (`new_id()` unless the caller has one).
    pub id: String,
    /// ce-type: fully-qualified message name.
    pub type_name: String,
    /// ce-source: `/jetkit/<service name>`.
    pub source: String,
    /// ce-time, already formatted (see `format_time`).
    pub time: String,
    pub partition_key: Option<String>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
    /// Nats-Msg-Id; `id` when None.
    pub msg_id: Option<String>,
    /// ce-dataschema, `jetkit:registry/<version>#<type>` (WIRE.md §4.4); omitted when None.
    pub dataschema: Option<String>,
}

/// The headers of an event in their wire order.
pub fn event_headers(input: &HeaderInput) -> Headers {
    let mut h: Headers = vec![
        (ID.into(), header_value(&input.id)),
        (SPEC_VERSION.into(), SPEC_VERSION_1_0.into()),
        (TYPE.into(), header_value(&input.type_name)),
        (SOURCE.into(), header_value(&input.source)),
        (TIME.into(), header_value(&input.time)),
        (DATA_CONTENT_TYPE.into(), CONTENT_TYPE.into()),
    ];
    let present = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_string);
    if let Some(ds) = present(&input.dataschema) {
        h.push((DATA_SCHEMA.into(), header_value(&ds)));
    }
    for (name, value) in [
        (PARTITION_KEY, &input.partition_key),
        (CORRELATION_ID, &input.correlation_id),
        (CAUSATION_ID, &input.causation_id),
    ] {
        if let Some(v) = present(value) {
            h.push((name.into(), header_value(&v)));
        }
    }
    if let Some(tp) = present(&input.traceparent) {
        // W3C headers as W3C Trace Context writes them, the tracing extension's copies percent-encoded
        let state = present(&input.tracestate);
        h.push((TRACEPARENT.into(), tp.clone()));
        if let Some(ts) = &state {
            h.push((TRACESTATE.into(), ts.clone()));
        }
        h.push((CE_TRACEPARENT.into(), tp));
        if let Some(ts) = &state {
            h.push((CE_TRACESTATE.into(), header_value(ts)));
        }
    }
    h.push((
        MSG_ID.into(),
        present(&input.msg_id).unwrap_or_else(|| input.id.clone()),
    ));
    h
}

/// A header value written from free text, exactly as TypeScript's `headerValue()`: each run of
/// control characters (U+0000-U+001F, U+007F-U+009F; CR and LF included) becomes one space, the
/// text is trimmed, then percent-encoded (binding §3.1.3.2) and cut to at most MAX_HEADER_VALUE
/// ASCII characters without splitting an escape (contracts/WIRE.md §4.1).
pub fn header_value(s: &str) -> String {
    let encoded = percent_encode(s, MAX_HEADER_VALUE);
    if encoded == s {
        return encoded;
    }
    let mut clean = String::with_capacity(s.len());
    let mut in_ctl = false;
    for c in s.chars() {
        if c < '\u{20}' || ('\u{7f}'..='\u{9f}').contains(&c) {
            if !in_ctl {
                clean.push(' ');
            }
            in_ctl = true;
        } else {
            in_ctl = false;
            clean.push(c);
        }
    }
    percent_encode(clean.trim_matches(is_js_whitespace), MAX_HEADER_VALUE)
}

/// What String.prototype.trim removes: Unicode White_Space without U+0085, plus U+FEFF.
fn is_js_whitespace(c: char) -> bool {
    (c.is_whitespace() && c != '\u{85}') || c == '\u{feff}'
}

/// `t` as ce-time writes it: RFC 3339, UTC, exactly three fractional digits.
pub fn format_time(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// An ordered header list as an async-nats HeaderMap. async-nats keeps headers in a hash map,
/// so the order on the wire is the client's; names and values are exactly the list's.
pub fn header_map(headers: &[(String, String)]) -> Result<HeaderMap> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let name: async_nats::HeaderName = name.parse().map_err(|_| {
            Error::new(
                codes::WIRE_HEADERS,
                format!("{name:?} is not a valid header name"),
            )
        })?;
        let value: async_nats::HeaderValue = value.parse().map_err(|_| {
            Error::new(
                codes::WIRE_HEADERS,
                format!("header {name} has a CR or LF in its value"),
            )
        })?;
        map.append(name, value);
    }
    Ok(map)
}

/// Received headers in the order of contracts/WIRE.md (async-nats hands them over as a map);
/// names WIRE.md does not know follow, sorted.
pub fn ordered_headers(map: &HeaderMap) -> Headers {
    const ORDER: [&str; 24] = [
        ID,
        SPEC_VERSION,
        TYPE,
        SOURCE,
        TIME,
        DATA_CONTENT_TYPE,
        PARTITION_KEY,
        CORRELATION_ID,
        CAUSATION_ID,
        TRACEPARENT,
        TRACESTATE,
        CE_TRACEPARENT,
        CE_TRACESTATE,
        REPLAY_OF,
        MSG_ID,
        DLQ_STREAM,
        DLQ_SEQUENCE,
        DLQ_SUBJECT,
        DLQ_CONSUMER,
        DLQ_DELIVERIES,
        DLQ_FAILURE_CLASS,
        DLQ_REASON,
        DLQ_FIRST_FAILURE,
        DLQ_LAST_FAILURE,
    ];
    let mut out: Headers = map
        .iter()
        .flat_map(|(k, vs)| {
            vs.iter()
                .map(move |v| (k.to_string(), v.as_str().to_string()))
        })
        .collect();
    let rank = |n: &str| ORDER.iter().position(|o| *o == n).unwrap_or(ORDER.len());
    out.sort_by(|a, b| rank(&a.0).cmp(&rank(&b.0)).then_with(|| a.0.cmp(&b.0)));
    out
}

/// The CloudEvents attributes of a received event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Received {
    pub id: String,
    pub type_name: String,
    pub source: String,
    pub time: String,
    pub msg_id: String,
    pub partition_key: Option<String>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
    pub replay_of: Option<String>,
}

/// Reads and checks the headers of a received binary-mode event like TypeScript's
/// `readEventHeaders()`: names in any case, `ce-*` values percent-decoded; fails with
/// JK_WIRE_HEADERS naming the header that is missing or wrong.
pub fn read_event_headers(map: Option<&HeaderMap>) -> Result<Received> {
    check_attributes(binary_attributes(map)?)
}

/// Reads and checks a received message in either content mode (contracts/WIRE.md §4):
/// structured when its content-type names a CloudEvents format (or it has no CloudEvents headers
/// and a JSON object body), binary otherwise. Returns the attributes and the event data.
pub fn read_event(map: Option<&HeaderMap>, body: &[u8]) -> Result<(Received, Vec<u8>)> {
    if is_structured(map, body) {
        let (a, data) = read_structured(map, body)?;
        return Ok((check_attributes(a)?, data));
    }
    Ok((read_event_headers(map)?, body.to_vec()))
}

fn check_attributes(a: Attributes) -> Result<Received> {
    let need = |v: Option<String>, name: &str| {
        v.ok_or_else(|| {
            Error::new(
                codes::WIRE_HEADERS,
                format!("header {name} is missing; every jetkit event carries the CloudEvents headers of contracts/WIRE.md"),
            )
        })
    };
    let spec = need(a.spec_version, SPEC_VERSION)?;
    if spec != SPEC_VERSION_1_0 {
        return Err(Error::new(
            codes::WIRE_HEADERS,
            format!("header ce-specversion is {spec:?}, expected \"1.0\""),
        ));
    }
    if let Some(ct) = a.data_content_type.filter(|ct| !is_protobuf_media_type(ct)) {
        return Err(Error::new(
            codes::WIRE_HEADERS,
            format!(
                "header ce-datacontenttype is {ct:?}, expected {CONTENT_TYPE:?} (media types match case-insensitively)"
            ),
        ));
    }
    let id = need(a.id, ID)?;
    if id.len() > 256 || !id.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(Error::new(
            codes::WIRE_HEADERS,
            "header ce-id must be 1-256 printable ASCII characters without spaces",
        ));
    }
    // The trace context continued (§4.2): the W3C header (this hop) when valid, else the
    // tracing extension's, each with its own tracestate.
    let valid = |t: &Option<String>| t.as_deref().and_then(TraceContext::parse).is_some();
    let (traceparent, tracestate) = if valid(&a.traceparent) {
        (a.traceparent, a.tracestate)
    } else if valid(&a.ce_traceparent) {
        (a.ce_traceparent, a.ce_tracestate)
    } else {
        (a.traceparent, a.tracestate)
    };
    Ok(Received {
        msg_id: a.msg_id.unwrap_or_else(|| id.clone()),
        id,
        type_name: need(a.type_name, TYPE)?,
        source: need(a.source, SOURCE)?,
        time: need(a.time, TIME)?,
        partition_key: a.partition_key,
        correlation_id: a.correlation_id,
        causation_id: a.causation_id,
        traceparent,
        tracestate,
        replay_of: a.replay_of,
    })
}

/// Values of `Jetkit-Dlq-Failure-Class` (enum jetkit.v1.FailureClass).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    Undecodable,
    UnknownType,
    ContractViolation,
    HandlerExhausted,
    HandlerPermanent,
    MaxDeliveries,
}

impl FailureClass {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Undecodable => "undecodable",
            FailureClass::UnknownType => "unknown_type",
            FailureClass::ContractViolation => "contract_violation",
            FailureClass::HandlerExhausted => "handler_exhausted",
            FailureClass::HandlerPermanent => "handler_permanent",
            FailureClass::MaxDeliveries => "max_deliveries",
        }
    }

    /// The class a decode error dead-letters under.
    pub fn of(err: &Error) -> FailureClass {
        match err.code {
            codes::UNKNOWN_TYPE | codes::UNKNOWN_SUBJECT => FailureClass::UnknownType,
            codes::UNDECODABLE | codes::WIRE_HEADERS | codes::WIRE_STRUCTURED => {
                FailureClass::Undecodable
            }
            _ => FailureClass::HandlerPermanent,
        }
    }
}

/// Why and where a message is dead-lettered.
#[derive(Debug, Clone)]
pub struct DeadLetterInput {
    pub stream: String,
    pub sequence: u64,
    pub subject: String,
    pub consumer: String,
    pub deliveries: u64,
    pub failure_class: FailureClass,
    pub reason: String,
    /// RFC 3339 times (see `format_time`).
    pub first_failure: String,
    pub last_failure: String,
}

/// The headers of a dead letter: the original headers in their order with Nats-Msg-Id replaced
/// by `dlq:<stream>:<seq>:<consumer>` (earlier Jetkit-Dlq-* dropped), then the Jetkit-Dlq-* headers.
pub fn dead_letter_headers(original: &[(String, String)], input: &DeadLetterInput) -> Headers {
    let msg_id = format!("dlq:{}:{}:{}", input.stream, input.sequence, input.consumer);
    let mut out: Headers = Vec::with_capacity(original.len() + 10);
    let mut saw_msg_id = false;
    for (k, v) in original {
        if DLQ_NAMES.contains(&k.as_str()) || is_server_header(k) {
            continue;
        }
        if k == MSG_ID {
            out.push((k.clone(), msg_id.clone()));
            saw_msg_id = true;
        } else {
            out.push((k.clone(), v.clone()));
        }
    }
    if !saw_msg_id {
        out.push((MSG_ID.into(), msg_id));
    }
    out.extend([
        (DLQ_STREAM.into(), input.stream.clone()),
        (DLQ_SEQUENCE.into(), input.sequence.to_string()),
        (DLQ_SUBJECT.into(), input.subject.clone()),
        (DLQ_CONSUMER.into(), input.consumer.clone()),
        (DLQ_DELIVERIES.into(), input.deliveries.to_string()),
        (
            DLQ_FAILURE_CLASS.into(),
            input.failure_class.as_str().into(),
        ),
        (DLQ_REASON.into(), header_value(&input.reason)),
        (DLQ_FIRST_FAILURE.into(), input.first_failure.clone()),
        (DLQ_LAST_FAILURE.into(), input.last_failure.clone()),
    ]);
    out
}

/// A new event id: a UUIDv7 (time-sortable), as the TypeScript producer generates.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// `dlq.<subject>`: where a dead letter of `subject` is stored.
pub fn dead_letter_subject(subject: &str) -> String {
    format!("dlq.{subject}")
}

/// The headers of a replay of the dead letter stored at `dlq_sequence` in `dlq_stream`
/// (contracts/WIRE.md §6): the original ce-* headers without the Jetkit-Dlq-* ones, then
/// `Jetkit-Replay-Of` and a new Nats-Msg-Id, `replay:<DLQ sequence>:<ce-id>`.
pub fn replay_headers(
    dead_letter: &[(String, String)],
    dlq_sequence: u64,
    dlq_stream: &str,
) -> Headers {
    let mut id = String::new();
    let mut out: Headers = dead_letter
        .iter()
        .filter(|(k, _)| {
            !DLQ_NAMES.contains(&k.as_str())
                && !is_server_header(k)
                && k != MSG_ID
                && k != REPLAY_OF
        })
        .inspect(|(k, v)| {
            if k == ID {
                id = v.clone();
            }
        })
        .cloned()
        .collect();
    out.push((REPLAY_OF.into(), format!("{dlq_stream}:{dlq_sequence}")));
    out.push((MSG_ID.into(), format!("replay:{dlq_sequence}:{id}")));
    out
}

/// A JetStream header other than Nats-Msg-Id (`Nats-Expected-Stream`, `Nats-TTL`, …): it belongs
/// to the publish or read of the message it is on, and would make a copy's publish fail or expire.
fn is_server_header(name: &str) -> bool {
    name.len() > 5 && name[..5].eq_ignore_ascii_case("nats-") && name != MSG_ID
}
