package jetkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// GroupOptions configure a member of a partitioned consumer group (contracts/WIRE.md §6a), the
// same group as @jetkit/consumers' createConsumer({ durable, group }) members join: same bucket,
// records, partition function and lease rules.
type GroupOptions struct {
	// Durable is the group's name: the durable name the TypeScript members use. Required.
	Durable string
	// Stream is the stream the group reads. Required.
	Stream string
	// Subjects filter the stream (the subjects the TypeScript members consume, e.g.
	// order.fulfillment.completed). Default: every subject of the stream.
	Subjects []string
	// Partitions of the group; every member must agree (a member with another count is refused
	// with JK_CONSUMER_GROUP). Default 16, at most 1024.
	Partitions int
	// Members makes the group static: partition p belongs to Members[p % len(Members)] for good,
	// and Member names this process's share (instances with the same Member are hot standbys).
	// Left empty: elastic membership, partitions spread round robin over the live instances.
	Members []string
	Member  string
	// Lease is how long a partition stays with an owner that stopped renewing it. Default 5s,
	// at least 1s; every member should use the same.
	Lease time.Duration
	// Bucket is the KV bucket of membership, ownership and checkpoints. Default jetkit-groups.
	Bucket string
	// Replicas of the bucket when this member creates it. Default 3 on a cluster, else 1.
	Replicas int
	// Concurrency is how many handlers run at once (one per key at most). Default 16.
	Concurrency int
	// MaxInFlight bounds the messages read and not finished. Default 1000.
	MaxInFlight int
	// Batch is the pull size of the ordered read. Default max(2 x Concurrency, 32).
	Batch int
	// MaxDeliver is how many times a failing handler runs (in place, holding its key) before
	// the message is dead-lettered as handler_exhausted. Default 5.
	MaxDeliver int
	// Backoff is the wait before retry n (n = 1 after the first failure). Default 500 ms
	// doubling up to 30 s, with up to 20 % jitter.
	Backoff func(n int) time.Duration
	// DeliverNew starts a new group at the end of the stream (the TypeScript deliverPolicy
	// "new"); default: every stored message. It only matters for partitions never owned before.
	DeliverNew bool
	// DeadLetterStream captures dlq.>. Default DLQ.
	DeadLetterStream string
	// Instance identifies this process in the group. Default <hostname>-<pid>-<random>, like
	// the TypeScript members. Letters, digits, - and _.
	Instance string
	// Logger receives the group's logs (partition acquired, released, lost, taken over).
	// Default slog.Default().
	Logger *slog.Logger
}

// GroupHandler handles one event. Return nil once its effect is done; an error retries it in
// place (the key's later events wait), Permanent(err) dead-letters it at once. Do not ack d.Msg:
// progress is the partition's checkpoint. ctx is cancelled when Stop's deadline passes.
type GroupHandler func(ctx context.Context, d *Delivery) error

var memberName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,100}$`)
var bucketName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func configError(format string, args ...any) error {
	return newError(CodeConsumerConfig, nil, format, args...)
}

func (o *GroupOptions) resolve(clustered bool) error {
	if o.Durable == "" || !memberName.MatchString(o.Durable) {
		return configError("option Durable %q is invalid: name the group (letters, digits, - and _), as its TypeScript members' durable", o.Durable)
	}
	if o.Stream == "" {
		return configError("option Stream is required: the stream the group reads (e.g. ORDER)")
	}
	if o.Partitions == 0 {
		o.Partitions = 16
	}
	if o.Partitions < 1 || o.Partitions > 1024 {
		return configError("option Partitions must be within 1..1024, got %d", o.Partitions)
	}
	if o.Lease == 0 {
		o.Lease = 5 * time.Second
	}
	if o.Lease < time.Second {
		return configError("option Lease must be at least 1s, got %s", o.Lease)
	}
	if o.Bucket == "" {
		o.Bucket = "jetkit-groups"
	}
	if !bucketName.MatchString(o.Bucket) {
		return configError("option Bucket %q is not a valid KV bucket name", o.Bucket)
	}
	if o.Replicas == 0 {
		o.Replicas = 1
		if clustered {
			o.Replicas = 3
		}
	}
	if o.Member != "" && !memberName.MatchString(o.Member) {
		return configError("option Member %q is invalid: use letters, digits, - and _ (up to 100)", o.Member)
	}
	if len(o.Members) > 0 {
		seen := map[string]bool{}
		for _, m := range o.Members {
			if !memberName.MatchString(m) || seen[m] {
				return configError("option Members must list distinct member names (letters, digits, - and _) for a static group, or be left empty for an elastic one")
			}
			seen[m] = true
		}
		if len(o.Members) > o.Partitions {
			return configError("option Members lists %d members for %d partitions: some would own nothing; raise Partitions or list fewer members", len(o.Members), o.Partitions)
		}
		if !seen[o.Member] {
			return configError("option Member must name this process's member in a static group (one of %s), got %q", strings.Join(o.Members, ", "), o.Member)
		}
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 1000
	}
	if o.Batch <= 0 {
		o.Batch = max(2*o.Concurrency, 32)
	}
	if o.MaxDeliver <= 0 {
		o.MaxDeliver = 5
	}
	if o.Backoff == nil {
		o.Backoff = defaultBackoff
	}
	if o.DeadLetterStream == "" {
		o.DeadLetterStream = "DLQ"
	}
	if o.Instance == "" {
		o.Instance = newInstanceID()
	}
	if !memberName.MatchString(o.Instance) {
		return configError("option Instance %q is invalid: use letters, digits, - and _ (up to 100)", o.Instance)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

func defaultBackoff(n int) time.Duration {
	d := 500 * time.Millisecond
	for i := 1; i < n && d < 30*time.Second; i++ {
		d *= 2
	}
	d = min(d, 30*time.Second)
	var b [1]byte
	_, _ = rand.Read(b[:])
	return d - time.Duration(float64(d)*0.2*float64(b[0])/255)
}

func newInstanceID() string {
	host, _ := os.Hostname()
	host = regexp.MustCompile(`[^A-Za-z0-9_-]`).ReplaceAllString(host, "_")
	var b [4]byte
	_, _ = rand.Read(b[:])
	id := fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	if len(id) > 100 {
		id = id[len(id)-100:]
	}
	return id
}

// The records of the group bucket (contracts/WIRE.md §6a), field order as the TypeScript
// members write them.
type groupConfigRecord struct {
	Partitions int    `json:"partitions"`
	Mode       string `json:"mode"`
}

type memberRecord struct {
	Member   string `json:"member"`
	Instance string `json:"instance"`
}

type partitionRecord struct {
	Owner  string  `json:"owner"`
	Member string  `json:"member"`
	Seq    *uint64 `json:"seq"`
}

// seenKey is a key of the bucket as the watcher last saw it.
type seenKey struct {
	revision uint64
	part     *partitionRecord // nil for member records and values that do not parse
	at       time.Time        // when this revision was first seen here (monotonic)
}

// ownedPart is a partition this instance owns.
type ownedPart struct {
	wmu      sync.Mutex // one write of the record at a time
	revision uint64     // of this instance's last write
	sentAt   time.Time  // when that write was sent
}

// partState is one owned partition from the reader's side (see the TypeScript PartState).
type partState struct {
	partition int
	next      uint64   // next stream sequence of this partition to take
	pending   []uint64 // taken and not finished, in stream order
	done      map[uint64]bool
	frozen    bool // being handed over: take no more
	lost      bool // taken over elsewhere: drop its messages
	run       int  // reader run from which readNext also counts for it
}

func (p *partState) take(seq uint64) {
	p.pending = append(p.pending, seq)
	p.next = seq + 1
}

func (p *partState) finish(seq uint64) {
	if len(p.pending) > 0 && p.pending[0] == seq {
		p.pending = p.pending[1:]
		for len(p.pending) > 0 && p.done[p.pending[0]] {
			delete(p.done, p.pending[0])
			p.pending = p.pending[1:]
		}
		return
	}
	p.done[seq] = true
}

func (p *partState) inFlight() int { return len(p.pending) - len(p.done) }

type groupTask struct {
	msg  jetstream.Msg
	part *partState
	seq  uint64
	key  string
}

// Group is this process's membership of a partitioned consumer group: it owns some of the
// group's partitions (see Owned) and runs their events in stream order, one at a time per key,
// keys in parallel. Stop leaves the group, handing the partitions over with their checkpoints.
type Group struct {
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	o       GroupOptions
	handler GroupHandler
	log     *slog.Logger
	elastic bool
	me      string // the assignee name of this process: instance (elastic) or member (static)
	// partitionOf is PartitionOf; tests replace it to show what a member that hashes
	// differently breaks.
	partitionOf func(key string, partitions int) int
	startSeq    uint64

	mu        sync.Mutex
	cond      *sync.Cond // parts, inFlight, stopping changed
	seen      map[string]seenKey
	owned     map[int]*ownedPart
	releasing map[int]bool
	memberRev uint64
	parts     map[int]*partState
	readNext  uint64
	run       int
	restart   bool
	inFlight  int
	iter      jetstream.MessagesContext
	stopping  bool
	lastPend  uint64

	lmu   sync.Mutex
	lanes map[string][]*groupTask
	sem   chan struct{}
	lwg   sync.WaitGroup // lane goroutines

	hctx    context.Context // handlers' context
	hcancel context.CancelFunc
	stopCh  chan struct{}
	loops   sync.WaitGroup // reader and ticker
	watcher jetstream.KeyWatcher

	stats GroupStats
}

// GroupStats counts the partition changes of this member.
type GroupStats struct {
	Acquired, TakenOver, Released, Lost int
}

// JoinGroup joins (creating when missing) the partitioned consumer group o.Durable on o.Stream
// and starts handling the events of the partitions it gets, with h. It fails with
// JK_CONSUMER_CONFIG for an invalid option and JK_CONSUMER_GROUP when the bucket cannot be used
// or the group exists with another partition count or mode.
func JoinGroup(ctx context.Context, js jetstream.JetStream, o GroupOptions, h GroupHandler) (*Group, error) {
	g, err := newGroup(ctx, js, o, h)
	if err != nil {
		return nil, err
	}
	if err := g.start(ctx); err != nil {
		return nil, err
	}
	return g, nil
}

func newGroup(ctx context.Context, js jetstream.JetStream, o GroupOptions, h GroupHandler) (*Group, error) {
	if h == nil {
		return nil, configError("a handler is required")
	}
	if err := o.resolve(js.Conn().ConnectedClusterName() != ""); err != nil {
		return nil, err
	}
	kv, err := js.KeyValue(ctx, o.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: o.Bucket, History: 1, Replicas: o.Replicas})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, o.Bucket)
		}
	}
	if err != nil {
		return nil, newError(CodeConsumerGroup, err, "could not create or open the consumer group bucket %s: %v. Check JetStream is enabled and the account may create KV buckets", o.Bucket, err)
	}
	mode := "elastic"
	if len(o.Members) > 0 {
		mode = "static"
	}
	want := groupConfigRecord{Partitions: o.Partitions, Mode: mode}
	key := o.Durable + "." + o.Stream + ".config"
	raw, _ := json.Marshal(want)
	if _, err := kv.Create(ctx, key, raw); err != nil {
		if !isCASConflict(err) {
			return nil, newError(CodeConsumerGroup, err, "could not write the config of consumer group %s: %v", o.Durable, err)
		}
		e, err := kv.Get(ctx, key)
		if err != nil {
			return nil, newError(CodeConsumerGroup, err, "could not read the config of consumer group %s: %v", o.Durable, err)
		}
		var have groupConfigRecord
		if err := json.Unmarshal(e.Value(), &have); err != nil {
			return nil, newError(CodeConsumerGroup, err, "the config record %s of consumer group %s is not JSON: %v", key, o.Durable, err)
		}
		if have != want {
			return nil, newError(CodeConsumerGroup, nil,
				"consumer group %s on stream %s exists with %d partitions (%s); this member asks for %d (%s). Every member must use the same partition count and mode: changing them would move keys between partitions and break their order. To change them, stop every member and pick a new durable name",
				o.Durable, o.Stream, have.Partitions, have.Mode, want.Partitions, want.Mode)
		}
	}
	startSeq := uint64(1)
	if o.DeliverNew {
		si, err := js.Stream(ctx, o.Stream)
		if err != nil {
			return nil, newError(CodeConsumerGroup, err, "could not read stream %s: %v", o.Stream, err)
		}
		startSeq = si.CachedInfo().State.LastSeq + 1
	}
	hctx, hcancel := context.WithCancel(context.Background())
	g := &Group{
		js: js, kv: kv, o: o, handler: h, elastic: mode == "elastic", partitionOf: PartitionOf,
		startSeq: startSeq, log: o.Logger.With("group", o.Durable, "stream", o.Stream),
		seen: map[string]seenKey{}, owned: map[int]*ownedPart{}, releasing: map[int]bool{},
		parts: map[int]*partState{}, lanes: map[string][]*groupTask{}, sem: make(chan struct{}, o.Concurrency),
		hctx: hctx, hcancel: hcancel, stopCh: make(chan struct{}),
	}
	g.cond = sync.NewCond(&g.mu)
	g.me = o.Instance
	if !g.elastic {
		g.me = o.Member
	}
	return g, nil
}

// isCASConflict reports a compare-and-set write that lost: JetStream "wrong last sequence",
// 10071, or 10164 which a replicated bucket answers while another write of the key is in flight.
func isCASConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var api *jetstream.APIError
	return errors.As(err, &api) && (api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

func (g *Group) start(ctx context.Context) error {
	// The watch lives as long as the membership, not as long as the caller's ctx.
	w, err := g.kv.WatchFiltered(g.hctx, []string{g.o.Durable + ".m.>", g.partPrefix() + ">"})
	if err != nil {
		return newError(CodeConsumerGroup, err, "could not watch the consumer group bucket %s: %v", g.o.Bucket, err)
	}
	g.watcher = w
	initial := make(chan struct{})
	go g.watch(w, initial)
	select {
	case <-initial: // every current record seen: the first tick knows the group
	case <-ctx.Done():
		_ = w.Stop()
		g.hcancel()
		return newError(CodeConsumerGroup, ctx.Err(), "the consumer group bucket %s did not answer: %v", g.o.Bucket, ctx.Err())
	}
	if err := g.heartbeat(ctx); err != nil {
		_ = w.Stop()
		g.hcancel()
		return newError(CodeConsumerGroup, err, "could not write this member's heartbeat: %v", err)
	}
	g.loops.Add(2)
	go g.readLoop()
	go g.tickLoop()
	g.log.Info("consumer group joined", "instance", g.o.Instance, "member", g.memberName(), "partitions", g.o.Partitions)
	return nil
}

func (g *Group) partPrefix() string   { return g.o.Durable + "." + g.o.Stream + ".p." }
func (g *Group) partKey(p int) string { return g.partPrefix() + strconv.Itoa(p) }
func (g *Group) memberKey() string    { return g.o.Durable + ".m." + g.o.Instance }

func (g *Group) memberName() string {
	if g.o.Member != "" {
		return g.o.Member
	}
	return g.o.Instance
}

func (g *Group) watch(w jetstream.KeyWatcher, initial chan struct{}) {
	first := true
	for e := range w.Updates() {
		if e == nil {
			if first {
				close(initial)
				first = false
			}
			continue
		}
		g.mu.Lock()
		if e.Operation() != jetstream.KeyValuePut {
			delete(g.seen, e.Key())
		} else if prev, ok := g.seen[e.Key()]; !ok || prev.revision != e.Revision() {
			s := seenKey{revision: e.Revision(), at: time.Now()}
			if strings.HasPrefix(e.Key(), g.partPrefix()) {
				var r partitionRecord
				if json.Unmarshal(e.Value(), &r) == nil {
					s.part = &r
				}
			}
			g.seen[e.Key()] = s
		}
		g.mu.Unlock()
	}
	if first {
		close(initial)
	}
}

// Owned lists the partitions this member owns now.
func (g *Group) Owned() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]int, 0, len(g.owned))
	for p := range g.owned {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Stats returns the partition changes of this member so far.
func (g *Group) Stats() GroupStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stats
}

// Instance is this process's instance id in the group.
func (g *Group) Instance() string { return g.o.Instance }

// fresh: this instance owns p with a lease fresh enough to start a handler (its last renewal
// was sent less than Lease/2 ago). Called with mu held.
func (g *Group) fresh(p int) bool {
	o := g.owned[p]
	return o != nil && time.Since(o.sentAt) < g.o.Lease/2
}

func (g *Group) heartbeat(ctx context.Context) error {
	raw, _ := json.Marshal(memberRecord{Member: g.memberName(), Instance: g.o.Instance})
	rev, err := g.kv.Put(ctx, g.memberKey(), raw)
	if err == nil {
		g.mu.Lock()
		g.memberRev = rev
		g.mu.Unlock()
	}
	return err
}

// liveMembers are the instances believed alive (elastic), sorted; static groups list their
// member names. Called with mu held.
func (g *Group) liveMembers(now time.Time) []string {
	if !g.elastic {
		return g.o.Members
	}
	prefix := g.o.Durable + ".m."
	var live []string
	self := false
	for k, s := range g.seen {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		id := k[len(prefix):]
		if id == g.o.Instance {
			self = true
			live = append(live, id)
		} else if now.Sub(s.at) < g.o.Lease {
			live = append(live, id)
		}
	}
	if !self {
		live = append(live, g.o.Instance)
	}
	slices.Sort(live)
	return live
}

func (g *Group) tickLoop() {
	defer g.loops.Done()
	every := max(100*time.Millisecond, g.o.Lease/4)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		g.tick()
		select {
		case <-g.stopCh:
			return
		case <-t.C:
		}
	}
}

func (g *Group) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), max(2*time.Second, g.o.Lease/2))
}

func (g *Group) tick() {
	ctx, cancel := g.opCtx()
	defer cancel()
	if err := g.heartbeat(ctx); err != nil {
		g.log.Warn("consumer group heartbeat failed; retrying", "err", err)
	}
	now := time.Now()
	g.mu.Lock()
	if g.stopping {
		g.mu.Unlock()
		return
	}
	members := g.liveMembers(now)
	var wg sync.WaitGroup
	for p := 0; p < g.o.Partitions; p++ {
		assignee := members[p%len(members)]
		if o := g.owned[p]; o != nil {
			// Renewed while it drains too: its handlers need a fresh lease to finish the drain.
			wg.Go(func() { g.renew(p, o) })
			if assignee != g.me && g.elastic && !g.releasing[p] {
				g.releasing[p] = true
				go g.release(p, assignee)
			}
			continue
		}
		if assignee == g.me {
			wg.Go(func() { g.tryAcquire(ctx, p, now) })
		}
	}
	g.mu.Unlock()
	wg.Wait()
}

func (g *Group) record(seq uint64) []byte {
	raw, _ := json.Marshal(partitionRecord{Owner: g.o.Instance, Member: g.memberName(), Seq: &seq})
	return raw
}

func (g *Group) tryAcquire(ctx context.Context, p int, now time.Time) {
	key := g.partKey(p)
	g.mu.Lock()
	s, known := g.seen[key]
	g.mu.Unlock()
	from := ""
	seq := g.startSeq
	if known && s.part != nil {
		if s.part.Owner != "" && s.part.Owner != g.o.Instance {
			if now.Sub(s.at) < g.o.Lease {
				return // a live owner: wait for it to release or lapse
			}
			from = s.part.Owner
		}
		if s.part.Seq != nil {
			seq = *s.part.Seq
		}
	}
	sentAt := time.Now()
	var rev uint64
	var err error
	if known {
		rev, err = g.kv.Update(ctx, key, g.record(seq), s.revision)
	} else {
		rev, err = g.kv.Create(ctx, key, g.record(seq))
	}
	if err != nil {
		if !isCASConflict(err) {
			g.log.Warn("could not acquire partition", "partition", p, "err", err)
		}
		return // lost the race: the watcher shows the winner
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopping {
		// Stopped meanwhile: hand it straight back.
		go g.writeRecord(p, &ownedPart{revision: rev}, seq)
		return
	}
	g.owned[p] = &ownedPart{revision: rev, sentAt: sentAt}
	g.stats.Acquired++
	if from != "" {
		g.stats.TakenOver++
		g.log.Info("partition taken over from an owner that stopped renewing it", "partition", p, "seq", seq, "from", from)
	} else {
		g.log.Info("partition acquired", "partition", p, "seq", seq)
	}
	g.acquired(p, seq)
}

func (g *Group) renew(p int, o *ownedPart) {
	if !o.wmu.TryLock() {
		return // the previous renewal is still in flight
	}
	defer o.wmu.Unlock()
	g.mu.Lock()
	if g.owned[p] != o {
		g.mu.Unlock()
		return
	}
	raw := g.record(g.checkpoint(p))
	g.mu.Unlock()
	ctx, cancel := g.opCtx()
	defer cancel()
	sentAt := time.Now()
	rev, err := g.kv.Update(ctx, g.partKey(p), raw, o.revision)
	g.mu.Lock()
	defer g.mu.Unlock()
	if err == nil {
		o.revision = rev
		o.sentAt = sentAt
		return
	}
	if g.owned[p] != o {
		return // released meanwhile
	}
	if isCASConflict(err) {
		delete(g.owned, p)
		g.stats.Lost++
		g.log.Warn("partition lost: another member took it over (this one paused or was cut off)", "partition", p)
		g.lost(p)
		return
	}
	g.log.Warn("could not renew partition; retrying", "partition", p, "err", err)
}

// release hands p to another member (elastic): drain it, then write its checkpoint, no owner.
func (g *Group) release(p int, to string) {
	g.log.Info("partition moving to another member: draining it", "partition", p, "to", to)
	g.mu.Lock()
	defer func() {
		delete(g.releasing, p)
		g.mu.Unlock()
	}()
	part := g.parts[p]
	o := g.owned[p]
	if part == nil || o == nil {
		return
	}
	part.frozen = true
	for part.inFlight() > 0 && !part.lost && !g.stopping {
		g.cond.Wait()
	}
	if part.lost || g.stopping || g.owned[p] != o {
		return // lost meanwhile, or Stop hands it over
	}
	delete(g.parts, p)
	delete(g.owned, p)
	seq := part.next
	g.mu.Unlock()
	ok := g.writeRecord(p, o, seq)
	g.mu.Lock()
	if ok {
		g.stats.Released++
		g.log.Info("partition released", "partition", p, "to", to, "seq", seq)
	}
}

// writeRecord writes p's record with no owner and checkpoint seq, after o's write in flight.
func (g *Group) writeRecord(p int, o *ownedPart, seq uint64) bool {
	o.wmu.Lock()
	defer o.wmu.Unlock()
	raw, _ := json.Marshal(partitionRecord{Seq: &seq})
	ctx, cancel := g.opCtx()
	defer cancel()
	if _, err := g.kv.Update(ctx, g.partKey(p), raw, o.revision); err != nil {
		// Taken over meanwhile, or the store is down: the record lapses and the next owner
		// starts from the last checkpoint written (an earlier one: at most a replay).
		g.log.Warn("could not write the released partition's checkpoint", "partition", p, "err", err)
		return false
	}
	return true
}

// acquired: p is this instance's from stream sequence seq on. Called with mu held.
func (g *Group) acquired(p int, seq uint64) {
	behind := g.run > 0 && seq < g.readNext
	run := g.run
	if behind {
		run++
		g.restart = true
		if g.iter != nil {
			g.iter.Stop()
		}
	}
	g.parts[p] = &partState{partition: p, next: seq, done: map[uint64]bool{}, run: run}
	g.cond.Broadcast()
}

// lost: p was taken over elsewhere; drop its messages. Called with mu held.
func (g *Group) lost(p int) {
	part := g.parts[p]
	if part == nil {
		return
	}
	part.lost = true
	delete(g.parts, p)
	g.inFlight -= part.inFlight()
	g.cond.Broadcast()
}

// checkpoint of p: its first unfinished sequence, else how far the reader saw it. Called with
// mu held.
func (g *Group) checkpoint(p int) uint64 {
	part := g.parts[p]
	if part == nil {
		return 0
	}
	if len(part.pending) > 0 {
		return part.pending[0]
	}
	// Every message before readNext was seen by a run that started at or before part.next.
	if part.frozen || part.run > g.run {
		return part.next
	}
	return max(part.next, g.readNext)
}

func (g *Group) finish(t *groupTask) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t.part.lost {
		return
	}
	t.part.finish(t.seq)
	g.inFlight--
	g.cond.Broadcast()
}

// readLoop reads the stream in order from the lowest checkpoint of the owned partitions and
// hands each message of an owned partition to its key's lane.
func (g *Group) readLoop() {
	defer g.loops.Done()
	failures := 0
	for {
		g.mu.Lock()
		var live []*partState
		for {
			if g.stopping {
				g.mu.Unlock()
				return
			}
			live = live[:0]
			for _, p := range g.parts {
				if !p.frozen {
					live = append(live, p)
				}
			}
			if len(live) > 0 {
				break
			}
			g.cond.Wait()
		}
		from := uint64(0)
		for i, p := range live {
			// What the run that ends saw counts for the partitions it served from their start.
			if p.run <= g.run && g.readNext > p.next {
				p.next = g.readNext
			}
			if i == 0 || p.next < from {
				from = p.next
			}
		}
		from = max(from, 1)
		g.restart = false
		g.run++
		for _, p := range live {
			p.run = g.run
		}
		g.readNext = from
		g.mu.Unlock()

		if err := g.readFrom(from); err != nil {
			failures++
			g.mu.Lock()
			stopping := g.stopping
			g.mu.Unlock()
			if stopping {
				return
			}
			g.log.Warn("group reader failed; reading again", "err", err, "attempt", failures)
			select {
			case <-g.stopCh:
				return
			case <-time.After(min(5*time.Second, time.Duration(100<<min(failures, 6))*time.Millisecond)):
			}
			continue
		}
		failures = 0
	}
}

// readFrom runs one ordered read from stream sequence from until a restart, a stop or an error.
func (g *Group) readFrom(from uint64) error {
	ctx, cancel := g.opCtx()
	c, err := g.js.OrderedConsumer(ctx, g.o.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: g.o.Subjects, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from,
		// A read stopped for a restart leaves its consumer behind: the server drops it soon.
		InactiveThreshold: 30 * time.Second,
	})
	cancel()
	if err != nil {
		return err
	}
	it, err := c.Messages(jetstream.PullMaxMessages(g.o.Batch), jetstream.PullExpiry(5*time.Second))
	if err != nil {
		return err
	}
	defer it.Stop()
	g.mu.Lock()
	g.iter = it
	if g.restart || g.stopping {
		it.Stop()
	}
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.iter = nil
		g.mu.Unlock()
	}()
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return err
		}
		meta, err := msg.Metadata()
		if err != nil {
			continue
		}
		seq := meta.Sequence.Stream
		key := GroupKey(msg.Headers(), msg.Subject(), msg.Data(), seq)
		p := g.partitionOf(key, g.o.Partitions)
		g.mu.Lock()
		g.readNext = seq + 1
		g.lastPend = meta.NumPending
		if part := g.parts[p]; part != nil && !part.frozen && seq >= part.next {
			part.take(seq)
			g.inFlight++
			g.mu.Unlock()
			g.dispatch(&groupTask{msg: msg, part: part, seq: seq, key: key})
			g.mu.Lock()
			for g.inFlight >= g.o.MaxInFlight && !g.stopping && !g.restart {
				g.cond.Wait()
			}
		}
		again := g.restart || g.stopping
		g.mu.Unlock()
		if again {
			return nil
		}
	}
}

// dispatch queues t on its key's lane: one message of a key at a time, in stream order.
func (g *Group) dispatch(t *groupTask) {
	g.lmu.Lock()
	if q, ok := g.lanes[t.key]; ok {
		g.lanes[t.key] = append(q, t)
		g.lmu.Unlock()
		return
	}
	g.lanes[t.key] = []*groupTask{t}
	g.lmu.Unlock()
	g.lwg.Add(1)
	go g.runLane(t.key)
}

func (g *Group) runLane(key string) {
	defer g.lwg.Done()
	for {
		g.lmu.Lock()
		q := g.lanes[key]
		if len(q) == 0 {
			delete(g.lanes, key)
			g.lmu.Unlock()
			return
		}
		t := q[0]
		g.lanes[key] = q[1:]
		g.lmu.Unlock()
		select {
		case g.sem <- struct{}{}:
			g.runTask(t)
			<-g.sem
		case <-g.stopCh:
			// Left pending: the partition's checkpoint stays before it.
		}
	}
}

// waitFresh waits until this instance may start a handler of t's partition; false when the
// partition was lost or the member stops (the message stays pending for the next owner).
func (g *Group) waitFresh(t *groupTask) bool {
	for {
		g.mu.Lock()
		lost, stopping, fresh := t.part.lost, g.stopping, g.fresh(t.part.partition)
		g.mu.Unlock()
		if lost || stopping {
			return false
		}
		if fresh {
			return true
		}
		select {
		case <-g.stopCh:
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// hold waits d; false when the member stops meanwhile.
func (g *Group) hold(d time.Duration) bool {
	select {
	case <-g.stopCh:
		return false
	case <-time.After(d):
		return true
	}
}

func (g *Group) runTask(t *groupTask) {
	if !g.waitFresh(t) {
		return
	}
	log := g.log.With("subject", t.msg.Subject(), "seq", t.seq, "partition", t.part.partition)
	d, err := Decode(t.msg)
	if err != nil {
		log.Warn("poison message; dead-lettering it without retries", "failure_class", FailureClassOf(err), "reason", err)
		g.deadLetter(t, FailureClassOf(err), err, 1, log)
		return
	}
	for attempt := 1; ; attempt++ {
		err := g.call(d)
		if err == nil {
			g.finish(t)
			return
		}
		if IsCode(err, CodePermanent) {
			log.Warn("handler failed permanently", "err", err)
			g.deadLetter(t, FailureHandlerPermanent, err, uint64(attempt), log)
			return
		}
		if attempt >= g.o.MaxDeliver {
			log.Warn("handler failed on the last delivery", "err", err)
			g.deadLetter(t, FailureHandlerExhausted, err, uint64(attempt), log)
			return
		}
		delay := g.o.Backoff(attempt)
		log.Info("handler failed; retrying in place to keep the key's order", "err", err, "delay", delay)
		// A partition lost meanwhile is the new owner's: never retry it here.
		if !g.hold(delay) || !g.waitFresh(t) {
			return
		}
	}
}

func (g *Group) call(d *Delivery) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return g.handler(g.hctx, d)
}

func (g *Group) deadLetter(t *groupTask, class FailureClass, reason error, deliveries uint64, log *slog.Logger) {
	first := time.Now()
	for attempt := 1; ; attempt++ {
		ctx, cancel := g.opCtx()
		err := publishDeadLetter(ctx, g.js, t.msg, g.o.DeadLetterStream, DeadLetterInput{
			Stream: g.o.Stream, Sequence: t.seq, Subject: t.msg.Subject(), Consumer: g.o.Durable,
			Deliveries: deliveries, FailureClass: class, Reason: reason.Error(),
			FirstFailure: first, LastFailure: time.Now(),
		})
		cancel()
		if err == nil {
			log.Warn("message dead-lettered", "failure_class", class)
			g.finish(t)
			return
		}
		delay := g.o.Backoff(attempt)
		log.Error("could not dead-letter the message; retrying in place", "err", err, "delay", delay)
		if !g.hold(delay) || !g.waitFresh(t) {
			return
		}
	}
}

// Stop leaves the group: it stops reading, lets the running handlers finish until ctx is done
// (then cancels their context), and hands every partition over with its checkpoint (a message
// not finished stays after it, for the next owner). Call it once.
func (g *Group) Stop(ctx context.Context) error {
	g.mu.Lock()
	if g.stopping {
		g.mu.Unlock()
		return nil
	}
	g.stopping = true
	if g.iter != nil {
		g.iter.Stop()
	}
	g.cond.Broadcast()
	g.mu.Unlock()
	close(g.stopCh)
	g.loops.Wait()
	lanes := make(chan struct{})
	go func() { g.lwg.Wait(); close(lanes) }()
	select {
	case <-lanes:
	case <-ctx.Done():
		g.hcancel()
		g.log.Warn("in-flight handlers passed the stop deadline; their context is cancelled")
	}
	g.mu.Lock()
	owned := make(map[int]*ownedPart, len(g.owned))
	seqs := map[int]uint64{}
	for p, o := range g.owned {
		owned[p] = o
		seqs[p] = g.checkpoint(p)
	}
	g.owned = map[int]*ownedPart{}
	rev := g.memberRev
	g.mu.Unlock()
	var wg sync.WaitGroup
	for p, o := range owned {
		wg.Go(func() {
			if g.writeRecord(p, o, seqs[p]) {
				g.log.Info("partition released", "partition", p, "seq", seqs[p])
			}
		})
	}
	wg.Wait()
	dctx, cancel := g.opCtx()
	defer cancel()
	_ = g.kv.Delete(dctx, g.memberKey(), jetstream.LastRevision(rev))
	_ = g.watcher.Stop()
	g.hcancel()
	return nil
}
