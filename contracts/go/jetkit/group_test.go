package jetkit

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestPartitionOfWireVectors(t *testing.T) {
	// contracts/WIRE.md §6a
	if h := PartitionOf("", 1<<31); h != int(uint32(2166136261)%(1<<31)) {
		t.Fatalf(`PartitionOf("") = %d`, h)
	}
	if p := PartitionOf("a", 16); p != 3826002220%16 {
		t.Fatalf(`PartitionOf("a", 16) = %d, want 12`, p)
	}
	// "é" is 0xc3 0xa9: FNV-1a over the UTF-8 bytes.
	h := uint32(0x811c9dc5)
	for _, b := range []byte{0xc3, 0xa9} {
		h = (h ^ uint32(b)) * 0x01000193
	}
	if p := PartitionOf("é", 1000); p != int(h%1000) {
		t.Fatalf(`PartitionOf("é", 1000) = %d, want %d`, p, h%1000)
	}
}

func TestGroupKeyReadsTheKeyAsTheTypeScriptMembers(t *testing.T) {
	ev := fulfillmentEvent(t)
	payload, err := Marshal(fulfillment(7))
	if err != nil {
		t.Fatal(err)
	}
	fromField := fulfillment(7).GetOrderId()
	cases := []struct {
		name string
		h    nats.Header
		data []byte
		want string
	}{
		{"ce-partitionkey, percent-decoded", nats.Header{"ce-partitionkey": {"k%201"}, "ce-id": {"id-1"}}, payload, "k 1"},
		{"header names in any case", nats.Header{"Ce-PartitionKey": {"k2"}}, payload, "k2"},
		{"an empty header falls back to the contract's field", nats.Header{"ce-partitionkey": {""}, "ce-id": {"id-1"}}, payload, fromField},
		{"no header: the contract's field", nats.Header{"ce-id": {"id-1"}}, payload, fromField},
		{"undecodable payload: ce-id", nats.Header{"ce-id": {"id-1"}}, []byte{0xff}, "id-1"},
		{"nothing: the stream sequence", nats.Header{}, []byte{0xff}, "42"},
		{"structured mode", nats.Header{"content-type": {StructuredJSON}}, []byte(`{"specversion":"1.0","id":"s1","partitionkey":"sk"}`), "sk"},
	}
	for _, c := range cases {
		if got := GroupKey(c.h, ev.Subject, c.data, 42); got != c.want {
			t.Errorf("%s: GroupKey = %q, want %q", c.name, got, c.want)
		}
	}
}

// handled is one handler run, in the order the handlers ran across every member.
type handled struct {
	member string
	key    string
	seq    uint64
}

type effects struct {
	mu  sync.Mutex
	log []handled
}

func (e *effects) handler(member string) GroupHandler {
	return func(ctx context.Context, d *Delivery) error {
		meta, _ := d.Msg.Metadata()
		time.Sleep(time.Millisecond) // keys overlap in time
		e.mu.Lock()
		e.log = append(e.log, handled{member, d.Headers.PartitionKey, meta.Sequence.Stream})
		e.mu.Unlock()
		return nil
	}
}

func (e *effects) snapshot() []handled {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]handled(nil), e.log...)
}

func (e *effects) waitFor(t *testing.T, n int) []handled {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := e.snapshot()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %d of %d events handled", len(got), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// check reports duplicates, events never handled and per-key order violations (a key's event
// handled after a later one of that key) of log against the published sequences per key.
func check(log []handled, published map[string][]uint64) (dups, missing, disorder int) {
	count := map[uint64]int{}
	last := map[string]uint64{}
	for _, h := range log {
		count[h.seq]++
		if count[h.seq] > 1 {
			dups++
		}
		if h.seq < last[h.key] {
			disorder++
		}
		last[h.key] = max(last[h.key], h.seq)
	}
	for _, seqs := range published {
		for _, s := range seqs {
			if count[s] == 0 {
				missing++
			}
		}
	}
	return
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(os.Stderr, nil)) }

func publishKeys(t *testing.T, p *Producer, keys, perKey int, published map[string][]uint64) {
	t.Helper()
	for i := 0; i < perKey; i++ {
		for k := 0; k < keys; k++ {
			m := fulfillment(k)
			ack, err := p.Publish(context.Background(), m, PublishOptions{})
			if err != nil {
				t.Fatal(err)
			}
			published[m.GetOrderId()] = append(published[m.GetOrderId()], ack.Seq)
		}
	}
}

func join(t *testing.T, js jetstream.JetStream, o GroupOptions, h GroupHandler, tweak func(*Group)) *Group {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g, err := newGroup(ctx, js, o, h)
	if err != nil {
		t.Fatal(err)
	}
	if tweak != nil {
		tweak(g)
	}
	if err := g.start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Stop(context.Background()) })
	return g
}

func waitOwned(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestGroupMembersSharePartitionsAndHandOverInOrder(t *testing.T) {
	_, js := connect(t, startServer(t))
	orderStream(t, js, fulfillmentEvent(t), jetstream.StreamConfig{})
	o := GroupOptions{Durable: "go-group", Stream: "ORDER", Partitions: 8, Lease: time.Second, Logger: quiet()}
	var fx effects
	a := join(t, js, withInstance(o, "a"), fx.handler("a"), nil)
	b := join(t, js, withInstance(o, "b"), fx.handler("b"), nil)
	waitOwned(t, "both members to own 4 partitions", func() bool { return len(a.Owned()) == 4 && len(b.Owned()) == 4 })

	published := map[string][]uint64{}
	p := NewProducer(js, "go-group-test")
	publishKeys(t, p, 12, 10, published)
	fx.waitFor(t, 120)
	// b stops while the next events arrive: a takes its partitions from their checkpoints.
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(30 * time.Millisecond)
		_ = b.Stop(context.Background())
	}()
	publishKeys(t, p, 12, 10, published)
	<-done
	waitOwned(t, "a to own every partition", func() bool { return len(a.Owned()) == 8 })
	fx.waitFor(t, 240)
	_ = a.Stop(context.Background()) // nothing runs after this: a duplicate would be in the log
	got := fx.snapshot()
	dups, missing, disorder := check(got, published)
	if dups != 0 || missing != 0 || disorder != 0 || len(got) != 240 {
		t.Fatalf("%d handled: %d duplicated, %d missing, %d out of order", len(got), dups, missing, disorder)
	}
	by := map[string]int{}
	for _, h := range got {
		by[h.member]++
	}
	if by["a"] == 0 || by["b"] == 0 {
		t.Fatalf("handled per member: %v", by)
	}
	if s := b.Stats(); s.Released == 0 && s.Acquired == 0 {
		t.Fatalf("b's stats: %+v", s)
	}
}

func withInstance(o GroupOptions, id string) GroupOptions {
	o.Instance = id
	return o
}

func TestGroupTakesOverADeadMembersPartitions(t *testing.T) {
	url := startServer(t)
	_, js := connect(t, url)
	orderStream(t, js, fulfillmentEvent(t), jetstream.StreamConfig{})
	o := GroupOptions{Durable: "go-static", Stream: "ORDER", Partitions: 4, Lease: time.Second, Members: []string{"x", "y"}, Logger: quiet()}
	var fx effects
	x := join(t, js, withMember(o, "x", "x-1"), fx.handler("x"), nil)
	// y's first instance dies without leaving (its connection closes, its records stay).
	ync, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	yjs, _ := jetstream.New(ync)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	y1, err := JoinGroup(ctx, yjs, withMember(o, "y", "y-1"), fx.handler("y-1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = y1.Stop(context.Background()) })
	waitOwned(t, "x and y-1 to own their static shares", func() bool {
		return fmt.Sprint(x.Owned()) == "[0 2]" && fmt.Sprint(y1.Owned()) == "[1 3]"
	})
	published := map[string][]uint64{}
	p := NewProducer(js, "go-group-test")
	publishKeys(t, p, 8, 5, published)
	fx.waitFor(t, 40)
	// Once y-1's checkpoints are written past its last event, it dies without leaving (its
	// connection closes, its records stay): the standby must take over from them.
	last := published[fulfillment(0).GetOrderId()][4]
	for _, k := range []string{"go-static.ORDER.p.1", "go-static.ORDER.p.3"} {
		waitOwned(t, k+" checkpointed", func() bool { return recordSeq(t, js, k) > last })
	}
	ync.Close()
	y2 := join(t, js, withMember(o, "y", "y-2"), fx.handler("y-2"), nil)
	publishKeys(t, p, 8, 5, published)
	waitOwned(t, "the standby y-2 to take y's partitions after the lease", func() bool { return fmt.Sprint(y2.Owned()) == "[1 3]" })
	got := fx.waitFor(t, 80)
	dups, missing, disorder := check(got, published)
	if missing != 0 || disorder != 0 || dups != 0 {
		t.Fatalf("%d handled: %d duplicated, %d missing, %d out of order", len(got), dups, missing, disorder)
	}
	if fmt.Sprint(x.Owned()) != "[0 2]" || y2.Stats().TakenOver != 2 {
		t.Fatalf("x owns %v, y-2 took over %d", x.Owned(), y2.Stats().TakenOver)
	}
}

func withMember(o GroupOptions, member, instance string) GroupOptions {
	o.Member, o.Instance = member, instance
	return o
}

func TestGroupRefusesAnotherPartitionCountOrMode(t *testing.T) {
	_, js := connect(t, startServer(t))
	orderStream(t, js, fulfillmentEvent(t), jetstream.StreamConfig{})
	o := GroupOptions{Durable: "go-cfg", Stream: "ORDER", Partitions: 8, Logger: quiet()}
	join(t, js, o, (&effects{}).handler("a"), nil)
	ctx := context.Background()
	o.Partitions = 16
	if _, err := JoinGroup(ctx, js, o, (&effects{}).handler("b")); !IsCode(err, CodeConsumerGroup) {
		t.Fatalf("16 partitions in an 8-partition group: %v", err)
	}
	o.Partitions, o.Members, o.Member = 8, []string{"a", "b"}, "a"
	if _, err := JoinGroup(ctx, js, o, (&effects{}).handler("b")); !IsCode(err, CodeConsumerGroup) {
		t.Fatalf("a static member in an elastic group: %v", err)
	}
	o.Members, o.Member = []string{"a"}, "b"
	if _, err := JoinGroup(ctx, js, o, (&effects{}).handler("b")); !IsCode(err, CodeConsumerConfig) {
		t.Fatalf("a member outside Members: %v", err)
	}
}

// The negative control: a member that hashes keys differently handles the events of partitions
// it does not own, so the group handles some events twice and others never. The checks above
// would fail on such a member.
func TestGroupMemberWithAnotherHashBreaksTheGroup(t *testing.T) {
	_, js := connect(t, startServer(t))
	orderStream(t, js, fulfillmentEvent(t), jetstream.StreamConfig{})
	o := GroupOptions{Durable: "go-badhash", Stream: "ORDER", Partitions: 8, Lease: time.Second, Logger: quiet()}
	var fx effects
	a := join(t, js, withInstance(o, "a"), fx.handler("a"), nil)
	b := join(t, js, withInstance(o, "b"), fx.handler("b"), func(g *Group) {
		g.partitionOf = func(key string, n int) int { return (PartitionOf(key, n) + 1) % n }
	})
	waitOwned(t, "both members to own 4 partitions", func() bool { return len(a.Owned()) == 4 && len(b.Owned()) == 4 })
	published := map[string][]uint64{}
	publishKeys(t, NewProducer(js, "go-group-test"), 16, 5, published)
	// a owns the even partitions, b the odd ones; b handles the events of partitions p-1: every
	// event of an even partition twice, none of an odd one.
	even, odd := 0, 0
	for k, seqs := range published {
		if PartitionOf(k, 8)%2 == 0 {
			even += len(seqs)
		} else {
			odd += len(seqs)
		}
	}
	if even == 0 || odd == 0 {
		t.Fatalf("the keys fall in even partitions only or odd ones only (%d, %d)", even, odd)
	}
	fx.waitFor(t, 2*even)
	_ = a.Stop(context.Background())
	_ = b.Stop(context.Background())
	dups, missing, _ := check(fx.snapshot(), published)
	if dups != even || missing != odd {
		t.Fatalf("a member with another hash: %d duplicated (want %d), %d missing (want %d)", dups, even, missing, odd)
	}
}

// recordSeq is the checkpoint in a partition record of the group bucket.
func recordSeq(t *testing.T, js jetstream.JetStream, key string) uint64 {
	t.Helper()
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, "jetkit-groups")
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, key)
	if err != nil {
		return 0
	}
	var r partitionRecord
	if json.Unmarshal(e.Value(), &r) != nil || r.Seq == nil {
		return 0
	}
	return *r.Seq
}
