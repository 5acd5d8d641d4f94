import { protoInt64 } from "@bufbuild/protobuf";

/** Size of each arena the writer hands out slices of. */
const ARENA_BYTES = 64 * 1024;
/** Below this much room left, the next message starts in a fresh arena. */
const ARENA_MIN_FREE = 8 * 1024;
const TWO_32 = 4294967296;
const textEncoder = new TextEncoder();

/**
 * A protobuf binary writer for the generated `encode(message, writer)` of ts-proto: the same
 * methods and the same bytes as `BinaryWriter` of `@bufbuild/protobuf/wire`, built for a
 * producer encoding one event after another.
 *
 * - `finish()` returns a view of the writer's arena instead of a copy, and the next message is
 *   written after it: bytes once returned are never written again (a new arena is started when
 *   one runs low, the old one lives as long as a view of it does, like Node's Buffer pool).
 * - The common cases are handled inline: varints and ASCII strings shorter than 128 characters
 *   are written byte by byte without a text encoder, and a value's range is checked with one
 *   integer comparison (invalid values still throw, as BinaryWriter's do).
 *
 * If an encode throws half way, drop the writer: its unfinished bytes would lead the next message.
 */
export class ProtoWriter {
  #buf = new Uint8Array(ARENA_BYTES);
  #view: DataView | undefined;
  /** Write position. */
  #pos = 0;
  /** Start of the message being written. */
  #start = 0;
  /** Positions of the one-byte length prefixes reserved by `fork()`. */
  #forks: number[] = [];

  /** Bytes of the message written so far and starts the next one. Not a copy: see the class doc. */
  finish(): Uint8Array {
    const out = this.#buf.subarray(this.#start, this.#pos);
    this.#forks.length = 0;
    if (this.#buf.length - this.#pos < ARENA_MIN_FREE) {
      this.#buf = new Uint8Array(ARENA_BYTES);
      this.#view = undefined;
      this.#pos = 0;
    }
    this.#start = this.#pos;
    return out;
  }

  /** Starts a length-delimited part (a nested message, a packed field); close it with `join()`. */
  fork(): this {
    this.#room(1);
    this.#forks.push(this.#pos);
    this.#buf[this.#pos++] = 0;
    return this;
  }

  /** Ends the last `fork()`: writes its length in front of it. */
  join(): this {
    const forks = this.#forks;
    if (forks.length === 0) throw new Error("invalid state, fork stack empty");
    let len = this.#pos - forks[forks.length - 1]! - 1;
    if (len < 0x80) {
      this.#buf[forks.pop()!] = len;
      return this;
    }
    // the one byte reserved is too short for this length: move the part right
    const extra = varint32Size(len) - 1;
    this.#room(extra); // may move the message (and the fork positions) to a new arena
    const at = forks.pop()!;
    len = this.#pos - at - 1;
    this.#buf.copyWithin(at + 1 + extra, at + 1, this.#pos);
    this.#pos = at;
    this.uint32(len);
    this.#pos += len;
    return this;
  }

  /** Writes a tag: field number and wire type. */
  tag(fieldNo: number, type: number): this {
    return this.uint32(((fieldNo << 3) | type) >>> 0);
  }

  /** Writes bytes as they are. */
  raw(chunk: Uint8Array): this {
    this.#room(chunk.length);
    this.#buf.set(chunk, this.#pos);
    this.#pos += chunk.length;
    return this;
  }

  uint32(value: number): this {
    if (value >>> 0 !== value) value = checkedInt(value, 0, 0xffffffff, "uint32");
    this.#room(5);
    const buf = this.#buf;
    let pos = this.#pos;
    while (value > 0x7f) {
      buf[pos++] = (value & 0x7f) | 0x80;
      value >>>= 7;
    }
    buf[pos++] = value;
    this.#pos = pos;
    return this;
  }

  int32(value: number): this {
    if ((value | 0) !== value) value = checkedInt(value, -0x80000000, 0x7fffffff, "int32");
    if (value >= 0) return this.uint32(value);
    // negative: sign-extended to 64 bits, always 10 bytes
    return this.#varint64(value >>> 0, 0xffffffff);
  }

  sint32(value: number): this {
    if ((value | 0) !== value) value = checkedInt(value, -0x80000000, 0x7fffffff, "int32");
    return this.uint32(((value << 1) ^ (value >> 31)) >>> 0);
  }

  bool(value: boolean): this {
    this.#room(1);
    this.#buf[this.#pos++] = value ? 1 : 0;
    return this;
  }

  fixed32(value: number): this {
    if (value >>> 0 !== value) value = checkedInt(value, 0, 0xffffffff, "uint32");
    this.#room(4);
    this.#dv().setUint32(this.#pos, value, true);
    this.#pos += 4;
    return this;
  }

  sfixed32(value: number): this {
    if ((value | 0) !== value) value = checkedInt(value, -0x80000000, 0x7fffffff, "int32");
    this.#room(4);
    this.#dv().setInt32(this.#pos, value, true);
    this.#pos += 4;
    return this;
  }

  float(value: number): this {
    value = checkedFloat32(value);
    this.#room(4);
    this.#dv().setFloat32(this.#pos, value, true);
    this.#pos += 4;
    return this;
  }

  double(value: number): this {
    this.#room(8);
    this.#dv().setFloat64(this.#pos, value, true);
    this.#pos += 8;
    return this;
  }

  int64(value: bigint | number | string): this {
    if (typeof value === "number" && Number.isSafeInteger(value)) {
      if (value >= 0 && value <= 0xffffffff) return this.uint32(value);
      return this.#varint64(value >>> 0, Math.floor(value / TWO_32) >>> 0);
    }
    const tc = protoInt64.enc(value);
    return this.#varint64(tc.lo >>> 0, tc.hi >>> 0);
  }

  uint64(value: bigint | number | string): this {
    if (typeof value === "number" && value >= 0 && value <= 0xffffffff && value >>> 0 === value) {
      return this.uint32(value);
    }
    const tc = protoInt64.uEnc(value);
    return this.#varint64(tc.lo >>> 0, tc.hi >>> 0);
  }

  sint64(value: bigint | number | string): this {
    const tc = protoInt64.enc(value);
    const sign = tc.hi >> 31;
    const lo = (tc.lo << 1) ^ sign;
    const hi = ((tc.hi << 1) | (tc.lo >>> 31)) ^ sign;
    return this.#varint64(lo >>> 0, hi >>> 0);
  }

  fixed64(value: bigint | number | string): this {
    const tc = protoInt64.uEnc(value);
    return this.#fixed64(tc.lo, tc.hi);
  }

  sfixed64(value: bigint | number | string): this {
    const tc = protoInt64.enc(value);
    return this.#fixed64(tc.lo, tc.hi);
  }

  /** A length-delimited `bytes` value. */
  bytes(value: Uint8Array): this {
    this.uint32(value.byteLength);
    return this.raw(value);
  }

  /** A length-delimited UTF-8 string (lone surrogates become U+FFFD, as with TextEncoder). */
  string(value: string): this {
    if (typeof value !== "string") value = String(value);
    const len = value.length;
    if (len < 0x80) {
      this.#room(len + 1);
      const buf = this.#buf;
      let pos = this.#pos + 1;
      let i = 0;
      for (; i < len; i++) {
        const code = value.charCodeAt(i);
        if (code > 0x7f) break;
        buf[pos++] = code;
      }
      if (i === len) {
        buf[this.#pos] = len;
        this.#pos = pos;
        return this;
      }
    }
    // Not ASCII or long: encode after a length prefix sized for the worst case, then close the gap.
    const most = len * 3;
    const guess = varint32Size(most);
    this.#room(guess + most);
    const start = this.#pos;
    const { written } = textEncoder.encodeInto(value, this.#buf.subarray(start + guess));
    const size = varint32Size(written);
    if (size !== guess) this.#buf.copyWithin(start + size, start + guess, start + guess + written);
    this.uint32(written);
    this.#pos += written;
    return this;
  }

  #varint64(lo: number, hi: number): this {
    this.#room(10);
    const buf = this.#buf;
    let pos = this.#pos;
    while (hi !== 0 || lo > 0x7f) {
      buf[pos++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    buf[pos++] = lo;
    this.#pos = pos;
    return this;
  }

  #fixed64(lo: number, hi: number): this {
    this.#room(8);
    const dv = this.#dv();
    dv.setInt32(this.#pos, lo, true);
    dv.setInt32(this.#pos + 4, hi, true);
    this.#pos += 8;
    return this;
  }

  /** Makes room for `n` more bytes: a bigger arena, with the message so far moved to its start. */
  #room(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    const used = this.#pos - this.#start;
    const next = new Uint8Array(Math.max(ARENA_BYTES, (used + n) * 2));
    next.set(this.#buf.subarray(this.#start, this.#pos));
    for (let i = 0; i < this.#forks.length; i++) this.#forks[i]! -= this.#start;
    this.#buf = next;
    this.#view = undefined;
    this.#pos = used;
    this.#start = 0;
  }

  #dv(): DataView {
    this.#view ??= new DataView(this.#buf.buffer, this.#buf.byteOffset, this.#buf.byteLength);
    return this.#view;
  }
}

function varint32Size(value: number): number {
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x200000) return 3;
  if (value < 0x10000000) return 4;
  return 5;
}

/** The value as an integer in [min, max] (numeric strings accepted), or the error BinaryWriter throws. */
function checkedInt(value: unknown, min: number, max: number, type: string): number {
  if (typeof value === "string") value = Number(value);
  else if (typeof value !== "number") throw new Error(`invalid ${type}: ${typeof value}`);
  const n = value as number;
  if (!Number.isInteger(n) || n > max || n < min) throw new Error(`invalid ${type}: ${n}`);
  return n;
}

function checkedFloat32(value: unknown): number {
  if (typeof value === "string") {
    const n = Number(value);
    if (Number.isNaN(n) && value !== "NaN") throw new Error(`invalid float32: ${value}`);
    value = n;
  } else if (typeof value !== "number") throw new Error(`invalid float32: ${typeof value}`);
  const n = value as number;
  if (!Number.isFinite(Math.fround(n)) && Number.isFinite(n)) throw new Error(`invalid float32: ${n}`);
  return n;
}
