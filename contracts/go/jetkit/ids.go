package jetkit

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"sync"
	"time"
)

var idClock struct {
	sync.Mutex
	lastMs int64
	seq    uint16
}

// NewID returns a UUIDv7 (RFC 9562): 48-bit Unix milliseconds then random bits, so event ids
// sort by creation time. Within one millisecond a 12-bit counter keeps ids from one process
// strictly increasing, as the TypeScript uuidv7() does.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	now := time.Now().UnixMilli()
	idClock.Lock()
	if now <= idClock.lastMs {
		idClock.seq = (idClock.seq + 1) & 0xfff
		if idClock.seq == 0 {
			idClock.lastMs++ // counter wrapped: borrow the next millisecond
		}
		now = idClock.lastMs
	} else {
		idClock.lastMs = now
		idClock.seq = binary.BigEndian.Uint16(b[6:8]) & 0x3ff // leave room to count up
	}
	seq := idClock.seq
	idClock.Unlock()
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(now))
	copy(b[0:6], ms[2:8])
	b[6] = 0x70 | byte(seq>>8)&0x0f
	b[7] = byte(seq)
	b[8] = 0x80 | b[8]&0x3f
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
