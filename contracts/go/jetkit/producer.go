package jetkit

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
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
	// RegistryVersion, when set, is the contract registry version this producer's generated code
	// was pushed as (`jetkit contracts list`): every event carries ce-dataschema
	// jetkit:registry/<version>#<type> (WIRE.md §4.4), so a consumer built before the type can
	// decode it from the registry.
	RegistryVersion int
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
	// TTL is the event's lifetime in its stream (Nats-TTL, whole seconds, at least 1 s): removed
	// after it, delivered or not. Default: the contract's ttl. Needs allow_msg_ttl on the stream.
	TTL time.Duration
	// DeliverAt delivers the event at this time instead of now (a nats-server message schedule):
	// it waits in the stream on <subject>.scheduled.<msg id> and the server publishes it to its
	// subject then. The ack is the schedule's; CancelScheduled cancels it. Needs
	// allow_msg_schedules and stream subjects that capture <subject>.scheduled.>.
	DeliverAt time.Time
	// Delay is DeliverAt as a duration from now.
	Delay time.Duration
}

// schedulePastTolerance is how far in the past DeliverAt may lie (a Delay of 0, clocks a little
// apart): delivered at once. Further back is a mistake, refused (the same rule as TypeScript).
const schedulePastTolerance = time.Second

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
	msg, pub := p.message(ev, payload, key, o)
	if err := timing(ev, o, msg); err != nil {
		return Published{}, err
	}
	ack, err := p.publishWithRetry(ctx, ev, msg)
	if err != nil {
		return Published{}, err
	}
	pub.Stream, pub.Seq, pub.Duplicate = ack.Stream, ack.Sequence, ack.Duplicate
	return pub, nil
}

// message is the NATS message of one event (subject and CloudEvents headers from the contract and
// o) and what its ack will be reported as, before it is sent.
func (p *Producer) message(ev Event, payload []byte, key string, o PublishOptions) (*nats.Msg, Published) {
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
		Dataschema: p.dataschema(ev),
	})
	msg := &nats.Msg{Subject: ev.Subject, Header: NatsHeader(hs), Data: payload}
	return msg, Published{Subject: ev.Subject, ID: o.ID, MsgID: msg.Header.Get(HeaderMsgID)}
}

// timing applies a publish's TTL and delivery time to msg (its subject and the Nats-TTL /
// Nats-Schedule headers), or says why the stream cannot take them; nothing is sent then.
func timing(ev Event, o PublishOptions, msg *nats.Msg) error {
	ttl := o.TTL
	if ttl == 0 {
		ttl = ev.TTL
	}
	at := o.DeliverAt
	if at.IsZero() && o.Delay != 0 {
		at = time.Now().Add(o.Delay)
	}
	if ttl == 0 && at.IsZero() {
		return nil
	}
	ttlHeader := ""
	if ttl != 0 {
		if ttl < time.Second {
			return newError(CodeProducerOptions, nil, "TTL must be at least 1s (the server counts whole seconds), got %s", ttl)
		}
		if !ev.AllowMsgTTL {
			return newError(CodeUnsupported, nil,
				"%s cannot be published with a TTL: stream %s does not allow per-message TTLs. Set allow_msg_ttl: true on its (jetkit.v1.stream) option and apply the streams, or publish without TTL",
				ev.Type, ev.Stream)
		}
		ttlHeader = fmt.Sprintf("%ds", int64((ttl+time.Second-1)/time.Second))
	}
	if at.IsZero() {
		msg.Header.Set("Nats-TTL", ttlHeader)
		return nil
	}
	if late := time.Since(at); late > schedulePastTolerance {
		return newError(CodeProducerOptions, nil,
			"DeliverAt %s is %d s in the past: schedule a future time, or publish without DeliverAt/Delay to deliver now",
			at.UTC().Format(time.RFC3339), int64(late/time.Second))
	}
	if ahead := time.Until(at); ev.StreamMaxAge > 0 && ahead >= ev.StreamMaxAge {
		return newError(CodeProducerOptions, nil,
			"DeliverAt %s is %d s ahead, beyond stream %s's max_age of %d s: the schedule would expire before it fires. Schedule sooner, or raise max_age on the stream's (jetkit.v1.stream) option and apply the streams",
			at.UTC().Format(time.RFC3339), int64(ahead/time.Second), ev.Stream, int64(ev.StreamMaxAge/time.Second))
	}
	scheduled := scheduleSubject(ev, msg.Header.Get(HeaderMsgID))
	captured := false
	for _, s := range ev.StreamSubjects {
		if subjectMatches(s, scheduled) {
			captured = true
		}
	}
	if !ev.AllowMsgSchedules || !captured {
		why := "does not allow message schedules"
		if ev.AllowMsgSchedules {
			why = fmt.Sprintf("does not capture %s.scheduled.> (its subjects: %s)", ev.Subject, strings.Join(ev.StreamSubjects, ", "))
		}
		return newError(CodeUnsupported, nil,
			"%s cannot be scheduled: stream %s %s. Set allow_msg_schedules: true on its (jetkit.v1.stream) option with subjects that capture <subject>.scheduled.>, apply the streams, or publish without DeliverAt/Delay",
			ev.Type, ev.Stream, why)
	}
	// The schedule waits on its own subject; at its time the server publishes its body and
	// headers to the target. The event's TTL applies to what it publishes.
	msg.Subject = scheduled
	msg.Header.Set("Nats-Schedule", "@at "+at.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
	msg.Header.Set("Nats-Schedule-Target", ev.Subject)
	if ttlHeader != "" {
		msg.Header.Set("Nats-Schedule-TTL", ttlHeader)
	}
	return nil
}

// scheduleSubject is where a scheduled event waits: <subject>.scheduled.<msg id>.
func scheduleSubject(ev Event, msgID string) string { return ev.Subject + ".scheduled." + msgID }

// CancelScheduled cancels an event published with DeliverAt/Delay that was not delivered yet.
// True when it was cancelled; false when there was nothing to cancel (delivered already,
// cancelled, or never scheduled).
func (p *Producer) CancelScheduled(ctx context.Context, ev Event, msgID string) (bool, error) {
	req, _ := json.Marshal(map[string]string{"filter": scheduleSubject(ev, msgID)})
	m, err := p.js.Conn().RequestWithContext(ctx, "$JS.API.STREAM.PURGE."+ev.Stream, req)
	if err != nil {
		return false, newError(CodeOutcomeUnknown, err, "could not cancel scheduled %s %s: no answer from stream %s; call again", ev.Type, msgID, ev.Stream)
	}
	var r struct {
		Purged uint64 `json:"purged"`
		Error  *struct {
			Description string `json:"description"`
			ErrCode     int    `json:"err_code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return false, newError(CodeRejected, err, "could not cancel scheduled %s %s: unreadable answer", ev.Type, msgID)
	}
	if r.Error != nil {
		return false, newError(CodeRejected, nil, "could not cancel scheduled %s %s: %s (%d)", ev.Type, msgID, r.Error.Description, r.Error.ErrCode)
	}
	return r.Purged > 0, nil
}

// subjectMatches reports whether subject is matched by pattern (NATS wildcards * and >).
func subjectMatches(pattern, subject string) bool {
	ps, ss := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, p := range ps {
		if p == ">" {
			return i < len(ss)
		}
		if i >= len(ss) || (p != "*" && p != ss[i]) {
			return false
		}
	}
	return len(ps) == len(ss)
}

// dataschema is the ce-dataschema of ev's events: its registry version and type, or "".
func (p *Producer) dataschema(ev Event) string {
	if p.RegistryVersion <= 0 {
		return ""
	}
	return fmt.Sprintf("jetkit:registry/%d#%s", p.RegistryVersion, ev.Type)
}
