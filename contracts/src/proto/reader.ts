import { protoInt64 } from "@bufbuild/protobuf";
import { BinaryReader } from "@bufbuild/protobuf/wire";

/**
 * Longest string made by {@link readAscii} (36-character UUIDs and most ids fit). The reader
 * is one generated function with a case per length; far above this, V8 stops optimising it (at
 * 64, decoding an event took twice the instructions).
 */
const ASCII_STRING_MAX = 40;

/**
 * BinaryReader's own fields (@bufbuild/protobuf 2.17, pinned): an instance has exactly these, and
 * a test compares them with a real BinaryReader, so an upgrade that changes them fails loudly.
 */
interface ReaderFields {
  decodeUtf8: (bytes: Uint8Array, strict?: boolean) => string;
  varint64Lo: number;
  varint64Hi: number;
  varint64: () => void;
  uint32: () => number;
  buf: Uint8Array;
  len: number;
  pos: number;
}

/** A BinaryReader made once, to take its function-valued instance fields from. */
const template = new BinaryReader(new Uint8Array(0)) as unknown as ReaderFields;

/**
 * `BinaryReader#uint32` with the one- and two-byte varints (every tag and most lengths) read
 * inline. Anything else, a byte past the end included (`undefined < 0x80` is false), goes to
 * BinaryReader's reader, which reads longer varints and throws its own errors.
 */
function readUint32(this: ReaderFields): number {
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
  return template.uint32.call(this);
}

/**
 * Reads `n` bytes at `at` (the caller checks they lie within `bytes`): their string when all are
 * ASCII and `n` is at most {@link ASCII_STRING_MAX}, else undefined. The string is a flat copy.
 */
type AsciiRead = (bytes: Uint8Array, at: number, n: number) => string | undefined;

/**
 * One case per length: load the bytes once, OR them to see they are all ASCII, and make the
 * string with one `String.fromCharCode(c0, c1, ...)` call. No loop, no intermediate array, no
 * text decoder call; one call site (a function per length would make the call megamorphic).
 * Built once from a fixed template in which only the length varies, like the compiled checks.
 */
const readAscii = (() => {
  const cases = ['case 0: return "";'];
  for (let n = 1; n <= ASCII_STRING_MAX; n++) {
    const c = Array.from({ length: n }, (_, i) => `c${i}`);
    const loads = c.map((v, i) => `${v} = b[at + ${i}]`).join(", ");
    cases.push(
      `case ${n}: { const ${loads}; return (${c.join(" | ")}) < 0x80 ? fromCharCode(${c.join(", ")}) : undefined; }`,
    );
  }
  const body = `return function readAscii(b, at, n) { switch (n) { ${cases.join(" ")} default: return undefined; } };`;
  return new Function("fromCharCode", body)(String.fromCharCode) as AsciiRead;
})();

/**
 * A protobuf binary reader for the generated `decode(input)` of ts-proto, which uses a reader it
 * is given as is: the same methods and results as `BinaryReader` of `@bufbuild/protobuf/wire`
 * (it is one: `instanceof BinaryReader` holds and every other method is BinaryReader's own),
 * made cheaper for the fields of events. Decoding the 1 KiB event of the consumer benchmark takes
 * a third fewer instructions than with BinaryReader (36.6k against 54.6k, counted by valgrind).
 *
 * - No `DataView` per message: BinaryReader makes one in its constructor (a tenth of decoding a
 *   whole event), used only by fixed-width fields (`double`, `float`, `fixed32/64`, `sfixed32/64`).
 *   Here it is made on the first such read.
 * - A string of up to 40 bytes, all ASCII, is made by one generated case per length: the string fields of
 *   events are mostly ids, codes and names. Other text is read by Node's UTF-8 reader directly
 *   (same result as BinaryReader's decoder). Strict reads and every error go through
 *   `BinaryReader#string` itself.
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
export interface ProtoReader extends BinaryReader {
  /** Written by ts-proto's generated decode. */
  __tsProtoDecodeDepth: number;
}

interface ReaderState extends ReaderFields {
  __tsProtoDecodeDepth: number;
  /** The DataView of `buf`, made on first use. */
  lazyView: DataView | undefined;
}

/**
 * The constructor sets BinaryReader's fields itself instead of calling BinaryReader's, which
 * would make the DataView (a class's constructor must call it; a function's need not).
 */
function ProtoReaderImpl(this: ReaderState, bytes: Uint8Array): void {
  this.decodeUtf8 = template.decodeUtf8;
  this.varint64Lo = 0;
  this.varint64Hi = 0;
  this.varint64 = template.varint64;
  this.uint32 = readUint32;
  this.buf = bytes;
  this.len = bytes.length;
  this.pos = 0;
  this.lazyView = undefined;
  this.__tsProtoDecodeDepth = 0;
}

const baseString = BinaryReader.prototype.string;

/**
 * Node's own UTF-8 reader of a byte range (`Buffer#utf8Slice`, which `buf.toString()` uses): the
 * same text as BinaryReader's `TextDecoder` with `ignoreBOM` (replacement characters included;
 * a test compares them on random invalid sequences), without the decoder's argument checks and
 * a subarray per field. Undefined outside Node: BinaryReader's path is used then.
 */
const utf8Slice = (
  globalThis as { Buffer?: { prototype: { utf8Slice?: (start: number, end: number) => string } } }
).Buffer?.prototype.utf8Slice;

ProtoReaderImpl.prototype = Object.create(BinaryReader.prototype, {
  constructor: { value: ProtoReaderImpl, writable: true, configurable: true },
  /** BinaryReader's fixed-width reads use `this.view`. */
  view: {
    get(this: ReaderState): DataView {
      this.lazyView ??= new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
      return this.lazyView;
    },
    configurable: true,
  },
  /** Reads a `int64` field: a decimal string within ±2^53, else BinaryReader's bigint. */
  int64: {
    value: function int64(this: ReaderState): bigint | string {
      this.varint64();
      const hi = this.varint64Hi;
      // Two's complement: lo is unsigned, hi signed; |value| <= 2^53 is exact as a number.
      if (hi >= -0x200000 && hi < 0x200000) return String(hi * 0x100000000 + (this.varint64Lo >>> 0));
      return protoInt64.dec(this.varint64Lo, hi);
    },
    writable: true,
    configurable: true,
  },
  /** Reads a `string` field (UTF-8; invalid sequences replaced, or thrown on when `strict`). */
  string: {
    value: function string(this: ReaderState, strict?: boolean): string {
      const at = this.pos;
      const len = this.uint32();
      const start = this.pos;
      const end = start + len;
      if (end <= this.len) {
        if (len <= ASCII_STRING_MAX) {
          const s = readAscii(this.buf, start, len);
          if (s !== undefined) {
            this.pos = end;
            return s;
          }
        }
        // Longer or non-ASCII text; strict reads (which throw on invalid UTF-8) stay BinaryReader's.
        if (!strict && utf8Slice) {
          this.pos = end;
          return utf8Slice.call(this.buf, start, end);
        }
      }
      this.pos = at;
      return baseString.call(this as unknown as BinaryReader, strict);
    },
    writable: true,
    configurable: true,
  },
});

export const ProtoReader = ProtoReaderImpl as unknown as new (bytes: Uint8Array) => ProtoReader;
