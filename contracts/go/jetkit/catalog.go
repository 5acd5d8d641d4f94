package jetkit

import (
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	jetkitv1 "jetkit.dev/contracts/gen/go/jetkit/v1"
)

// Event is what the contracts say about one event message: read from the (jetkit.v1.event)
// and (jetkit.v1.stream) options of the registered descriptors, never typed by hand.
type Event struct {
	// Type is the fully-qualified message name, the ce-type header.
	Type string
	// Subject is the concrete NATS subject the event is published on.
	Subject string
	// Stream is the JetStream stream that captures the event's domain.
	Stream string
	// PartitionKey is the proto name of the string field that keys the event, or "".
	PartitionKey string
	// TTL is the contract's lifetime of the event in its stream (Nats-TTL), or 0.
	TTL time.Duration
	// StreamSubjects, StreamMaxAge, AllowMsgTTL and AllowMsgSchedules are the stream's
	// (jetkit.v1.stream) options that per-message TTLs and schedules depend on.
	StreamSubjects    []string
	StreamMaxAge      time.Duration
	AllowMsgTTL       bool
	AllowMsgSchedules bool
	// AllowAtomic is the stream's allow_atomic: atomic batches (PublishAtomic) are accepted.
	AllowAtomic bool
	// Descriptor is the message descriptor of the event.
	Descriptor protoreflect.MessageDescriptor
}

// EventOf returns the contract of an event message, e.g. EventOf(&orderv1.OrderFulfillmentCompleted{}).
func EventOf(m proto.Message) (Event, error) {
	return eventOfDescriptor(m.ProtoReflect().Descriptor())
}

// EventByType returns the contract of the event with the fully-qualified name typeName.
// The generated package of that event must be imported (linked) into the program.
func EventByType(typeName string) (Event, error) {
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(typeName))
	if err != nil {
		return Event{}, newError(CodeUnknownType, err,
			"%q is not a registered message; import its generated package (jetkit.dev/contracts/gen/go/...)", typeName)
	}
	md, ok := d.(protoreflect.MessageDescriptor)
	if !ok {
		return Event{}, newError(CodeUnknownType, nil, "%q is not a message", typeName)
	}
	return eventOfDescriptor(md)
}

// EventBySubject returns the contract of the event published on subject.
func EventBySubject(subject string) (Event, error) {
	for _, e := range Events() {
		if e.Subject == subject {
			return e, nil
		}
	}
	return Event{}, newError(CodeUnknownSubject, nil,
		"no registered event is published on %q; check the subject or import the generated package that declares it", subject)
}

// Events lists every event of the registered contract files, sorted by nothing in particular.
func Events() []Event {
	var out []Event
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		collectEvents(fd.Messages(), &out)
		return true
	})
	return out
}

func collectEvents(ms protoreflect.MessageDescriptors, out *[]Event) {
	for i := 0; i < ms.Len(); i++ {
		if e, err := eventOfDescriptor(ms.Get(i)); err == nil {
			*out = append(*out, e)
		}
		collectEvents(ms.Get(i).Messages(), out)
	}
}

func eventOfDescriptor(md protoreflect.MessageDescriptor) (Event, error) {
	opts, _ := md.Options().(*descriptorpb.MessageOptions)
	if opts == nil || !proto.HasExtension(opts, jetkitv1.E_Event) {
		return Event{}, newError(CodeUnknownType, nil,
			"%s has no (jetkit.v1.event) option, so it is not an event; only event messages can be published", md.FullName())
	}
	ev := proto.GetExtension(opts, jetkitv1.E_Event).(*jetkitv1.EventOptions)
	so := &jetkitv1.StreamOptions{}
	if fo, _ := md.ParentFile().Options().(*descriptorpb.FileOptions); fo != nil && proto.HasExtension(fo, jetkitv1.E_Stream) {
		so = proto.GetExtension(fo, jetkitv1.E_Stream).(*jetkitv1.StreamOptions)
	}
	return Event{
		Type:              string(md.FullName()),
		Subject:           ev.GetSubject(),
		Stream:            so.GetName(),
		PartitionKey:      ev.GetPartitionKey(),
		TTL:               ev.GetTtl().AsDuration(),
		StreamSubjects:    so.GetSubjects(),
		StreamMaxAge:      so.GetMaxAge().AsDuration(),
		AllowMsgTTL:       so.GetAllowMsgTtl(),
		AllowMsgSchedules: so.GetAllowMsgSchedules(),
		AllowAtomic:       so.GetAllowAtomic(),
		Descriptor:        md,
	}, nil
}

// partitionKeyOf is the value of the event's partition key field, or "".
func partitionKeyOf(e Event, m proto.Message) string {
	if e.PartitionKey == "" {
		return ""
	}
	fd := m.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(e.PartitionKey))
	if fd == nil || fd.Kind() != protoreflect.StringKind {
		return ""
	}
	return m.ProtoReflect().Get(fd).String()
}

// DeadLetterSubject is the subject a dead letter of subject is stored under: dlq.<subject>.
func DeadLetterSubject(subject string) string { return "dlq." + subject }
