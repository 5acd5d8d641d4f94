package jetkit

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// TraceContext is a parsed W3C traceparent (version 00).
type TraceContext struct {
	TraceID string // 32 lower-case hex digits
	SpanID  string // 16 lower-case hex digits, the parent span
	Flags   string // 2 hex digits; "01" = sampled
}

// ParseTraceparent parses a W3C traceparent header ("00-<trace id>-<span id>-<flags>"). It
// returns false for a malformed value or an all-zero id, which W3C says to ignore.
func ParseTraceparent(v string) (TraceContext, bool) {
	p := strings.Split(strings.TrimSpace(v), "-")
	if len(p) < 4 || len(p[0]) != 2 || p[0] == "ff" || len(p[1]) != 32 || len(p[2]) != 16 || len(p[3]) != 2 {
		return TraceContext{}, false
	}
	if p[0] == "00" && len(p) != 4 {
		return TraceContext{}, false
	}
	for _, s := range p[:4] {
		if !isLowerHex(s) {
			return TraceContext{}, false
		}
	}
	if strings.Trim(p[1], "0") == "" || strings.Trim(p[2], "0") == "" {
		return TraceContext{}, false
	}
	return TraceContext{TraceID: p[1], SpanID: p[2], Flags: p[3]}, true
}

// String is the traceparent header value of this context.
func (t TraceContext) String() string { return "00-" + t.TraceID + "-" + t.SpanID + "-" + t.Flags }

// Child is the context of a new span in the same trace whose parent is t: same trace id and
// flags, a new span id. It is what a consumer puts on the events it publishes while handling.
func (t TraceContext) Child() TraceContext {
	return TraceContext{TraceID: t.TraceID, SpanID: randomHex(8), Flags: t.Flags}
}

// NewTrace starts a new sampled trace (for a producer that is not itself inside a trace).
func NewTrace() TraceContext {
	return TraceContext{TraceID: randomHex(16), SpanID: randomHex(8), Flags: "01"}
}

func randomHex(n int) string {
	b := make([]byte, n)
	for {
		_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
		for _, x := range b {
			if x != 0 {
				return hex.EncodeToString(b)
			}
		}
	}
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
