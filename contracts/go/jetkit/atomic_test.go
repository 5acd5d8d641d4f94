package jetkit

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	inventoryv1 "jetkit.dev/contracts/gen/go/shop/inventory/v1"
)

// inventoryEvent is a transport test's reservation (Validate off: not a valid contract event).
func inventoryEvent(id string) *inventoryv1.InventoryStockReserved {
	return &inventoryv1.InventoryStockReserved{ReservationId: id, WarehouseId: "wh-1"}
}

func TestAtomicBatchIsStoredWholeOrNotAtAll(t *testing.T) {
	url := startServer(t)
	_, js := connect(t, url)
	ev, err := EventOf(&inventoryv1.InventoryStockReserved{})
	if err != nil {
		t.Fatal(err)
	}
	if !ev.AllowAtomic {
		t.Fatalf("catalog: INVENTORY's allow_atomic not read: %+v", ev)
	}
	s, err := createOrderStream(js, ev, jetstream.StreamConfig{AllowAtomicPublish: true})
	if err != nil {
		t.Fatal(err)
	}
	p := NewProducer(js, "go-atomic")
	p.Validate = false
	ctx := context.Background()

	ack, err := p.PublishAtomic(ctx, []AtomicEvent{
		{Message: inventoryEvent("r-1"), Options: PublishOptions{MsgID: "batch-1-a"}},
		{Message: inventoryEvent("r-2"), Options: PublishOptions{MsgID: "batch-1-b"}},
		{Message: inventoryEvent("r-3"), Options: PublishOptions{MsgID: "batch-1-c"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if ack.Stream != ev.Stream || ack.FirstSeq != 1 || ack.LastSeq != 3 || len(ack.Events) != 3 {
		t.Fatalf("ack %+v, want %s 1..3", ack, ev.Stream)
	}
	for i, e := range ack.Events {
		m, err := s.GetMsg(ctx, e.Seq)
		if err != nil {
			t.Fatal(err)
		}
		if m.Header.Get(HeaderMsgID) != e.MsgID || m.Header.Get(HeaderType) != ev.Type {
			t.Fatalf("event %d stored as %v, want msg id %s and type %s", i, m.Header, e.MsgID, ev.Type)
		}
	}

	// An event whose msg id the stream holds: the whole batch is refused, its new events too.
	_, err = p.PublishAtomic(ctx, []AtomicEvent{
		{Message: inventoryEvent("r-4"), Options: PublishOptions{MsgID: "batch-2-a"}},
		{Message: inventoryEvent("r-2"), Options: PublishOptions{MsgID: "batch-1-b"}},
	})
	if !IsCode(err, CodeRejected) {
		t.Fatalf("a batch with a stored msg id: %v, want %s", err, CodeRejected)
	}
	if n := storedMessages(t, s); n != 3 {
		t.Fatalf("%d messages stored after a refused batch, want 3", n)
	}

	for _, c := range []struct {
		name   string
		events []AtomicEvent
		code   string
	}{
		{"no events", nil, CodeBatchEmpty},
		{"events of two streams", []AtomicEvent{{Message: inventoryEvent("r-5")}, {Message: checkoutEvent()}}, CodeBatchStreams},
		{"a stream without allow_atomic", []AtomicEvent{{Message: checkoutEvent()}}, CodeUnsupported},
		{"a TTL in a batch", []AtomicEvent{{Message: inventoryEvent("r-6"), Options: PublishOptions{TTL: 5e9}}}, CodeProducerOptions},
		{"over the limit", make([]AtomicEvent, MaxAtomicBatch+1), CodeBatchTooLarge},
	} {
		if _, err := p.PublishAtomic(ctx, c.events); !IsCode(err, c.code) {
			t.Errorf("%s: got %v, want %s", c.name, err, c.code)
		}
	}
	if n := storedMessages(t, s); n != 3 {
		t.Fatalf("%d messages stored after the refusals, want 3", n)
	}
}

func TestRegistryVersionIsStampedAsDataschema(t *testing.T) {
	url := startServer(t)
	_, js := connect(t, url)
	ev := fulfillmentEvent(t)
	s := orderStream(t, js, ev, jetstream.StreamConfig{})
	p := NewProducer(js, "go-dataschema")
	ctx := context.Background()
	plain, err := p.Publish(ctx, fulfillment(1), PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.RegistryVersion = 7
	stamped, err := p.Publish(ctx, fulfillment(2), PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		seq  uint64
		want string
	}{{plain.Seq, ""}, {stamped.Seq, "jetkit:registry/7#" + ev.Type}} {
		m, err := s.GetMsg(ctx, c.seq)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Header.Get(HeaderDataSchema); got != c.want {
			t.Fatalf("seq %d: ce-dataschema %q, want %q", c.seq, got, c.want)
		}
	}
}
