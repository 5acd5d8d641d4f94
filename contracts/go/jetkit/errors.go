package jetkit

import (
	"errors"
	"fmt"
)

// Error codes, the same as @jetkit/contracts uses (contracts/src/errors.ts) and, for
// publishing, the same as @jetkit/producers (producers/src/errors.ts) and the Rust helper.
const (
	// CodeUnknownType: a message type is not an event of the contracts.
	CodeUnknownType = "JK_CONTRACT_UNKNOWN_TYPE"
	// CodeUnknownSubject: a subject names no event of the contracts.
	CodeUnknownSubject = "JK_CONTRACT_UNKNOWN_SUBJECT"
	// CodeUndecodable: the payload is not the protobuf encoding of the contract's message.
	CodeUndecodable = "JK_CONTRACT_UNDECODABLE"
	// CodeViolation: an event breaks its contract's field rules (protovalidate).
	CodeViolation = "JK_CONTRACT_VIOLATION"
	// CodeWireHeaders: the headers of a received message break contracts/WIRE.md.
	CodeWireHeaders = "JK_WIRE_HEADERS"
	// CodeWireStructured: a structured-mode event (content-type application/cloudevents+json)
	// cannot be read.
	CodeWireStructured = "JK_WIRE_STRUCTURED"
	// CodeRejected: JetStream refused a publish (an API error with status 4xx, e.g. the stream's
	// max_msg_size), or the client could not send it at all before anything was sent. The
	// event is not stored; publishing it unchanged would be refused again.
	CodeRejected = "JK_PRODUCER_REJECTED"
	// CodeOutcomeUnknown: a publish got no definite answer before its deadline (or its ctx was
	// cancelled) after at least one attempt was sent. The event MAY be stored: publish it again
	// with the same msg id within the stream's duplicate window; an ack with Duplicate=true
	// means it was stored. Never used for a refusal.
	CodeOutcomeUnknown = "JK_PRODUCER_OUTCOME_UNKNOWN"
	// CodeProducerOptions: a publish option is invalid (a TTL under 1 s, a delivery time in the
	// past or beyond the stream's max age); nothing was sent.
	CodeProducerOptions = "JK_PRODUCER_OPTIONS"
	// CodeUnsupported: a publish asked for a TTL or a delivery time its stream does not allow
	// (allow_msg_ttl / allow_msg_schedules, or subjects that do not capture <subject>.scheduled.>);
	// nothing was sent.
	CodeUnsupported = "JK_PRODUCER_UNSUPPORTED"
	// CodeBatchEmpty: PublishAtomic was given no events (the same code as @jetkit/producers).
	CodeBatchEmpty = "JK_PRODUCER_BATCH_EMPTY"
	// CodeBatchTooLarge: an atomic batch over 1000 events, or over the server's limit.
	CodeBatchTooLarge = "JK_PRODUCER_BATCH_TOO_LARGE"
	// CodeBatchStreams: an atomic batch with events of more than one stream.
	CodeBatchStreams = "JK_PRODUCER_BATCH_STREAMS"
	// CodeConsumerConfig: an option of a consumer group member is invalid (the same code as
	// @jetkit/consumers).
	CodeConsumerConfig = "JK_CONSUMER_CONFIG"
	// CodeConsumerGroup: the consumer group's bucket cannot be used, or the group exists with
	// another partition count or mode (the same code as @jetkit/consumers).
	CodeConsumerGroup = "JK_CONSUMER_GROUP"
	// CodePermanent: a handler failure that no retry can fix (see Permanent): the message is
	// dead-lettered at once.
	CodePermanent = "JK_CONSUMER_PERMANENT"
)

// Error is the one error type of this package: a stable code, a message that says what to do,
// and the underlying cause when there is one.
type Error struct {
	Code    string
	Message string
	Cause   error
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

func (e *Error) Unwrap() error { return e.Cause }

// IsCode reports whether err (or an error it wraps) is a jetkit *Error with the given code.
func IsCode(err error, code string) bool {
	var je *Error
	return errors.As(err, &je) && je.Code == code
}

func newError(code string, cause error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Cause: cause}
}

// Permanent marks a handler error that no retry can fix: a group member dead-letters the message
// at once (failure class handler_permanent) instead of retrying it.
func Permanent(err error) error {
	return &Error{Code: CodePermanent, Message: err.Error(), Cause: err}
}
