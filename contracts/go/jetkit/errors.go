package jetkit

import (
	"errors"
	"fmt"
)

// Error codes, the same as @jetkit/contracts uses (contracts/src/errors.ts).
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
