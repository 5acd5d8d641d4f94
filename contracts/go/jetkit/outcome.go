package jetkit

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultPublishTimeout bounds one Publish, all attempts included, when its ctx has no deadline
// and Producer.Timeout is zero. It is well within JetStream's default duplicate window (2 min),
// so every retry of one publish is de-duplicated.
const DefaultPublishTimeout = 30 * time.Second

const (
	// attemptTimeout bounds the wait for one ack: an ack lost with a dropped connection or a
	// leader that stepped down is retried instead of waited for.
	attemptTimeout = 2 * time.Second
	// Backoff between attempts, full jitter: small enough to ride out a leader election soon
	// after the new leader is there.
	retryBaseDelay = 25 * time.Millisecond
	retryMaxDelay  = 250 * time.Millisecond
	// apiDuplicateInProcess is JetStream's 10158 "duplicate message id is in process": an earlier
	// attempt with this msg id reached the stream and is being stored. Not a refusal: the next
	// attempt's answer is the ack of the stored message (Duplicate=true).
	apiDuplicateInProcess jetstream.ErrorCode = 10158
)

func (p *Producer) timeout() time.Duration {
	if p.Timeout > 0 {
		return p.Timeout
	}
	return DefaultPublishTimeout
}

// attemptFailure sorts a failed publish attempt.
type attemptFailure struct {
	refused bool // JetStream answered that it did not store the event
	retry   bool // no definite answer, or a transient client state: try again, same msg id
	sent    bool // the attempt may have reached the stream
}

// classifyAttempt sorts err, the failure of one attempt; closedBefore says whether the
// connection was already closed when the attempt started (then nothing was sent).
func classifyAttempt(err error, closedBefore bool) attemptFailure {
	var api *jetstream.APIError
	switch {
	case errors.As(err, &api):
		if api.Code >= 500 || api.ErrorCode == apiDuplicateInProcess {
			return attemptFailure{retry: true, sent: true}
		}
		return attemptFailure{refused: true, sent: true}
	case errors.Is(err, nats.ErrConnectionClosed):
		// No later attempt can be sent; this one may have been, if the connection closed while
		// it waited for its ack.
		return attemptFailure{sent: !closedBefore}
	case errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrMaxPayload), errors.Is(err, nats.ErrBadSubject),
		errors.Is(err, nats.ErrInvalidMsg), errors.Is(err, nats.ErrHeadersNotSupported),
		errors.Is(err, nats.ErrBadHeaderMsg), errors.Is(err, nats.ErrInvalidConnection):
		// Refused by the client before sending (a draining connection sends no more
		// publishes); the same message would be refused again.
		return attemptFailure{}
	case errors.Is(err, nats.ErrReconnectBufExceeded):
		// Not sent: the reconnect buffer is full while the client reconnects.
		return attemptFailure{retry: true}
	default:
		// Timeouts (the ack may be lost), no responders (no stream captures the subject yet, no
		// leader, a restarting server), disconnects, an unreadable ack, anything unforeseen.
		return attemptFailure{retry: true, sent: true}
	}
}

// publishWithRetry sends msg until JetStream answers definitely or the deadline passes (ctx's
// deadline, else p.timeout() from now). Every attempt is the same message: same Nats-Msg-Id,
// headers and payload, so the stream stores it at most once within its duplicate window.
func (p *Producer) publishWithRetry(ctx context.Context, ev Event, msg *nats.Msg) (*jetstream.PubAck, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.timeout())
		defer cancel()
	}
	msgID := msg.Header.Get(HeaderMsgID)
	started := time.Now()
	var (
		attempts int
		sent     bool
		lastErr  error
	)
	for delay := retryBaseDelay; ctx.Err() == nil; delay = min(2*delay, retryMaxDelay) {
		closedBefore := p.connClosed()
		attemptCtx, cancel := context.WithTimeout(ctx, attemptTimeout)
		// nats.go's own no-responders retry is off: every attempt is one request, made here.
		ack, err := p.js.PublishMsg(attemptCtx, msg, jetstream.WithRetryAttempts(0))
		cancel()
		attempts++
		if err == nil {
			return ack, nil
		}
		lastErr = err
		f := classifyAttempt(err, closedBefore)
		sent = sent || f.sent
		switch {
		case f.refused:
			var api *jetstream.APIError
			errors.As(err, &api)
			return nil, newError(CodeRejected, err,
				"JetStream refused %s on %s (msg id %s): %s (JetStream error %d, status %d). It is not stored, and the same publish would be refused again",
				ev.Type, ev.Subject, msgID, api.Description, api.ErrorCode, api.Code)
		case !f.retry && sent:
			return nil, outcomeUnknown(ev, msgID, attempts, started, err)
		case !f.retry:
			return nil, newError(CodeRejected, err, "%s on %s (msg id %s) could not be sent: %v. It is not stored",
				ev.Type, ev.Subject, msgID, err)
		}
		wait := time.NewTimer(rand.N(delay))
		select {
		case <-ctx.Done():
		case <-wait.C:
		}
		wait.Stop()
	}
	if !sent {
		return nil, fmt.Errorf("publish %s on %s (msg id %s): nothing was sent: %w", ev.Type, ev.Subject, msgID, ctx.Err())
	}
	if lastErr == nil {
		lastErr = ctx.Err()
	}
	return nil, outcomeUnknown(ev, msgID, attempts, started, lastErr)
}

func outcomeUnknown(ev Event, msgID string, attempts int, started time.Time, last error) *Error {
	return newError(CodeOutcomeUnknown, last,
		"no definite answer for %s on %s (msg id %s) after %d attempt(s) in %s (last: %v). The event MAY be stored: publish it again with the same msg id %s within the stream's duplicate window; an ack with Duplicate=true means it was stored",
		ev.Type, ev.Subject, msgID, attempts, time.Since(started).Round(time.Millisecond), last, msgID)
}

// connClosed reports whether the connection is closed, so an attempt cannot be sent on it.
func (p *Producer) connClosed() bool {
	nc := p.js.Conn()
	return nc != nil && nc.IsClosed()
}
