package jetkit

import (
	"encoding/json"
	"time"
	"unicode"

	"github.com/nats-io/nats.go"
)

// Header names of an event (contracts/WIRE.md §4), as jetkit writes them; readers match them
// case-insensitively (CloudEvents NATS binding §3.1.3.1).
const (
	HeaderID              = "ce-id"
	HeaderSpecVersion     = "ce-specversion"
	HeaderType            = "ce-type"
	HeaderSource          = "ce-source"
	HeaderTime            = "ce-time"
	HeaderDataContentType = "ce-datacontenttype"
	// HeaderDataSchema is the registry version the payload was encoded with (WIRE.md §4.4).
	HeaderDataSchema    = "ce-dataschema"
	HeaderPartitionKey  = "ce-partitionkey"
	HeaderCorrelationID = "ce-correlationid"
	HeaderCausationID   = "ce-causationid"
	HeaderTraceparent   = "traceparent"
	HeaderTracestate    = "tracestate"
	// HeaderCETraceparent and HeaderCETracestate carry the same trace context as the CloudEvents
	// distributed tracing extension's attributes.
	HeaderCETraceparent = "ce-traceparent"
	HeaderCETracestate  = "ce-tracestate"
	// HeaderMsgID is the JetStream de-duplication id; it equals ce-id except on dead letters and replays.
	HeaderMsgID = "Nats-Msg-Id"
	// HeaderReplayOf is set on a replay of a dead letter: <DLQ stream>:<DLQ sequence>.
	HeaderReplayOf = "Jetkit-Replay-Of"
)

const (
	SpecVersion = "1.0"
	ContentType = "application/protobuf"
	// MaxHeaderValue is the longest header value jetkit writes from free text, in characters of
	// the percent-encoded (ASCII) value; longer text is cut and ends with "…" (%E2%80%A6).
	MaxHeaderValue = 1024
)

// Header is one header of an ordered header list.
type Header struct {
	Name, Value string
}

// HeaderInput is what the headers of one event are built from.
type HeaderInput struct {
	// ID is ce-id: unique per event (NewID() unless the caller has one).
	ID string
	// Type is ce-type: the fully-qualified message name.
	Type string
	// Source is ce-source: the producing service, "/jetkit/<service name>".
	Source string
	// Time is ce-time: when the event happened (written as RFC 3339 UTC with milliseconds).
	Time time.Time
	// TimeText, when set, is written as ce-time verbatim instead of Time.
	TimeText string
	// PartitionKey is the value of the contract's partition key field; "" omits the header.
	PartitionKey string
	// CorrelationID is shared by every event of one business flow; "" omits the header.
	CorrelationID string
	// CausationID is the ce-id of the event that caused this one; "" omits the header.
	CausationID string
	// Traceparent and Tracestate are the W3C Trace Context of the publish span.
	Traceparent, Tracestate string
	// MsgID is Nats-Msg-Id; "" means ID.
	MsgID string
	// Dataschema is ce-dataschema, jetkit:registry/<version>#<type> (WIRE.md §4.4); "" omits it.
	Dataschema string
}

// FormatTime writes t as ce-time does: RFC 3339, UTC, exactly three fractional digits.
func FormatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// EventHeaders returns the headers of an event in their wire order (contracts/WIRE.md §4).
func EventHeaders(in HeaderInput) []Header {
	t := in.TimeText
	if t == "" {
		t = FormatTime(in.Time)
	}
	h := []Header{
		{HeaderID, HeaderValue(in.ID)},
		{HeaderSpecVersion, SpecVersion},
		{HeaderType, HeaderValue(in.Type)},
		{HeaderSource, HeaderValue(in.Source)},
		{HeaderTime, HeaderValue(t)},
		{HeaderDataContentType, ContentType},
	}
	if in.Dataschema != "" {
		h = append(h, Header{HeaderDataSchema, HeaderValue(in.Dataschema)})
	}
	if in.PartitionKey != "" {
		h = append(h, Header{HeaderPartitionKey, HeaderValue(in.PartitionKey)})
	}
	if in.CorrelationID != "" {
		h = append(h, Header{HeaderCorrelationID, HeaderValue(in.CorrelationID)})
	}
	if in.CausationID != "" {
		h = append(h, Header{HeaderCausationID, HeaderValue(in.CausationID)})
	}
	if in.Traceparent != "" {
		// W3C headers as W3C Trace Context writes them, the tracing extension's copies percent-encoded
		h = append(h, Header{HeaderTraceparent, in.Traceparent})
		if in.Tracestate != "" {
			h = append(h, Header{HeaderTracestate, in.Tracestate})
		}
		h = append(h, Header{HeaderCETraceparent, in.Traceparent})
		if in.Tracestate != "" {
			h = append(h, Header{HeaderCETracestate, HeaderValue(in.Tracestate)})
		}
	}
	msgID := in.MsgID
	if msgID == "" {
		msgID = in.ID
	}
	return append(h, Header{HeaderMsgID, msgID})
}

// NatsHeader turns an ordered header list into a nats.Header. nats.go keeps headers in a map,
// so the order on the wire is the map's; names and values are exactly the list's.
func NatsHeader(hs []Header) nats.Header {
	out := make(nats.Header, len(hs))
	for _, h := range hs {
		out.Add(h.Name, h.Value)
	}
	return out
}

// isJSWhitespace is the set String.prototype.trim removes (ECMAScript WhiteSpace and LineTerminator).
func isJSWhitespace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0xa0, 0xfeff, 0x2028, 0x2029:
		return true
	}
	return unicode.Is(unicode.Zs, r)
}

// Received is the CloudEvents attributes of a received event.
type Received struct {
	ID, Type, Source, Time, MsgID                                     string
	PartitionKey, CorrelationID, CausationID, Traceparent, Tracestate string
	ReplayOf                                                          string
}

// ReadEventHeaders reads and checks the headers of a received binary-mode event like
// TypeScript's readEventHeaders(): names in any case, ce-* values percent-decoded; it fails with
// JK_WIRE_HEADERS naming the header that is missing or wrong.
func ReadEventHeaders(h nats.Header) (Received, error) {
	a, err := binaryAttributes(h)
	if err != nil {
		return Received{}, err
	}
	return checkAttributes(a)
}

// ReadEvent reads and checks a received message in either content mode (contracts/WIRE.md §4):
// structured when its content-type names a CloudEvents format (or it has no CloudEvents headers
// and a JSON object body), binary otherwise. It returns the attributes and the event data (the
// protobuf payload).
func ReadEvent(h nats.Header, body []byte) (Received, []byte, error) {
	if isStructured(h, body) {
		a, data, err := readStructured(h, body)
		if err != nil {
			return Received{}, nil, err
		}
		r, err := checkAttributes(a)
		return r, data, err
	}
	r, err := ReadEventHeaders(h)
	return r, body, err
}

// checkAttributes checks the attributes of a received event (contracts/WIRE.md §4).
func checkAttributes(a attributes) (Received, error) {
	missing := func(name string) error {
		return newError(CodeWireHeaders, nil,
			"header %s is missing; every jetkit event carries the CloudEvents headers of contracts/WIRE.md", name)
	}
	if a.specVersion == "" {
		return Received{}, missing(HeaderSpecVersion)
	}
	if a.specVersion != SpecVersion {
		return Received{}, newError(CodeWireHeaders, nil, "header ce-specversion is %q, expected %q", a.specVersion, SpecVersion)
	}
	if a.dataContentType != "" && !IsProtobufMediaType(a.dataContentType) {
		return Received{}, newError(CodeWireHeaders, nil, "header ce-datacontenttype is %q, expected %q (media types match case-insensitively)", a.dataContentType, ContentType)
	}
	if a.id == "" {
		return Received{}, missing(HeaderID)
	}
	if !validID(a.id) {
		return Received{}, newError(CodeWireHeaders, nil, "header ce-id must be 1-256 printable ASCII characters without spaces")
	}
	switch {
	case a.typ == "":
		return Received{}, missing(HeaderType)
	case a.source == "":
		return Received{}, missing(HeaderSource)
	case a.time == "":
		return Received{}, missing(HeaderTime)
	}
	r := Received{
		ID: a.id, Type: a.typ, Source: a.source, Time: a.time, MsgID: a.msgID,
		PartitionKey: a.partitionKey, CorrelationID: a.correlationID, CausationID: a.causationID,
		ReplayOf: a.replayOf,
	}
	if r.MsgID == "" {
		r.MsgID = r.ID
	}
	r.Traceparent, r.Tracestate = pickTrace(a)
	return r, nil
}

// pickTrace is the trace context a received event continues (contracts/WIRE.md §4.2): the W3C
// traceparent header (the hop the message took) when it is valid, else the tracing extension's
// ce-traceparent, each with its own tracestate.
func pickTrace(a attributes) (string, string) {
	if _, ok := ParseTraceparent(a.traceparent); ok {
		return a.traceparent, a.tracestate
	}
	if _, ok := ParseTraceparent(a.ceTraceparent); ok {
		return a.ceTraceparent, a.ceTracestate
	}
	return a.traceparent, a.tracestate
}

func validID(id string) bool {
	if len(id) == 0 || len(id) > 256 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// MarshalJSON writes a header as ["name", "value"], the shape the golden vectors use.
func (h Header) MarshalJSON() ([]byte, error) { return json.Marshal([2]string{h.Name, h.Value}) }
