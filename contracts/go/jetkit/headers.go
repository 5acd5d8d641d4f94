package jetkit

import (
	"encoding/json"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"

	"github.com/nats-io/nats.go"
)

// Header names of an event (contracts/WIRE.md §4). NATS header names are case-sensitive.
const (
	HeaderID              = "ce-id"
	HeaderSpecVersion     = "ce-specversion"
	HeaderType            = "ce-type"
	HeaderSource          = "ce-source"
	HeaderTime            = "ce-time"
	HeaderDataContentType = "ce-datacontenttype"
	HeaderPartitionKey    = "ce-partitionkey"
	HeaderCorrelationID   = "ce-correlationid"
	HeaderCausationID     = "ce-causationid"
	HeaderTraceparent     = "traceparent"
	HeaderTracestate      = "tracestate"
	// HeaderMsgID is the JetStream de-duplication id; it equals ce-id except on dead letters and replays.
	HeaderMsgID = "Nats-Msg-Id"
	// HeaderReplayOf is set on a replay of a dead letter: <DLQ stream>:<DLQ sequence>.
	HeaderReplayOf = "Jetkit-Replay-Of"
)

const (
	SpecVersion = "1.0"
	ContentType = "application/protobuf"
	// MaxHeaderValue is the longest header value (in UTF-16 code units, as in TypeScript) jetkit
	// writes from free text; longer text is cut and ends with "…".
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
		{HeaderID, in.ID},
		{HeaderSpecVersion, SpecVersion},
		{HeaderType, in.Type},
		{HeaderSource, in.Source},
		{HeaderTime, t},
		{HeaderDataContentType, ContentType},
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
		h = append(h, Header{HeaderTraceparent, in.Traceparent})
	}
	if in.Tracestate != "" {
		h = append(h, Header{HeaderTracestate, in.Tracestate})
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

// HeaderValue makes free text safe as a header value, exactly as TypeScript's headerValue():
// runs of control characters (CR and LF included) become one space, the result is trimmed, and
// text longer than MaxHeaderValue UTF-16 code units is cut to MaxHeaderValue-1 units plus "…".
func HeaderValue(s string) string {
	var b strings.Builder
	inCtl := false
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			if !inCtl {
				b.WriteByte(' ')
			}
			inCtl = true
			continue
		}
		inCtl = false
		b.WriteRune(r)
	}
	clean := strings.TrimFunc(b.String(), isJSWhitespace)
	units := utf16.Encode([]rune(clean))
	if len(units) <= MaxHeaderValue {
		return clean
	}
	return string(utf16.Decode(units[:MaxHeaderValue-1])) + "…"
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

// ReadEventHeaders reads and checks the headers of a received event like TypeScript's
// readEventHeaders(): it fails with JK_WIRE_HEADERS naming the header that is missing or wrong.
func ReadEventHeaders(h nats.Header) (Received, error) {
	get := func(name string) string { return h.Get(name) }
	need := func(name string) (string, error) {
		if v := get(name); v != "" {
			return v, nil
		}
		return "", newError(CodeWireHeaders, nil,
			"header %s is missing; every jetkit event carries the CloudEvents headers of contracts/WIRE.md", name)
	}
	spec, err := need(HeaderSpecVersion)
	if err != nil {
		return Received{}, err
	}
	if spec != SpecVersion {
		return Received{}, newError(CodeWireHeaders, nil, "header ce-specversion is %q, expected %q", spec, SpecVersion)
	}
	if ct := get(HeaderDataContentType); ct != "" && ct != ContentType {
		return Received{}, newError(CodeWireHeaders, nil, "header ce-datacontenttype is %q, expected %q", ct, ContentType)
	}
	var r Received
	if r.ID, err = need(HeaderID); err != nil {
		return Received{}, err
	}
	if !validID(r.ID) {
		return Received{}, newError(CodeWireHeaders, nil, "header ce-id must be 1-256 printable ASCII characters without spaces")
	}
	if r.Type, err = need(HeaderType); err != nil {
		return Received{}, err
	}
	if r.Source, err = need(HeaderSource); err != nil {
		return Received{}, err
	}
	if r.Time, err = need(HeaderTime); err != nil {
		return Received{}, err
	}
	if r.MsgID = get(HeaderMsgID); r.MsgID == "" {
		r.MsgID = r.ID
	}
	r.PartitionKey = get(HeaderPartitionKey)
	r.CorrelationID = get(HeaderCorrelationID)
	r.CausationID = get(HeaderCausationID)
	r.Traceparent = get(HeaderTraceparent)
	r.Tracestate = get(HeaderTracestate)
	r.ReplayOf = get(HeaderReplayOf)
	return r, nil
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
