//! How a failed publish attempt is handled: refused, not sent, or no definite answer.

use std::error::Error as _;
use std::time::Duration;

use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::{self, ErrorCode};

/// What one failed attempt says about the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// JetStream answered that it did not store the event; the same attempt would be refused.
    Refused,
    /// The client could not hand the message to the connection, and retrying cannot help.
    Unsent,
    /// No definite answer, or a transient client state: try again with the same msg id.
    /// `sent` says whether this attempt may have reached the stream.
    Ambiguous { sent: bool },
}

/// Sorts a failure of `Context::publish_with_headers`, before the message is handed to the
/// connection.
pub(crate) fn classify_send(e: &PublishError) -> Attempt {
    match e.kind() {
        // Too many acks pending, or the connection's queue is full for the context timeout.
        PublishErrorKind::MaxAckPending | PublishErrorKind::TimedOut => {
            Attempt::Ambiguous { sent: false }
        }
        // An invalid subject, over the server's max_payload, the client is gone.
        _ => Attempt::Unsent,
    }
}

/// Sorts a failure of the ack future: the message was handed to the connection.
pub(crate) fn classify_ack(e: &PublishError) -> Attempt {
    if let Some(api) = e
        .source()
        .and_then(|s| s.downcast_ref::<jetstream::Error>())
    {
        // 10158 "duplicate message id is in process": an earlier attempt with this msg id
        // reached the stream and is being stored; the next answer is its ack (duplicate).
        if api.code() >= 500 || api.error_code() == ErrorCode::STREAM_DUPLICATE_MESSAGE_CONFLICT {
            return Attempt::Ambiguous { sent: true };
        }
        return Attempt::Refused;
    }
    match e.kind() {
        PublishErrorKind::WrongLastMessageId | PublishErrorKind::WrongLastSequence => {
            Attempt::Refused
        }
        // Ack timeouts (the ack may be lost), no responders (StreamNotFound: no stream captures
        // the subject yet, no leader, a restarting server), a dropped connection (BrokenPipe),
        // an unreadable ack.
        _ => Attempt::Ambiguous { sent: true },
    }
}

/// A uniformly random wait in [0, max) ("full jitter"), so retrying producers spread out.
pub(crate) fn jitter(max: Duration) -> Duration {
    let random = uuid::Uuid::new_v4().as_u128() as u64;
    Duration::from_nanos(random % (max.as_nanos() as u64).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: u64) -> PublishError {
        let body = format!(r#"{{"code":{status},"err_code":{code},"description":"x"}}"#);
        let err: jetstream::Error = serde_json::from_str(&body).unwrap();
        PublishError::with_source(PublishErrorKind::Other, err)
    }

    #[test]
    fn acks_are_sorted_into_refusals_and_no_answers() {
        let retry = Attempt::Ambiguous { sent: true };
        assert_eq!(
            classify_ack(&api(409, 10158)),
            retry,
            "10158 duplicate in process"
        );
        assert_eq!(classify_ack(&api(503, 10008)), retry, "server error");
        assert_eq!(
            classify_ack(&api(400, 10054)),
            Attempt::Refused,
            "max msg size"
        );
        assert_eq!(
            classify_ack(&api(400, 10071)),
            Attempt::Refused,
            "wrong last sequence"
        );
        for kind in [
            PublishErrorKind::TimedOut,
            PublishErrorKind::StreamNotFound,
            PublishErrorKind::BrokenPipe,
        ] {
            assert_eq!(classify_ack(&PublishError::new(kind)), retry, "{kind}");
        }
    }

    #[test]
    fn send_failures_say_nothing_was_sent() {
        let transient = Attempt::Ambiguous { sent: false };
        assert_eq!(
            classify_send(&PublishError::new(PublishErrorKind::MaxAckPending)),
            transient
        );
        assert_eq!(
            classify_send(&PublishError::new(PublishErrorKind::TimedOut)),
            transient
        );
        let over = PublishError::new(PublishErrorKind::MaxPayloadExceeded);
        assert_eq!(classify_send(&over), Attempt::Unsent);
    }

    #[test]
    fn jitter_stays_below_its_bound() {
        let max = Duration::from_millis(25);
        assert!((0..1000).map(|_| jitter(max)).all(|d| d < max));
    }
}
