package jetkit

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Dead-letter header names (contracts/WIRE.md §5), in their wire order.
const (
	HeaderDlqStream       = "Jetkit-Dlq-Stream"
	HeaderDlqSequence     = "Jetkit-Dlq-Sequence"
	HeaderDlqSubject      = "Jetkit-Dlq-Subject"
	HeaderDlqConsumer     = "Jetkit-Dlq-Consumer"
	HeaderDlqDeliveries   = "Jetkit-Dlq-Deliveries"
	HeaderDlqFailureClass = "Jetkit-Dlq-Failure-Class"
	HeaderDlqReason       = "Jetkit-Dlq-Reason"
	HeaderDlqFirstFailure = "Jetkit-Dlq-First-Failure"
	HeaderDlqLastFailure  = "Jetkit-Dlq-Last-Failure"
)

var dlqHeaderNames = map[string]bool{
	HeaderDlqStream: true, HeaderDlqSequence: true, HeaderDlqSubject: true, HeaderDlqConsumer: true,
	HeaderDlqDeliveries: true, HeaderDlqFailureClass: true, HeaderDlqReason: true,
	HeaderDlqFirstFailure: true, HeaderDlqLastFailure: true,
}

// FailureClass is the value of Jetkit-Dlq-Failure-Class (enum jetkit.v1.FailureClass).
type FailureClass string

const (
	FailureUndecodable       FailureClass = "undecodable"
	FailureUnknownType       FailureClass = "unknown_type"
	FailureContractViolation FailureClass = "contract_violation"
	FailureHandlerExhausted  FailureClass = "handler_exhausted"
	FailureHandlerPermanent  FailureClass = "handler_permanent"
	FailureMaxDeliveries     FailureClass = "max_deliveries"
)

// DeadLetterInput says why and where a message is dead-lettered.
type DeadLetterInput struct {
	Stream       string
	Sequence     uint64
	Subject      string
	Consumer     string
	Deliveries   uint64
	FailureClass FailureClass
	Reason       string
	// FirstFailure and LastFailure are written as RFC 3339 UTC with milliseconds, unless the
	// *Text variant is set, which is written verbatim.
	FirstFailure, LastFailure         time.Time
	FirstFailureText, LastFailureText string
}

// DeadLetterHeaders returns the headers of a dead letter: the original headers in their order
// with Nats-Msg-Id replaced by dlq:<stream>:<seq>:<consumer> (earlier Jetkit-Dlq-* dropped), then the
// Jetkit-Dlq-* headers (contracts/WIRE.md §5).
func DeadLetterHeaders(original []Header, in DeadLetterInput) []Header {
	msgID := fmt.Sprintf("dlq:%s:%d:%s", in.Stream, in.Sequence, in.Consumer)
	out := make([]Header, 0, len(original)+10)
	sawMsgID := false
	for _, h := range original {
		switch {
		case dlqHeaderNames[h.Name] || isServerHeader(h.Name):
			continue
		case h.Name == HeaderMsgID:
			out = append(out, Header{HeaderMsgID, msgID})
			sawMsgID = true
		default:
			out = append(out, h)
		}
	}
	if !sawMsgID {
		out = append(out, Header{HeaderMsgID, msgID})
	}
	first, last := in.FirstFailureText, in.LastFailureText
	if first == "" {
		first = FormatTime(in.FirstFailure)
	}
	if last == "" {
		last = FormatTime(in.LastFailure)
	}
	return append(out,
		Header{HeaderDlqStream, in.Stream},
		Header{HeaderDlqSequence, strconv.FormatUint(in.Sequence, 10)},
		Header{HeaderDlqSubject, in.Subject},
		Header{HeaderDlqConsumer, in.Consumer},
		Header{HeaderDlqDeliveries, strconv.FormatUint(in.Deliveries, 10)},
		Header{HeaderDlqFailureClass, string(in.FailureClass)},
		Header{HeaderDlqReason, HeaderValue(in.Reason)},
		Header{HeaderDlqFirstFailure, first},
		Header{HeaderDlqLastFailure, last},
	)
}

// ReplayHeaders returns the headers of a replay of the dead letter stored at dlqSequence in
// dlqStream (contracts/WIRE.md §6): the original ce-* headers without the Jetkit-Dlq-* ones,
// then Jetkit-Replay-Of and a new Nats-Msg-Id, replay:<DLQ sequence>:<ce-id>.
func ReplayHeaders(deadLetter []Header, dlqSequence uint64, dlqStream string) []Header {
	out := make([]Header, 0, len(deadLetter))
	id := ""
	for _, h := range deadLetter {
		if dlqHeaderNames[h.Name] || isServerHeader(h.Name) || h.Name == HeaderMsgID || h.Name == HeaderReplayOf {
			continue
		}
		if h.Name == HeaderID {
			id = h.Value
		}
		out = append(out, h)
	}
	seq := strconv.FormatUint(dlqSequence, 10)
	return append(out, Header{HeaderReplayOf, dlqStream + ":" + seq}, Header{HeaderMsgID, "replay:" + seq + ":" + id})
}

// isServerHeader reports a JetStream header other than Nats-Msg-Id (Nats-Expected-Stream,
// Nats-TTL, ...): it belongs to the publish or read of the message it is on, and would make a
// copy's publish fail or expire.
func isServerHeader(name string) bool {
	return len(name) > 5 && strings.EqualFold(name[:5], "nats-") && name != HeaderMsgID
}
