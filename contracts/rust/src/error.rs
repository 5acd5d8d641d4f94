use std::fmt;

/// Error codes, the same as `@jetkit/contracts` uses (contracts/src/errors.ts).
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
    /// JetStream refused or did not acknowledge a publish.
    pub const PUBLISH_FAILED: &str = "JK_PRODUCER_PUBLISH_FAILED";
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
