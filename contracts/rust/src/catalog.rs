//! The events of the contracts, read from the buf image (`jetkit_contracts::IMAGE`): subject,
//! stream and partition key come from the `(jetkit.v1.event)` and `(jetkit.v1.stream)` options.

use std::sync::OnceLock;
use std::time::Duration;

use crate::error::{Error, Result, codes};
use crate::protowire::{bytes_field, fields, string_field, varint_field};

/// Field numbers of the custom options (contracts/proto/jetkit/v1/options.proto).
const EXT_STREAM: u32 = 50601;
const EXT_EVENT: u32 = 50602;
/// descriptor.proto's FieldDescriptorProto.Type TYPE_STRING.
const TYPE_STRING: u64 = 9;

/// What the contracts say about one event message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Fully-qualified message name, the ce-type header.
    pub type_name: String,
    /// The concrete NATS subject the event is published on.
    pub subject: String,
    /// The JetStream stream that captures the event's domain.
    pub stream: String,
    /// Proto name of the string field that keys the event, if any.
    pub partition_key: Option<String>,
    /// Field number of the partition key field, to read its value from an encoded event.
    pub partition_key_number: Option<u32>,
    /// The contract's lifetime of the event in its stream (`Nats-TTL`), if any.
    pub ttl: Option<Duration>,
    /// The stream's subjects, max age and the options per-message TTLs and schedules need.
    pub stream_subjects: Vec<String>,
    pub stream_max_age: Option<Duration>,
    pub allow_msg_ttl: bool,
    pub allow_msg_schedules: bool,
    /// The stream's `allow_atomic`: atomic batches ([`crate::Producer::publish_atomic`]) are accepted.
    pub allow_atomic: bool,
}

/// The stream options of one file (`(jetkit.v1.stream)`), as the events of the file share them.
#[derive(Default, Clone)]
struct StreamInfo {
    name: String,
    subjects: Vec<String>,
    max_age: Option<Duration>,
    allow_msg_ttl: bool,
    allow_msg_schedules: bool,
    allow_atomic: bool,
}

/// A google.protobuf.Duration (seconds 1, nanos 2), None when absent or zero.
fn duration(buf: Option<&[u8]>) -> Option<Duration> {
    let b = buf?;
    let secs = varint_field(b, 1).unwrap_or(0);
    let nanos = varint_field(b, 2).unwrap_or(0) as u32;
    Some(Duration::new(secs, nanos)).filter(|d| !d.is_zero())
}

impl Event {
    /// The value of the partition key in an encoded event ("" when the event has none).
    pub fn partition_key_of(&self, payload: &[u8]) -> String {
        self.partition_key_number
            .map(|n| string_field(payload, n))
            .unwrap_or_default()
    }
}

/// Every event of the contracts.
pub fn events() -> &'static [Event] {
    static EVENTS: OnceLock<Vec<Event>> = OnceLock::new();
    EVENTS.get_or_init(|| {
        load(jetkit_contracts::IMAGE)
            .expect("the buf image compiled into jetkit-contracts is valid")
    })
}

/// The event whose message is `type_name` (e.g. `shop.order.v1.OrderFulfillmentCompleted`).
pub fn event_by_type(type_name: &str) -> Result<&'static Event> {
    events().iter().find(|e| e.type_name == type_name).ok_or_else(|| {
        Error::new(
            codes::UNKNOWN_TYPE,
            format!("{type_name:?} is not an event of the contracts; check ce-type or regenerate the contracts"),
        )
    })
}

/// The event published on `subject`.
pub fn event_by_subject(subject: &str) -> Result<&'static Event> {
    events()
        .iter()
        .find(|e| e.subject == subject)
        .ok_or_else(|| {
            Error::new(
                codes::UNKNOWN_SUBJECT,
                format!("no event of the contracts is published on {subject:?}"),
            )
        })
}

/// Reads the events out of a FileDescriptorSet.
pub fn load(image: &[u8]) -> Result<Vec<Event>> {
    let invalid = || {
        Error::new(
            codes::CATALOG_INVALID,
            "the buf image is not a FileDescriptorSet; run scripts/generate.sh",
        )
    };
    let mut out = Vec::new();
    for file in fields(image)
        .ok_or_else(invalid)?
        .into_iter()
        .filter(|f| f.number == 1)
    {
        let file = file.bytes.ok_or_else(invalid)?;
        let package = string_field(file, 2);
        let stream = bytes_field(file, 8)
            .and_then(|opts| bytes_field(opts, EXT_STREAM))
            .map(|s| StreamInfo {
                name: string_field(s, 1),
                subjects: fields(s)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|f| f.number == 2)
                    .filter_map(|f| f.bytes)
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .collect(),
                max_age: duration(bytes_field(s, 6)),
                allow_msg_ttl: varint_field(s, 12) == Some(1),
                allow_msg_schedules: varint_field(s, 13) == Some(1),
                allow_atomic: varint_field(s, 14) == Some(1),
            })
            .unwrap_or_default();
        for msg in fields(file)
            .ok_or_else(invalid)?
            .into_iter()
            .filter(|f| f.number == 4)
        {
            collect(msg.bytes.ok_or_else(invalid)?, &package, &stream, &mut out);
        }
    }
    Ok(out)
}

fn collect(msg: &[u8], scope: &str, stream: &StreamInfo, out: &mut Vec<Event>) {
    let type_name = format!("{scope}.{}", string_field(msg, 1));
    if let Some(ev) = bytes_field(msg, 7).and_then(|opts| bytes_field(opts, EXT_EVENT)) {
        let key = Some(string_field(ev, 2)).filter(|k| !k.is_empty());
        let key_number = key.as_ref().and_then(|k| {
            fields(msg)?
                .into_iter()
                .filter(|f| f.number == 2)
                .filter_map(|f| f.bytes)
                .find(|fd| string_field(fd, 1) == *k && varint_field(fd, 5) == Some(TYPE_STRING))
                .and_then(|fd| varint_field(fd, 3))
                .map(|n| n as u32)
        });
        out.push(Event {
            type_name: type_name.clone(),
            subject: string_field(ev, 1),
            stream: stream.name.clone(),
            partition_key: key,
            partition_key_number: key_number,
            ttl: duration(bytes_field(ev, 3)),
            stream_subjects: stream.subjects.clone(),
            stream_max_age: stream.max_age,
            allow_msg_ttl: stream.allow_msg_ttl,
            allow_msg_schedules: stream.allow_msg_schedules,
            allow_atomic: stream.allow_atomic,
        });
    }
    for nested in fields(msg)
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f.number == 3)
    {
        if let Some(b) = nested.bytes {
            collect(b, &type_name, stream, out);
        }
    }
}
