package jetkit

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

// Producer publishes contract events on JetStream per contracts/WIRE.md: the subject comes from
// the contract, the payload is the protobuf encoding, the headers are CloudEvents binary mode
// and Nats-Msg-Id makes a retry with the same id a no-op within the stream's duplicate window.
type Producer struct {
	js     jetstream.JetStream
	source string
	// Validate refuses an event that breaks its contract's field rules before anything is sent
	// (protovalidate). On by default; turn it off only for tools that send known-bad events.
	Validate bool
	// Timeout bounds one Publish (all its attempts) when its ctx has no deadline;
	// DefaultPublishTimeout when zero. A ctx deadline, when there is one, is used instead.
	Timeout time.Duration
}

// NewProducer returns a producer for the service named service (ce-source "/jetkit/<service>").
func NewProducer(js jetstream.JetStream, service string) *Producer {
	return &Producer{js: js, source: "/jetkit/" + service, Validate: true}
}

// PublishOptions are the per-event inputs of the headers; every field is optional.
type PublishOptions struct {
	// ID is ce-id; NewID() when empty. Reuse it when retrying the same event.
	ID string
	// MsgID is Nats-Msg-Id; ID when empty.
	MsgID string
	// Time is ce-time; now when zero.
	Time time.Time
	// CorrelationID defaults to ID (the first event of a flow starts the correlation).
	CorrelationID string
	// CausationID is the ce-id of the event that caused this one.
	CausationID string
	// Traceparent and Tracestate continue a W3C trace (e.g. Delivery.Trace.String() of the
	// event being handled, or the span context of your OpenTelemetry span).
	Traceparent, Tracestate string
}

// Published is JetStream's acknowledgement of one event.
type Published struct {
	Subject, Stream string
	Seq             uint64
	// Duplicate is true when the stream already had a message with this Nats-Msg-Id.
	Duplicate bool
	ID, MsgID string
}

// Publish encodes m, checks it against its contract and publishes it on its subject.
//
// It returns the stream's ack, or an error that says what is known:
//   - CodeRejected: JetStream refused the event (an API error with status 4xx, e.g. the
//     stream's max_msg_size), or the client could not send it (over max_payload, a closed
//     connection); it is not stored and the same publish would be refused again.
//   - CodeOutcomeUnknown: no definite answer before the deadline (ctx's, else p.Timeout) or
//     before ctx was cancelled, after at least one attempt was sent. The event MAY be stored:
//     publish it again with the same PublishOptions.ID (and MsgID) within the stream's
//     duplicate window; an ack with Duplicate=true means the first copy was stored.
//
// Timeouts (each attempt waits at most 2 s for its ack), no responders (no stream yet, a leader
// election, a restarting server), disconnects, server errors (5xx) and 10158 "duplicate message
// id is in process" are retried with the same Nats-Msg-Id, headers and payload, with exponential
// backoff (25 ms doubling to 250 ms, full jitter), until the deadline, so a stored event is
// never reported as refused. ctx cancelled or expired before anything was sent returns
// ctx.Err(), wrapped.
func (p *Producer) Publish(ctx context.Context, m proto.Message, opts PublishOptions) (Published, error) {
	ev, err := EventOf(m)
	if err != nil {
		return Published{}, err
	}
	if p.Validate {
		if err := Validate(m); err != nil {
			return Published{}, err
		}
	}
	payload, err := Marshal(m)
	if err != nil {
		return Published{}, newError(CodeUndecodable, err, "%s could not be encoded", ev.Type)
	}
	return p.publish(ctx, ev, payload, partitionKeyOf(ev, m), opts)
}

// PublishEncoded publishes an already-encoded payload as an event of type ev, unchecked: for
// tools and tests (e.g. sending a malformed message on purpose). Prefer Publish.
func (p *Producer) PublishEncoded(ctx context.Context, ev Event, payload []byte, partitionKey string, opts PublishOptions) (Published, error) {
	return p.publish(ctx, ev, payload, partitionKey, opts)
}

func (p *Producer) publish(ctx context.Context, ev Event, payload []byte, key string, o PublishOptions) (Published, error) {
	if o.ID == "" {
		o.ID = NewID()
	}
	if o.Time.IsZero() {
		o.Time = time.Now()
	}
	if o.CorrelationID == "" {
		o.CorrelationID = o.ID
	}
	hs := EventHeaders(HeaderInput{
		ID: o.ID, Type: ev.Type, Source: p.source, Time: o.Time, PartitionKey: key,
		CorrelationID: o.CorrelationID, CausationID: o.CausationID,
		Traceparent: o.Traceparent, Tracestate: o.Tracestate, MsgID: o.MsgID,
	})
	msg := &nats.Msg{Subject: ev.Subject, Header: NatsHeader(hs), Data: payload}
	ack, err := p.publishWithRetry(ctx, ev, msg)
	if err != nil {
		return Published{}, err
	}
	return Published{
		Subject: ev.Subject, Stream: ack.Stream, Seq: ack.Sequence, Duplicate: ack.Duplicate,
		ID: o.ID, MsgID: msg.Header.Get(HeaderMsgID),
	}, nil
}
