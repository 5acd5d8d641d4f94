package jetkit

import (
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// PartitionOf is the partition of key in a partitioned consumer group of partitions partitions
// (contracts/WIRE.md §6a): FNV-1a 32 bit of the key's UTF-8 bytes, modulo partitions. Every
// language computes it the same way, so a Go member agrees with the TypeScript and Rust ones.
func PartitionOf(key string, partitions int) int {
	h := uint32(0x811c9dc5)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 0x01000193
	}
	return int(h % uint32(partitions))
}

// GroupKey is the key a message is partitioned by (contracts/WIRE.md §6a), read as the
// TypeScript consumer reads it: ce-partitionkey (percent-decoded; the structured event's
// partitionkey), else the contract's partition key field of the payload, else ce-id, else the
// stream sequence in decimal. It never fails: a message that breaks the wire rules still falls
// in one partition, whose owner dead-letters it.
func GroupKey(h nats.Header, subject string, data []byte, streamSeq uint64) string {
	var id string
	hasID := false
	body := data
	if isStructured(h, data) {
		if a, d, err := readStructured(h, data); err == nil {
			if a.partitionKey != "" {
				return a.partitionKey
			}
			body, id, hasID = d, a.id, a.id != ""
		}
	} else {
		if v, ok := headerLookup(h, HeaderPartitionKey); ok && v != "" {
			return lenientDecode(v)
		}
		if v, ok := headerLookup(h, HeaderID); ok {
			id, hasID = lenientDecode(v), true
		}
	}
	if k := contractKey(subject, body); k != "" {
		return k
	}
	if hasID {
		return id
	}
	return strconv.FormatUint(streamSeq, 10)
}

// lenientDecode percent-decodes a header value, keeping it as it is when it does not decode
// (as the TypeScript reader does; the message is dead-lettered later for its headers).
func lenientDecode(v string) string {
	if !strings.ContainsRune(v, '%') && !strings.HasPrefix(v, `"`) {
		return v
	}
	if d, err := PercentDecode(v); err == nil {
		return d
	}
	return v
}

// headerLookup is the first value of header name in any case, and whether it is present at all.
func headerLookup(h nats.Header, name string) (string, bool) {
	if vs, ok := h[name]; ok && len(vs) > 0 {
		return vs[0], true
	}
	for k, vs := range h {
		if len(vs) > 0 && strings.EqualFold(k, name) {
			return vs[0], true
		}
	}
	return "", false
}

var keyedEvents sync.Map // subject -> Event (the events with a partition key field)

// contractKey is the value of the contract's partition key field in payload, or "".
func contractKey(subject string, payload []byte) string {
	v, ok := keyedEvents.Load(subject)
	if !ok {
		ev, err := EventBySubject(subject)
		if err != nil || ev.PartitionKey == "" {
			ev = Event{}
		}
		v, _ = keyedEvents.LoadOrStore(subject, ev)
	}
	ev := v.(Event)
	if ev.PartitionKey == "" {
		return ""
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(ev.Descriptor.FullName())
	if err != nil {
		return ""
	}
	m := mt.New().Interface()
	if proto.Unmarshal(payload, m) != nil {
		return ""
	}
	return partitionKeyOf(ev, m)
}
