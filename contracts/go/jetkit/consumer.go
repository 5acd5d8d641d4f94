package jetkit

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// Delivery is a received event that passed the checks of contracts/WIRE.md §4.
type Delivery struct {
	Event   Event
	Headers Received
	// Message is the decoded event; type-assert it to the generated type.
	Message proto.Message
	// Trace is the context of the consumer's span, a child of the producer's traceparent (or a
	// new trace when the event carried none). Publish follow-up events with Trace.String().
	Trace TraceContext
	Msg   jetstream.Msg
}

// Decode checks a received message against the wire rules and its contract: headers, ce-type
// names an event published on this subject, the payload decodes and satisfies the field rules.
// A failure is an *Error whose FailureClassOf tells how to dead-letter it.
func Decode(msg jetstream.Msg) (*Delivery, error) {
	r, data, err := ReadEvent(msg.Headers(), msg.Data())
	if err != nil {
		return nil, err
	}
	ev, err := EventByType(r.Type)
	if err != nil {
		return nil, err
	}
	if ev.Subject != msg.Subject() {
		return nil, newError(CodeUnknownType, nil, "ce-type %s is published on %s, not on %s", r.Type, ev.Subject, msg.Subject())
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(ev.Descriptor.FullName())
	if err != nil {
		return nil, newError(CodeUnknownType, err, "no Go type is linked for %s; import its generated package", r.Type)
	}
	m := mt.New().Interface()
	if err := proto.Unmarshal(data, m); err != nil {
		return nil, newError(CodeUndecodable, err, "payload is not a %s: %v", r.Type, err)
	}
	if err := Validate(m); err != nil {
		return nil, err
	}
	trace := NewTrace()
	if parent, ok := ParseTraceparent(r.Traceparent); ok {
		trace = parent.Child()
	}
	return &Delivery{Event: ev, Headers: r, Message: m, Trace: trace, Msg: msg}, nil
}

// FailureClassOf maps a Decode error onto the dead-letter failure class; a handler's error is
// handler_permanent.
func FailureClassOf(err error) FailureClass {
	switch {
	case IsCode(err, CodeUnknownType), IsCode(err, CodeUnknownSubject):
		return FailureUnknownType
	case IsCode(err, CodeViolation):
		return FailureContractViolation
	case IsCode(err, CodeUndecodable), IsCode(err, CodeWireHeaders), IsCode(err, CodeWireStructured):
		return FailureUndecodable
	}
	return FailureHandlerPermanent
}

// DeadLetter stores msg in the DLQ stream under dlq.<subject> with the headers of
// contracts/WIRE.md §5, then terminates it so JetStream does not redeliver it.
func DeadLetter(ctx context.Context, js jetstream.JetStream, msg jetstream.Msg, class FailureClass, reason error) error {
	meta, err := msg.Metadata()
	if err != nil {
		return fmt.Errorf("dead-letter: message has no JetStream metadata: %w", err)
	}
	now := time.Now()
	err = publishDeadLetter(ctx, js, msg, "DLQ", DeadLetterInput{
		Stream: meta.Stream, Sequence: meta.Sequence.Stream, Subject: msg.Subject(),
		Consumer: meta.Consumer, Deliveries: meta.NumDelivered, FailureClass: class,
		Reason: reason.Error(), FirstFailure: now, LastFailure: now,
	})
	if err != nil {
		return err
	}
	return msg.Term()
}

// publishDeadLetter stores a copy of msg under dlq.<subject> in dlqStream with the headers of
// contracts/WIRE.md §5. Its Nats-Msg-Id (dlq:<stream>:<seq>:<consumer>) makes a second dead
// letter of the same message by the same consumer a duplicate.
func publishDeadLetter(ctx context.Context, js jetstream.JetStream, msg jetstream.Msg, dlqStream string, in DeadLetterInput) error {
	hs := DeadLetterHeaders(OrderedHeaders(msg.Headers()), in)
	out := &nats.Msg{Subject: DeadLetterSubject(msg.Subject()), Header: NatsHeader(hs), Data: msg.Data()}
	// refused unless the DLQ stream stores it (contracts/WIRE.md §5)
	if _, err := js.PublishMsg(ctx, out, jetstream.WithExpectStream(dlqStream)); err != nil {
		return fmt.Errorf("dead-letter %s seq %d: %w", in.Stream, in.Sequence, err)
	}
	return nil
}

var wireOrder = []string{
	HeaderID, HeaderSpecVersion, HeaderType, HeaderSource, HeaderTime, HeaderDataContentType,
	HeaderPartitionKey, HeaderCorrelationID, HeaderCausationID, HeaderTraceparent, HeaderTracestate,
	HeaderCETraceparent, HeaderCETracestate, HeaderReplayOf, HeaderMsgID,
	HeaderDlqStream, HeaderDlqSequence, HeaderDlqSubject, HeaderDlqConsumer, HeaderDlqDeliveries,
	HeaderDlqFailureClass, HeaderDlqReason, HeaderDlqFirstFailure, HeaderDlqLastFailure,
}

// OrderedHeaders lists received headers in the order of contracts/WIRE.md (nats.go hands them
// over as a map); names WIRE.md does not know follow, sorted.
func OrderedHeaders(h nats.Header) []Header {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	rank := func(n string) int {
		if i := slices.Index(wireOrder, n); i >= 0 {
			return i
		}
		return len(wireOrder)
	}
	slices.SortFunc(names, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
	var out []Header
	for _, n := range names {
		for _, v := range h[n] {
			out = append(out, Header{n, v})
		}
	}
	return out
}
