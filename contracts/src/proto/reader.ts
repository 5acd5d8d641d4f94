import { protoInt64 } from "@bufbuild/protobuf";
import { BinaryReader } from "@bufbuild/protobuf/wire";

/** Longest string read on the ASCII fast path (36-character UUIDs and most ids fit). */
const SHORT_MAX = 40;

/** BinaryReader's private 64-bit varint reader and its result (@bufbuild/protobuf 2.x, pinned). */
interface Varint64State {
  varint64(): void;
  varint64Lo: number;
  varint64Hi: number;
}

/** BinaryReader's own varint reader (an instance property there, so taken from an instance). */
const varint32read = new BinaryReader(new Uint8Array(0)).uint32;

/**
 * `BinaryReader#uint32` with the one- and two-byte varints (every tag and most lengths) read
 * inline. Anything else, a byte past the end included (`undefined < 0x80` is false), goes to
 * BinaryReader's reader, which reads longer varints and throws its own errors.
 */
function readUint32(this: { buf: Uint8Array; pos: number }): number {
  const buf = this.buf;
  const pos = this.pos;
  const b = buf[pos]!;
  if (b < 0x80) {
    this.pos = pos + 1;
    return b;
  }
  const c = buf[pos + 1]!;
  if (c < 0x80) {
    this.pos = pos + 2;
    return (b & 0x7f) | (c << 7);
  }
  return varint32read.call(this as unknown as BinaryReader);
}

/** Reads `n` bytes at `at` as one char each. */
type ShortRead = (bytes: Uint8Array, at: number, n: number) => string;

/**
 * One `String.fromCharCode(b[at], b[at + 1], ...)` call per length, chosen by a switch: no
 * intermediate array, no `apply`, no text decoder call for a short field, and one call site
 * (a function per length would make the call megamorphic). Built once from a fixed template in
 * which only the length varies, like the compiled validation checks.
 */
const readShort = (() => {
  const cases = [];
  for (let n = 1; n <= SHORT_MAX; n++) {
    const args = Array.from({ length: n }, (_, i) => `b[at + ${i}]`).join(", ");
    cases.push(`case ${n}: return fromCharCode(${args});`);
  }
  const body = `return function readShort(b, at, n) { switch (n) { ${cases.join(" ")} default: return ""; } };`;
  return new Function("fromCharCode", body)(String.fromCharCode) as ShortRead;
})();

/**
 * A protobuf binary reader for the generated `decode(input)` of ts-proto, which uses a reader it
 * is given as is: the same methods and results as `BinaryReader` of `@bufbuild/protobuf/wire`
 * (it is one), with cheaper strings and a fixed shape.
 *
 * - A string of up to 40 bytes, all ASCII, is made by one `String.fromCharCode` call (the
 *   string fields of events are mostly ids, codes and names). Anything else, and every error,
 *   goes through `BinaryReader#string` itself. The strings are flat copies: none keeps the
 *   message's bytes or a larger string alive.
 * - Tags and lengths of one or two bytes are read inline (`uint32`), the rest by BinaryReader.
 * - An `int64` within ±2^53 (every timestamp's seconds, every amount) is returned as its
 *   decimal string, which BinaryReader's contract allows (`bigint | string`; it returns strings
 *   where BigInt is missing) and which ts-proto's `longToNumber` turns into the same number
 *   without building a BigInt. Larger values come back as BinaryReader's own result.
 * - ts-proto's decode keeps its recursion depth on the reader; declaring the property here
 *   spares every reader a change of hidden class on its first nested message.
 *
 * Use one reader per message: `Type.decode(new ProtoReader(bytes))`.
 */
export class ProtoReader extends BinaryReader {
  /** Written by ts-proto's generated decode. */
  __tsProtoDecodeDepth = 0;
  /** An own property, as BinaryReader's is. */
  override uint32 = readUint32 as () => number;
  readonly #bytes: Uint8Array;

  /** Reads a `int64` field: a decimal string within ±2^53, else BinaryReader's bigint. */
  override int64(): bigint | string {
    const self = this as unknown as Varint64State;
    self.varint64();
    const hi = self.varint64Hi;
    // Two's complement: lo is unsigned, hi signed; |value| <= 2^53 is exact as a number.
    if (hi >= -0x200000 && hi < 0x200000) return String(hi * 0x100000000 + (self.varint64Lo >>> 0));
    return protoInt64.dec(self.varint64Lo, hi);
  }

  constructor(bytes: Uint8Array) {
    super(bytes);
    this.#bytes = bytes;
  }

  /** Reads a `string` field (UTF-8; invalid sequences replaced, or thrown on when `strict`). */
  override string(strict?: boolean): string {
    const at = this.pos;
    const len = this.uint32();
    const start = this.pos;
    const end = start + len;
    if (len <= SHORT_MAX && end <= this.len) {
      const b = this.#bytes;
      let i = start;
      while (i < end && b[i]! < 0x80) i++;
      if (i === end) {
        this.pos = end;
        return readShort(b, start, len);
      }
    }
    this.pos = at;
    return super.string(strict);
  }
}
