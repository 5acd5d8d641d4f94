use std::fmt;

/// Error codes, the same as `@jetkit/contracts` uses (contracts/src/errors.ts) and, for
/// publishing, the same as `@jetkit/producers` (producers/src/errors.ts) and the Go helper.
pub mod codes {
    /// The buf image could not be read.
    pub const CATALOG_INVALID: &str = "JK_CATALOG_INVALID";
    /// A message type is not an event of the contracts.
    pub const UNKNOWN_TYPE: &str = "JK_CONTRACT_UNKNOWN_TYPE";
    /// A subject names no event of the contracts.
    pub const UNKNOWN_SUBJECT: &str = "JK_CONTRACT_UNKNOWN_SUBJECT";
    /// The payload is not the protobuf encoding of the contract's message.
    pub const UNDECODABLE: &str = "JK_CONTRACT_UNDECODABLE";
    /// The headers of a received message break contracts/WIRE.md.
    pub const WIRE_HEADERS: &str = "JK_WIRE_HEADERS";
    /// A structured-mode event (content-type application/cloudevents+json) cannot be read.
    pub const WIRE_STRUCTURED: &str = "JK_WIRE_STRUCTURED";
    /// A dead letter could not be stored (`dead_letter`: JetStream refused or did not
    /// acknowledge it); the message is not terminated, so JetStream delivers it again.
    pub const PUBLISH_FAILED: &str = "JK_PRODUCER_PUBLISH_FAILED";
    /// JetStream refused a publish (an API error with status 4xx, e.g. the stream's
    /// max_msg_size), or the client could not send it before anything was sent. The event is
    /// not stored; publishing it unchanged would be refused again.
    pub const REJECTED: &str = "JK_PRODUCER_REJECTED";
    /// A publish got no definite answer before its deadline. The event MAY be stored: publish it
    /// again with the same id / msg id within the stream's duplicate window; an ack with
    /// `duplicate == true` means it was stored. Never used for a refusal.
    pub const OUTCOME_UNKNOWN: &str = "JK_PRODUCER_OUTCOME_UNKNOWN";
    /// A publish option is invalid (a TTL under 1 s, a delivery time in the past or beyond the
    /// stream's max age); nothing was sent.
    pub const PRODUCER_OPTIONS: &str = "JK_PRODUCER_OPTIONS";
    /// A publish asked for a TTL or a delivery time its stream does not allow (`allow_msg_ttl` /
    /// `allow_msg_schedules`, or subjects that do not capture `<subject>.scheduled.>`); nothing
    /// was sent.
    pub const UNSUPPORTED: &str = "JK_PRODUCER_UNSUPPORTED";
    /// `publish_atomic` was given no events.
    pub const BATCH_EMPTY: &str = "JK_PRODUCER_BATCH_EMPTY";
    /// An atomic batch over 1000 events, or over the server's limit.
    pub const BATCH_TOO_LARGE: &str = "JK_PRODUCER_BATCH_TOO_LARGE";
    /// An atomic batch with events of more than one stream.
    pub const BATCH_STREAMS: &str = "JK_PRODUCER_BATCH_STREAMS";
    /// An option of a consumer group member is invalid (the same code as the TypeScript and Go
    /// members).
    pub const CONSUMER_CONFIG: &str = "JK_CONSUMER_CONFIG";
    /// The consumer group's bucket cannot be used, or the group exists with another partition
    /// count or mode.
    pub const CONSUMER_GROUP: &str = "JK_CONSUMER_GROUP";
}

/// The one error type of this crate: a stable code and a message that says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: &'static str,
    pub message: String,
}

impl Error {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
