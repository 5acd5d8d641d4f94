package jetkit

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
)

// NATSBindingVersion is the CloudEvents NATS protocol binding version jetkit follows
// (contracts/WIRE.md §4).
const NATSBindingVersion = "1.0.3-wip"

// StructuredJSON is the media type of a structured-mode event in the JSON event format.
const StructuredJSON = "application/cloudevents+json"

// HeaderContentType names the event format of a structured-mode message.
const HeaderContentType = "content-type"

const cutMark = "%E2%80%A6" // "…" percent-encoded
const upperHex = "0123456789ABCDEF"

func plainByte(c byte) bool { return c >= 0x21 && c <= 0x7e && c != '"' && c != '%' }

// PercentEncode encodes value as the NATS binding §3.1.3.2 says: space, '"', '%' and every
// character outside U+0021-U+007E become the %XY escapes (upper-case) of their UTF-8 bytes. A
// result longer than max characters is cut at a character boundary and ends with "…"
// (%E2%80%A6), the whole at most max characters, exactly as the TypeScript percentEncode.
// Invalid UTF-8 in value is encoded as U+FFFD.
func PercentEncode(value string, max int) string {
	i := 0
	for i < len(value) && plainByte(value[i]) {
		i++
	}
	if i == len(value) && i <= max {
		return value
	}
	if i > max {
		return value[:max-len(cutMark)] + cutMark
	}
	var b strings.Builder
	b.WriteString(value[:i])
	fits := min(i, max-len(cutMark))
	for _, r := range value[i:] {
		if r < utf8.RuneSelf && plainByte(byte(r)) {
			b.WriteByte(byte(r))
		} else {
			var buf [4]byte
			n := utf8.EncodeRune(buf[:], r) // utf8.RuneError for invalid input: U+FFFD
			for _, x := range buf[:n] {
				b.WriteByte('%')
				b.WriteByte(upperHex[x>>4])
				b.WriteByte(upperHex[x&15])
			}
		}
		if b.Len() <= max-len(cutMark) {
			fits = b.Len()
		} else if b.Len() > max {
			return b.String()[:fits] + cutMark
		}
	}
	return b.String()
}

func hexValue(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// PercentDecode decodes a received ce-* header value as the binding says: a double-quoted value
// is unquoted (backslash escapes processed), then one round of percent-decoding (lower-case hex
// accepted). Escapes that give bytes which are not valid UTF-8 fail. A '%' not followed by two hex
// digits is kept: senders that predate §3.1.3.2 write it unescaped.
func PercentDecode(value string) (string, error) {
	v := value
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		var b strings.Builder
		for i := 1; i < len(v)-1; i++ {
			if v[i] == '\\' && i+1 < len(v)-1 {
				i++
			}
			b.WriteByte(v[i])
		}
		v = b.String()
	}
	if !strings.Contains(v, "%") {
		return v, nil
	}
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		if v[i] == '%' && i+2 < len(v) {
			if hi, lo := hexValue(v[i+1]), hexValue(v[i+2]); hi >= 0 && lo >= 0 {
				out = append(out, byte(hi<<4|lo))
				i += 2
				continue
			}
		}
		out = append(out, v[i])
	}
	if !utf8.Valid(out) {
		return "", fmt.Errorf("its percent-escapes decode to bytes that are not valid UTF-8")
	}
	return string(out), nil
}

// HeaderValue makes free text a header value exactly as TypeScript's headerValue(): each run of
// control characters (U+0000-U+001F, U+007F-U+009F; CR and LF included) becomes one space, the
// text is trimmed (String.prototype.trim's white space), then percent-encoded and cut to at most
// MaxHeaderValue ASCII characters without splitting an escape (contracts/WIRE.md §4.1).
func HeaderValue(s string) string {
	if enc := PercentEncode(s, MaxHeaderValue); enc == s {
		return s
	}
	var b strings.Builder
	inCtl := false
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) {
			if !inCtl {
				b.WriteByte(' ')
			}
			inCtl = true
			continue
		}
		inCtl = false
		b.WriteRune(r)
	}
	return PercentEncode(strings.TrimFunc(b.String(), isJSWhitespace), MaxHeaderValue)
}

// MediaType is the media type of a content-type value, lower-cased, parameters dropped: media
// types are case-insensitive.
func MediaType(v string) string {
	if i := strings.IndexByte(v, ';'); i >= 0 {
		v = v[:i]
	}
	return strings.ToLower(strings.TrimSpace(v))
}

// IsProtobufMediaType reports whether a datacontenttype names protobuf binary.
func IsProtobufMediaType(v string) bool {
	t := MediaType(v)
	return t == ContentType || t == "application/x-protobuf"
}

// headerGet is the first value of header name in any case: header names are case-insensitive
// (binding §3.1.3.1), and nats.go keeps them as sent. The exact name is tried first.
func headerGet(h nats.Header, name string) string {
	if vs := h[name]; len(vs) > 0 {
		return vs[0]
	}
	for k, vs := range h {
		if len(vs) > 0 && strings.EqualFold(k, name) {
			return vs[0]
		}
	}
	return ""
}

// isStructured tells a structured-mode message: its content-type names a CloudEvents event
// format, or it has neither that header nor ce-specversion and its body is a JSON object (sdk-go
// v2's NATS JetStream sender writes structured events without a content-type header).
func isStructured(h nats.Header, body []byte) bool {
	if ct := headerGet(h, HeaderContentType); ct != "" {
		return strings.HasPrefix(MediaType(ct), "application/cloudevents")
	}
	if headerGet(h, HeaderSpecVersion) != "" {
		return false
	}
	t := bytes.TrimLeft(body, " \t\r\n")
	return len(t) > 0 && t[0] == '{'
}

func structuredError(format string, args ...any) error {
	return newError(CodeWireStructured, nil, "structured event: "+format, args...)
}

// readStructured reads a structured-mode event in the JSON event format (contracts/WIRE.md §4.3):
// its attributes as the ce-* headers would give them (never percent-encoded), and its data from
// data_base64.
func readStructured(h nats.Header, body []byte) (attributes, []byte, error) {
	if ct := headerGet(h, HeaderContentType); ct != "" && MediaType(ct) != StructuredJSON {
		return attributes{}, nil, structuredError("content-type %q is not supported: jetkit reads the JSON event format (%s) in structured mode, and batches not at all (the NATS binding has no batch mode)", ct, StructuredJSON)
	}
	if !utf8.Valid(body) {
		return attributes{}, nil, structuredError("the body is not UTF-8 JSON")
	}
	var e map[string]json.RawMessage
	if err := json.Unmarshal(body, &e); err != nil {
		return attributes{}, nil, structuredError("the body is not a JSON object: %v", err)
	}
	str := func(name string) (string, error) {
		raw, ok := e[name]
		if !ok || string(raw) == "null" {
			return "", nil
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s, nil
		}
		var n json.Number
		if json.Unmarshal(raw, &n) == nil {
			return n.String(), nil
		}
		var b bool
		if json.Unmarshal(raw, &b) == nil {
			return fmt.Sprint(b), nil
		}
		return "", structuredError("member %q must be a string, number or boolean", name)
	}
	var a attributes
	var err error
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"id", &a.id}, {"specversion", &a.specVersion}, {"type", &a.typ}, {"source", &a.source},
		{"time", &a.time}, {"datacontenttype", &a.dataContentType}, {"partitionkey", &a.partitionKey},
		{"correlationid", &a.correlationID}, {"causationid", &a.causationID},
		{"traceparent", &a.ceTraceparent}, {"tracestate", &a.ceTracestate},
	} {
		if *f.dst, err = str(f.name); err != nil {
			return attributes{}, nil, err
		}
	}
	a.traceparent = headerGet(h, HeaderTraceparent)
	a.tracestate = headerGet(h, HeaderTracestate)
	a.msgID = headerGet(h, HeaderMsgID)
	a.replayOf = headerGet(h, HeaderReplayOf)
	var data []byte
	if raw, ok := e["data_base64"]; ok && string(raw) != "null" {
		if _, both := e["data"]; both {
			return attributes{}, nil, structuredError(`it has both "data" and "data_base64"`)
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return attributes{}, nil, structuredError(`member "data_base64" is not base64`)
		}
		if data, err = base64.StdEncoding.Strict().DecodeString(s); err != nil {
			return attributes{}, nil, structuredError(`member "data_base64" is not base64`)
		}
	} else if raw, ok := e["data"]; ok && string(raw) != "null" {
		return attributes{}, nil, structuredError(`it carries "data" as JSON; jetkit events are protobuf binary: put the encoded event in "data_base64" with datacontenttype application/protobuf`)
	}
	return a, data, nil
}

// attributes are the event attributes of a received message before any check.
type attributes struct {
	id, specVersion, typ, source, time, dataContentType                      string
	partitionKey, correlationID, causationID, traceparent, tracestate, msgID string
	ceTraceparent, ceTracestate, replayOf                                    string
}

// binaryAttributes reads the headers of a binary-mode message: names in any case, ce-* values
// percent-decoded.
func binaryAttributes(h nats.Header) (attributes, error) {
	var a attributes
	var err error
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{HeaderID, &a.id}, {HeaderSpecVersion, &a.specVersion}, {HeaderType, &a.typ},
		{HeaderSource, &a.source}, {HeaderTime, &a.time}, {HeaderDataContentType, &a.dataContentType},
		{HeaderPartitionKey, &a.partitionKey}, {HeaderCorrelationID, &a.correlationID},
		{HeaderCausationID, &a.causationID}, {HeaderCETraceparent, &a.ceTraceparent},
		{HeaderCETracestate, &a.ceTracestate},
	} {
		if *f.dst, err = PercentDecode(headerGet(h, f.name)); err != nil {
			return attributes{}, newError(CodeWireHeaders, err, "header %s is malformed: %v", f.name, err)
		}
	}
	if a.dataContentType == "" {
		a.dataContentType = headerGet(h, HeaderContentType) // as sdk-go reads it
	}
	a.traceparent = headerGet(h, HeaderTraceparent)
	a.tracestate = headerGet(h, HeaderTracestate)
	a.msgID = headerGet(h, HeaderMsgID)
	a.replayOf = headerGet(h, HeaderReplayOf)
	return a, nil
}
