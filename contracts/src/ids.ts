import { randomFillSync } from "node:crypto";

let lastMs = 0;
let seq = 0;

// Random bytes are drawn in blocks: one randomFillSync per 409 ids instead of two randomBytes
// calls per id (which dominated the cost of an id).
const POOL = Buffer.allocUnsafe(4096);
let poolAt = POOL.length;
function random(n: number): number {
  if (poolAt + n > POOL.length) {
    randomFillSync(POOL);
    poolAt = 0;
  }
  const at = poolAt;
  poolAt += n;
  return at;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/**
 * A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits, so ids sort by creation time.
 * Within one millisecond a 12-bit counter keeps ids from one process strictly increasing.
 */
export function uuidv7(now: number = Date.now()): string {
  if (now <= lastMs) {
    seq = (seq + 1) & 0xfff;
    if (seq === 0) lastMs += 1; // counter wrapped: borrow the next millisecond
    now = lastMs;
  } else {
    lastMs = now;
    const at = random(2);
    seq = ((POOL[at]! << 8) | POOL[at + 1]!) & 0x3ff; // leave room to count up
  }
  const r = random(8);
  const hi = Math.floor(now / 0x1000000); // top 24 of the 48 timestamp bits
  const lo = now % 0x1000000;
  return (
    HEX[(hi >>> 16) & 0xff]! +
    HEX[(hi >>> 8) & 0xff]! +
    HEX[hi & 0xff]! +
    HEX[(lo >>> 16) & 0xff]! +
    "-" +
    HEX[(lo >>> 8) & 0xff]! +
    HEX[lo & 0xff]! +
    "-" +
    HEX[0x70 | ((seq >> 8) & 0x0f)]! +
    HEX[seq & 0xff]! +
    "-" +
    HEX[0x80 | (POOL[r]! & 0x3f)]! +
    HEX[POOL[r + 1]!]! +
    "-" +
    HEX[POOL[r + 2]!]! +
    HEX[POOL[r + 3]!]! +
    HEX[POOL[r + 4]!]! +
    HEX[POOL[r + 5]!]! +
    HEX[POOL[r + 6]!]! +
    HEX[POOL[r + 7]!]!
  );
}
