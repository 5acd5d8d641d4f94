package jetkit

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	customerv1 "jetkit.dev/contracts/gen/go/shop/customer/v1"
	orderv1 "jetkit.dev/contracts/gen/go/shop/order/v1"
)

// A transport test of TTL and schedules: the checkout is not a valid contract event (Validate off).
func checkoutEvent() *customerv1.CustomerCheckoutInitiated {
	return &customerv1.CustomerCheckoutInitiated{
		CheckoutId: NewID(),
		CustomerId: "0190a0b0-0000-7000-8000-000000000001",
	}
}

// customerStream is the contract's CUSTOMER stream: customer.>, message TTLs and schedules allowed.
func customerStream(t *testing.T, js jetstream.JetStream) (Event, jetstream.Stream) {
	t.Helper()
	ev, err := EventOf(&customerv1.CustomerCheckoutInitiated{})
	if err != nil {
		t.Fatal(err)
	}
	if !ev.AllowMsgSchedules || !ev.AllowMsgTTL || ev.StreamMaxAge != 30*24*time.Hour {
		t.Fatalf("catalog: %s's stream options not read: %+v", ev.Type, ev)
	}
	s, err := createOrderStream(js, ev, jetstream.StreamConfig{AllowMsgTTL: true, AllowMsgSchedules: true})
	if err != nil {
		t.Fatal(err)
	}
	return ev, s
}

func TestScheduledEventArrivesAtItsTimeAndCanBeCancelled(t *testing.T) {
	url := startServer(t)
	_, js := connect(t, url)
	ev, s := customerStream(t, js)
	p := NewProducer(js, "go-schedule")
	p.Validate = false
	ctx := context.Background()

	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{ev.Subject}})
	if err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	later, err := p.Publish(ctx, checkoutEvent(), PublishOptions{Delay: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cancelled, err := p.Publish(ctx, checkoutEvent(), PublishOptions{DeliverAt: time.Now().Add(2 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := p.CancelScheduled(ctx, ev, cancelled.MsgID); err != nil || !ok {
		t.Fatalf("cancel a waiting schedule: %v %v", ok, err)
	}
	m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		t.Fatalf("the scheduled event never arrived: %v", err)
	}
	if took := time.Since(sent); took < 1500*time.Millisecond {
		t.Fatalf("delivered %s after the publish, before its time", took)
	}
	if got := m.Headers().Get(HeaderID); got != later.ID {
		t.Fatalf("delivered ce-id %q, want the scheduled event %q", got, later.ID)
	}
	// The cancelled one (due at +2 s) never comes.
	if m, err := cons.Next(jetstream.FetchMaxWait(1500 * time.Millisecond)); err == nil {
		t.Fatalf("a cancelled event was delivered: ce-id %s", m.Headers().Get(HeaderID))
	}
	if ok, err := p.CancelScheduled(ctx, ev, later.MsgID); err != nil || ok {
		t.Fatalf("cancel a delivered schedule: %v %v, want false", ok, err)
	}
}

func TestTTLHeaderAndRefusalsSendNothing(t *testing.T) {
	url := startServer(t)
	_, js := connect(t, url)
	_, s := customerStream(t, js)
	order := orderStream(t, js, fulfillmentEvent(t), jetstream.StreamConfig{})
	p := NewProducer(js, "go-ttl")
	p.Validate = false
	ctx := context.Background()

	pub, err := p.Publish(ctx, checkoutEvent(), PublishOptions{TTL: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := s.GetMsg(ctx, pub.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if got := stored.Header.Get("Nats-TTL"); got != "2s" {
		t.Fatalf("Nats-TTL %q, want 2s (whole seconds, rounded up)", got)
	}

	for _, c := range []struct {
		name string
		m    func() error
		code string
	}{
		{"a TTL on a stream without allow_msg_ttl", func() error {
			_, err := p.Publish(ctx, fulfillment(1), PublishOptions{TTL: 5 * time.Second})
			return err
		}, CodeUnsupported},
		{"a schedule on a stream without allow_msg_schedules", func() error {
			_, err := p.Publish(ctx, &orderv1.OrderFulfillmentCompleted{}, PublishOptions{Delay: time.Second})
			return err
		}, CodeUnsupported},
		{"a TTL under a second", func() error {
			_, err := p.Publish(ctx, checkoutEvent(), PublishOptions{TTL: 10 * time.Millisecond})
			return err
		}, CodeProducerOptions},
		{"a delivery time a minute ago", func() error {
			_, err := p.Publish(ctx, checkoutEvent(), PublishOptions{DeliverAt: time.Now().Add(-time.Minute)})
			return err
		}, CodeProducerOptions},
		{"a delivery time beyond the stream's 30-day max age", func() error {
			_, err := p.Publish(ctx, checkoutEvent(), PublishOptions{Delay: 31 * 24 * time.Hour})
			return err
		}, CodeProducerOptions},
	} {
		if err := c.m(); !IsCode(err, c.code) {
			t.Errorf("%s: got %v, want %s", c.name, err, c.code)
		}
	}
	if n := storedMessages(t, s); n != 1 {
		t.Fatalf("CUSTOMER holds %d messages, want only the TTL'd one", n)
	}
	if n := storedMessages(t, order); n != 0 {
		t.Fatalf("ORDER holds %d messages, want none", n)
	}
}
