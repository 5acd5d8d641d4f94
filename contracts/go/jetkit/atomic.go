package jetkit

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
	"google.golang.org/protobuf/proto"
)

// MaxAtomicBatch is the most events PublishAtomic sends in one batch: nats-server's default
// limit (max_batch_size), as in @jetkit/producers.
const MaxAtomicBatch = 1000

// JetStream error codes of atomic batch publish (ADR-50) that PublishAtomic names.
const (
	jsErrAtomicDisabled    = 10174
	jsErrAtomicTooLarge    = 10199
	jsErrAtomicDuplicateID = 10201
)

// AtomicEvent is one event of an atomic batch with its per-event options (ids, causation, trace).
type AtomicEvent struct {
	Message proto.Message
	Options PublishOptions
}

// AtomicPublished is JetStream's acknowledgement of an atomic batch: every event stored, at
// consecutive sequences FirstSeq..LastSeq of Stream, in the order given.
type AtomicPublished struct {
	Stream            string
	FirstSeq, LastSeq uint64
	Events            []Published
}

// PublishAtomic publishes events as one atomic batch (nats-server 2.12+, the stream's
// allow_atomic): every event is stored, or none is, and the one outcome says which.
//
// Refused before anything is sent, nothing stored: no events (CodeBatchEmpty), more than
// MaxAtomicBatch (CodeBatchTooLarge), events of two streams (CodeBatchStreams), a stream without
// allow_atomic (CodeUnsupported), a TTL or delivery time (CodeProducerOptions: they apply to
// single publishes), an event breaking its contract (CodeViolation). The server's refusals store
// nothing either: atomic publish disabled (CodeUnsupported), over its limit (CodeBatchTooLarge),
// an event whose msg id the stream already holds (CodeRejected: the batch was refused whole; after
// a CodeOutcomeUnknown this means the earlier attempt was stored). No answer to the commit is
// CodeOutcomeUnknown: the batch may be stored; publishing it again with the same ids stores it at
// most once.
func (p *Producer) PublishAtomic(ctx context.Context, events []AtomicEvent) (AtomicPublished, error) {
	if len(events) == 0 {
		return AtomicPublished{}, newError(CodeBatchEmpty, nil, "an atomic batch needs at least one event")
	}
	if len(events) > MaxAtomicBatch {
		return AtomicPublished{}, newError(CodeBatchTooLarge, nil,
			"an atomic batch holds at most %d events, got %d: split it (each part is then atomic on its own)", MaxAtomicBatch, len(events))
	}
	msgs := make([]*nats.Msg, len(events))
	out := AtomicPublished{Events: make([]Published, len(events))}
	var first Event
	for i, a := range events {
		ev, err := EventOf(a.Message)
		if err != nil {
			return AtomicPublished{}, err
		}
		if i == 0 {
			first = ev
		} else if ev.Stream != first.Stream {
			return AtomicPublished{}, newError(CodeBatchStreams, nil,
				"an atomic batch is stored by one stream: event %d (%s) is in stream %s, event 0 (%s) in %s", i, ev.Type, ev.Stream, first.Type, first.Stream)
		}
		if a.Options.TTL != 0 || !a.Options.DeliverAt.IsZero() || a.Options.Delay != 0 {
			return AtomicPublished{}, newError(CodeProducerOptions, nil,
				"event %d of an atomic batch has a TTL or a delivery time: those apply to single publishes (Publish)", i)
		}
		if p.Validate {
			if err := Validate(a.Message); err != nil {
				return AtomicPublished{}, err
			}
		}
		payload, err := Marshal(a.Message)
		if err != nil {
			return AtomicPublished{}, newError(CodeUndecodable, err, "%s could not be encoded", ev.Type)
		}
		msg, pub := p.message(ev, payload, partitionKeyOf(ev, a.Message), a.Options)
		msgs[i], out.Events[i] = msg, pub
	}
	if !first.AllowAtomic {
		return AtomicPublished{}, newError(CodeUnsupported, nil,
			"stream %s does not take atomic batches: set allow_atomic: true on its (jetkit.v1.stream) option and apply the streams, or publish the events one by one", first.Stream)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.timeout())
		defer cancel()
	}
	ack, err := jetstreamext.PublishMsgBatch(ctx, p.js, msgs)
	if err != nil {
		return AtomicPublished{}, atomicError(first, len(msgs), err)
	}
	out.Stream = ack.Stream
	out.LastSeq = ack.Sequence
	out.FirstSeq = ack.Sequence - uint64(len(msgs)) + 1
	for i := range out.Events {
		out.Events[i].Stream = ack.Stream
		out.Events[i].Seq = out.FirstSeq + uint64(i)
	}
	return out, nil
}

// atomicError names what a failed atomic publish means for the batch.
func atomicError(ev Event, n int, err error) error {
	var api *jetstream.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode {
		case jsErrAtomicDisabled:
			return newError(CodeUnsupported, err,
				"stream %s refused the atomic batch: atomic publish is not enabled on it; apply the streams from the contracts (allow_atomic)", ev.Stream)
		case jsErrAtomicTooLarge:
			return newError(CodeBatchTooLarge, err, "the server refused a batch of %d events: over its max_batch_size; split it", n)
		case jsErrAtomicDuplicateID:
			return newError(CodeRejected, err,
				"stream %s refused the whole batch: it already holds an event's msg id (nothing of this batch was stored; after an unknown outcome, the earlier attempt was)", ev.Stream)
		}
		if api.Code >= 400 && api.Code < 500 {
			return newError(CodeRejected, err, "stream %s refused the atomic batch (nothing stored): %s", ev.Stream, api.Description)
		}
	}
	return newError(CodeOutcomeUnknown, err,
		"no definite answer to the atomic batch of %d events for stream %s: it may be stored; publish it again with the same ids (stored at most once) to find out", n, ev.Stream)
}
