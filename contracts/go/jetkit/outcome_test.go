package jetkit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "jetkit.dev/contracts/gen/go/shop/common/v1"
	orderv1 "jetkit.dev/contracts/gen/go/shop/order/v1"
)

func fulfillment(i int) *orderv1.OrderFulfillmentCompleted {
	return &orderv1.OrderFulfillmentCompleted{
		OrderId:    fmt.Sprintf("0190a0b0-0000-7000-8000-%012d", i),
		CheckoutId: fmt.Sprintf("0190a0b0-0000-7000-9000-%012d", i),
		Shipments: []*orderv1.Shipment{{
			ShipmentId: fmt.Sprintf("shp-%d", i), Carrier: orderv1.Carrier_CARRIER_DHL,
			TrackingNumber: fmt.Sprintf("JD%09d", i), Skus: []string{"SKU-1"},
		}},
		ShippingCost: &commonv1.Money{CurrencyCode: "EUR", Units: 5, Nanos: 990000000},
		CompletedAt:  timestamppb.New(time.Date(2026, 11, 21, 9, 30, 0, 0, time.UTC)),
	}
}

func fulfillmentEvent(t *testing.T) Event {
	t.Helper()
	ev, err := EventOf(&orderv1.OrderFulfillmentCompleted{})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// orderStream is the contract's stream for ev (ORDER capturing order.>), with cfg's limits.
func orderStream(t *testing.T, js jetstream.JetStream, ev Event, cfg jetstream.StreamConfig) jetstream.Stream {
	t.Helper()
	s, err := createOrderStream(js, ev, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func createOrderStream(js jetstream.JetStream, ev Event, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	cfg.Name = ev.Stream
	cfg.Subjects = []string{strings.SplitN(ev.Subject, ".", 2)[0] + ".>"}
	var lastErr error
	// A new cluster may not have a meta leader yet (503): try again for a while.
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s, err := js.CreateStream(ctx, cfg)
		cancel()
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("create stream %s: %w", cfg.Name, lastErr)
}

func storedMessages(t *testing.T, s jetstream.Stream) uint64 {
	t.Helper()
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// copiesOn counts the publish attempts that reach subject, seen by a plain subscriber. Only
// for subjects a stream captures: a subscriber would otherwise answer as a responder.
func copiesOn(t *testing.T, nc *nats.Conn, subject string) func() int64 {
	t.Helper()
	var n atomic.Int64
	sub, err := nc.Subscribe(subject, func(*nats.Msg) { n.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return func() int64 {
		_ = nc.Flush()
		time.Sleep(300 * time.Millisecond) // a retry that was coming would have arrived
		return n.Load()
	}
}

// A publish before any stream captures the subject (as while a stream leader is elected or a
// server restarts: no responders) is retried until the stream is there, and stored once.
func TestPublishRetriesUntilTheStreamAnswers(t *testing.T) {
	url := startServer(t)
	_, js := connect(t, url)
	ev := fulfillmentEvent(t)
	p := NewProducer(js, "go-test")

	var s jetstream.Stream
	var createErr error
	created := make(chan struct{})
	go func() {
		defer close(created)
		time.Sleep(time.Second)
		s, createErr = createOrderStream(js, ev, jetstream.StreamConfig{})
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	started := time.Now()
	pub, err := p.Publish(ctx, fulfillment(1), PublishOptions{})
	took := time.Since(started)
	<-created
	if createErr != nil {
		t.Fatal(createErr)
	}
	if err != nil {
		t.Fatalf("publish while the stream is created 1 s later: %v", err)
	}
	if took < 900*time.Millisecond {
		t.Fatalf("acked after %s, before the stream existed", took)
	}
	if pub.Stream != ev.Stream || pub.Seq != 1 || pub.Duplicate {
		t.Fatalf("ack %+v, want stream %s seq 1 not duplicate", pub, ev.Stream)
	}
	if n := storedMessages(t, s); n != 1 {
		t.Fatalf("%d messages stored, want 1", n)
	}
}

// Without a definite answer by the deadline the error says the event may be stored, never that
// it was refused, and tells how to find out.
func TestPublishWithoutAnswerIsOutcomeUnknown(t *testing.T) {
	url := startServer(t)
	_, js := connect(t, url)
	ev := fulfillmentEvent(t)

	check := func(t *testing.T, err error, took, deadline time.Duration) {
		t.Helper()
		if !IsCode(err, CodeOutcomeUnknown) || IsCode(err, CodeRejected) {
			t.Fatalf("got %v, want %s", err, CodeOutcomeUnknown)
		}
		if !strings.Contains(err.Error(), "msg-1") || !strings.Contains(err.Error(), "same msg id") {
			t.Fatalf("the message should name the msg id and say to publish again with it: %v", err)
		}
		if took < deadline-100*time.Millisecond || took > deadline+time.Second {
			t.Fatalf("gave up after %s, want about %s (retrying until the deadline)", took, deadline)
		}
	}
	t.Run("ctx deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		started := time.Now()
		_, err := NewProducer(js, "go-test").Publish(ctx, fulfillment(1), PublishOptions{ID: "msg-1"})
		check(t, err, time.Since(started), 1500*time.Millisecond)
	})
	t.Run("Producer.Timeout without a ctx deadline", func(t *testing.T) {
		p := NewProducer(js, "go-test")
		p.Timeout = time.Second
		started := time.Now()
		_, err := p.PublishEncoded(context.Background(), ev, []byte{}, "", PublishOptions{ID: "msg-1"})
		check(t, err, time.Since(started), time.Second)
	})
	t.Run("ctx cancelled after an attempt was sent", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(300*time.Millisecond, cancel)
		started := time.Now()
		_, err := NewProducer(js, "go-test").Publish(ctx, fulfillment(1), PublishOptions{ID: "msg-1"})
		check(t, err, time.Since(started), 300*time.Millisecond)
	})
	t.Run("ctx cancelled before anything was sent", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := NewProducer(js, "go-test").Publish(ctx, fulfillment(1), PublishOptions{ID: "msg-1"})
		var je *Error
		if !errors.Is(err, context.Canceled) || errors.As(err, &je) {
			t.Fatalf("got %v, want context.Canceled without a jetkit code (nothing was sent)", err)
		}
	})
}

// A definite refusal (here the stream's max_msg_size) is reported at once, after one attempt.
func TestPublishRefusalIsImmediate(t *testing.T) {
	url := startServer(t)
	nc, js := connect(t, url)
	ev := fulfillmentEvent(t)
	orderStream(t, js, ev, jetstream.StreamConfig{MaxMsgSize: 256})
	copies := copiesOn(t, nc, ev.Subject)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	started := time.Now()
	_, err := NewProducer(js, "go-test").PublishEncoded(ctx, ev, make([]byte, 1024), "", PublishOptions{})
	took := time.Since(started)
	if !IsCode(err, CodeRejected) {
		t.Fatalf("got %v, want %s", err, CodeRejected)
	}
	var api *jetstream.APIError
	if !errors.As(err, &api) || api.ErrorCode != jetstream.JSErrCodeStreamMessageExceedsMaximum {
		t.Fatalf("the cause should be JetStream's error %d: %v", jetstream.JSErrCodeStreamMessageExceedsMaximum, err)
	}
	if took > time.Second {
		t.Fatalf("refused after %s, want at once", took)
	}
	if n := copies(); n != 1 {
		t.Fatalf("%d attempts reached the subject, want exactly 1", n)
	}
}

// A closed connection sends nothing: not stored, so the refusal code (not outcome-unknown).
func TestPublishOnClosedConnectionIsRejected(t *testing.T) {
	url := startServer(t)
	nc, js := connect(t, url)
	nc.Close()
	_, err := NewProducer(js, "go-test").Publish(context.Background(), fulfillment(1), PublishOptions{})
	if !IsCode(err, CodeRejected) || !errors.Is(err, nats.ErrConnectionClosed) {
		t.Fatalf("got %v, want %s caused by nats.ErrConnectionClosed", err, CodeRejected)
	}
}

// Two publishes of one msg id at once on a replicated stream: the second often meets JetStream's
// 10158 "duplicate message id is in process" while the first is being stored. Neither may be
// reported refused; both are acked, one as the duplicate, and the event is stored once.
func TestConcurrentPublishOfOneMsgIDIsNeverRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	urls := startCluster(t)
	nc, js := connect(t, urls[0])
	ev := fulfillmentEvent(t)
	s := orderStream(t, js, ev, jetstream.StreamConfig{Replicas: 3})
	copies := copiesOn(t, nc, ev.Subject)
	p := NewProducer(js, "go-test")

	const maxRounds = 200
	rounds := 0
	for ; rounds < maxRounds; rounds++ {
		id := fmt.Sprintf("0190a0b0-0000-7000-a000-%012d", rounds)
		var wg sync.WaitGroup
		pubs := make([]Published, 2)
		errs := make([]error, 2)
		for k := range pubs {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				pubs[k], errs[k] = p.Publish(ctx, fulfillment(rounds), PublishOptions{ID: id})
			})
		}
		wg.Wait()
		for k, err := range errs {
			if err != nil {
				t.Fatalf("round %d publish %d of msg id %s: %v", rounds, k, id, err)
			}
		}
		if pubs[0].Duplicate == pubs[1].Duplicate || pubs[0].Seq != pubs[1].Seq {
			t.Fatalf("round %d: acks %+v and %+v, want one stored and one duplicate of the same seq", rounds, pubs[0], pubs[1])
		}
		// Enough rounds once some went through 10158 (a third copy on the subject is a retry).
		if rounds >= 20 && rounds%10 == 0 && copies() > int64(2*(rounds+1)+5) {
			rounds++
			break
		}
	}
	retries := copies() - int64(2*rounds)
	t.Logf("%d rounds, %d retries after 10158", rounds, retries)
	if retries == 0 {
		t.Fatalf("no publish met 10158 in %d rounds: this test did not exercise it", rounds)
	}
	if n := storedMessages(t, s); n != uint64(rounds) {
		t.Fatalf("%d messages stored, want %d (one per msg id)", n, rounds)
	}
}

// How each kind of failed attempt is handled; the live tests above cover the common ones
// end to end, this the ones a test cannot easily provoke.
func TestClassifyAttempt(t *testing.T) {
	api := func(status int, code jetstream.ErrorCode) error {
		return fmt.Errorf("nats: %w", &jetstream.APIError{Code: status, ErrorCode: code, Description: "x"})
	}
	cases := []struct {
		name         string
		err          error
		closedBefore bool
		want         attemptFailure
	}{
		{"10158 duplicate in process", api(409, 10158), false, attemptFailure{retry: true, sent: true}},
		{"server error", api(503, 10008), false, attemptFailure{retry: true, sent: true}},
		{"wrong last sequence", api(400, 10071), false, attemptFailure{refused: true, sent: true}},
		{"wrong last msg id", api(400, 10070), false, attemptFailure{refused: true, sent: true}},
		{"no responders", jetstream.ErrNoStreamResponse, false, attemptFailure{retry: true, sent: true}},
		{"ack timeout", context.DeadlineExceeded, false, attemptFailure{retry: true, sent: true}},
		{"disconnected while waiting", nats.ErrDisconnected, false, attemptFailure{retry: true, sent: true}},
		{"unreadable ack", jetstream.ErrInvalidJSAck, false, attemptFailure{retry: true, sent: true}},
		{"reconnect buffer full", nats.ErrReconnectBufExceeded, false, attemptFailure{retry: true}},
		{"closed while waiting", nats.ErrConnectionClosed, false, attemptFailure{sent: true}},
		{"closed before", nats.ErrConnectionClosed, true, attemptFailure{}},
		{"over max_payload", nats.ErrMaxPayload, false, attemptFailure{}},
	}
	for _, c := range cases {
		if got := classifyAttempt(c.err, c.closedBefore); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}
