import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
import { Money } from "../gen/ts/shop/common/v1/commerce.js";
import { ProtoReader } from "../src/proto/index.js";
import { readGolden } from "../tools/vectors.js";
import { codecs, prng } from "./support.js";

/** What ts-proto's decode does with a reader it is given. */
type Decode = (input: BinaryReader) => unknown;

/** The result of `read`, or the error it threw (name and message), for comparing two readers. */
function outcome(read: () => unknown): unknown {
  try {
    return { value: read() };
  } catch (err) {
    return { threw: (err as Error).name, message: (err as Error).message };
  }
}

/** A string field's payload bytes: ASCII around the fast path's limit, UTF-8, and broken UTF-8. */
function stringPayloads(): Uint8Array[] {
  const te = new TextEncoder();
  const out: Uint8Array[] = [];
  for (let n = 0; n <= 48; n++) {
    const ascii = Uint8Array.from({ length: n }, (_, i) => 32 + ((i * 7 + n) % 95));
    out.push(ascii);
    // one byte above 0x7f at every position: the fast path must hand the field back
    for (let at = 0; at < n; at++) {
      const high = ascii.slice();
      high[at] = 0x80 + ((at * 13) % 0x80);
      out.push(high);
    }
  }
  for (const s of [
    "Zürich",
    "東京",
    "😀",
    "é".repeat(30),
    "\u007f\u0000\u0001",
    "\ufeffbom",
    "x".repeat(5000),
  ]) {
    out.push(te.encode(s));
  }
  // invalid UTF-8: lone continuation bytes, truncated sequences, overlongs, 0xff
  for (const bytes of [
    [0x80],
    [0xc3],
    [0xe6, 0x9d],
    [0xf0, 0x9f, 0x98],
    [0xc0, 0xaf],
    [0xff, 0x41],
    [0x41, 0xed, 0xa0, 0x80],
  ]) {
    out.push(Uint8Array.from(bytes));
  }
  return out;
}

describe("ProtoReader (the consumer's protobuf reader)", () => {
  test("reads every string field as BinaryReader does, strict or not, including invalid UTF-8", () => {
    let fast = 0;
    for (const payload of stringPayloads()) {
      const w = new BinaryWriter();
      w.uint32(10).bytes(payload).uint32(16).uint32(7);
      const bytes = w.finish();
      for (const strict of [false, true]) {
        const read = (r: BinaryReader) => () => {
          const tag = r.uint32();
          const s = r.string(strict);
          // the position after the field must match too: the next field is read from it
          return [tag, s, r.uint32(), r.uint32(), r.pos];
        };
        const label = `${Buffer.from(payload).toString("hex").slice(0, 40)} strict=${strict}`;
        assert.deepEqual(
          outcome(read(new ProtoReader(bytes))),
          outcome(read(new BinaryReader(bytes))),
          label,
        );
      }
      if (payload.length <= 40 && payload.every((b) => b < 0x80)) fast++;
    }
    assert.ok(fast > 40, "the fast path was exercised");
  });

  test("reads random byte soups as string fields as BinaryReader does (UTF-8 errors replaced the same way)", () => {
    const rng = prng(20261122);
    // Bytes at the edges of UTF-8: continuation, overlong and surrogate leads, BOM, invalid
    const pool = [0x00, 0x41, 0x7f, 0x80, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xed, 0xef];
    pool.push(0xf0, 0xf4, 0xf5, 0xff, 0xa0, 0x9f, 0x8f, 0x90, 0xbb);
    for (let n = 0; n < 20_000; n++) {
      const len = rng.int(1, 60);
      const payload = Uint8Array.from({ length: len }, () => pool[rng.int(0, pool.length - 1)]!);
      const bytes = new BinaryWriter().uint32(10).bytes(payload).finish();
      const read = (r: BinaryReader) => () => [r.uint32(), r.string(), r.pos];
      assert.deepEqual(
        outcome(read(new ProtoReader(bytes))),
        outcome(read(new BinaryReader(bytes))),
        Buffer.from(payload).toString("hex"),
      );
    }
  });

  test("reads every varint as BinaryReader does: values, position, truncation and overlong forms", () => {
    const values = [
      0,
      1,
      0x7f,
      0x80,
      0xff,
      0x3fff,
      0x4000,
      0x1fffff,
      0x200000,
      2 ** 28 - 1,
      2 ** 28,
      2 ** 32 - 1,
    ];
    const cases: Uint8Array[] = [];
    for (const v of values) cases.push(new BinaryWriter().uint32(v).uint32(v).finish());
    // negative int32s are written as 10-byte varints; a 1-byte value written in 2 bytes (overlong)
    cases.push(new BinaryWriter().int32(-1).int32(-300).finish());
    cases.push(Uint8Array.of(0x81, 0x00, 0x80, 0x00));
    // cut short: a continuation byte at the end, and nothing at all
    for (const v of [0x80, 0x4000, 2 ** 28]) {
      const whole = new BinaryWriter().uint32(v).finish();
      for (let n = 0; n < whole.length; n++) cases.push(whole.subarray(0, n));
    }
    // a view into a larger buffer: bytes past its end must not be read
    cases.push(new Uint8Array([0x96, 0x01, 0x80, 0x01]).subarray(0, 3));
    for (const bytes of cases) {
      const read = (r: BinaryReader) => () => [r.uint32(), r.pos, r.uint32(), r.pos];
      assert.deepEqual(
        outcome(read(new ProtoReader(bytes))),
        outcome(read(new BinaryReader(bytes))),
        Buffer.from(bytes).toString("hex"),
      );
    }
  });

  test("reads every int64 to the same value as BinaryReader, and ts-proto to the same number or error", () => {
    const values = [0n, 1n, -1n, 300n, -300n, 2n ** 31n, -(2n ** 31n), 2n ** 32n - 1n, 2n ** 32n];
    for (const edge of [2n ** 53n, 2n ** 63n - 1n, -(2n ** 63n)]) values.push(edge - 1n, edge, edge + 1n);
    values.push(-(2n ** 53n) - 1n, -(2n ** 53n), -(2n ** 53n) + 1n, 1_763_800_000n, -62_135_596_800n);
    const money = Money;
    const decode = money.decode as unknown as Decode;
    for (const v of values.filter((x) => x >= -(2n ** 63n) && x < 2n ** 63n)) {
      const bytes = new BinaryWriter().int64(v).int64(v).finish();
      const mine = new ProtoReader(bytes);
      const theirs = new BinaryReader(bytes);
      for (let i = 0; i < 2; i++) assert.equal(BigInt(mine.int64()), BigInt(theirs.int64()), `${v}`);
      assert.equal(mine.pos, theirs.pos);
      // Money.units through ts-proto's longToNumber: same number, or the same unsafe-integer error
      const field = new BinaryWriter().uint32(16).int64(v).finish();
      assert.deepEqual(
        outcome(() => decode.call(money, new ProtoReader(field))),
        outcome(() => money.decode(field)),
        `units ${v}`,
      );
    }
    for (const cut of [new Uint8Array([0x80]), new Uint8Array([0xff, 0xff, 0xff])]) {
      assert.deepEqual(
        outcome(() => new ProtoReader(cut).int64()),
        outcome(() => new BinaryReader(cut).int64()),
      );
    }
  });

  test("is a BinaryReader with BinaryReader's own fields, so ts-proto and BinaryReader's methods use it as one", () => {
    const bytes = new Uint8Array([8, 1]);
    const mine = new ProtoReader(bytes);
    assert.ok(mine instanceof BinaryReader);
    // BinaryReader's fields but its DataView, made on first use; plus ts-proto's depth counter
    const theirs = Object.keys(new BinaryReader(bytes)).filter((k) => k !== "view");
    assert.deepEqual(
      Object.keys(mine)
        .filter((k) => k !== "lazyView" && k !== "__tsProtoDecodeDepth")
        .sort(),
      theirs.sort(),
    );
  });

  test("reads every other field type as BinaryReader does, from a view into a larger buffer", () => {
    const w = new BinaryWriter();
    const doubles = [0, -0, 1.5, -2.25e300, Number.MIN_VALUE, Number.POSITIVE_INFINITY, Number.NaN];
    const floats = [0, -0, 1.5, -3.25e38, 1e-40, Number.NEGATIVE_INFINITY, Number.NaN];
    for (let i = 0; i < doubles.length; i++) w.double(doubles[i]!).float(floats[i]!);
    for (const v of [0, 1, -1, 2 ** 31 - 1, -(2 ** 31)])
      w.fixed32(v >>> 0)
        .sfixed32(v)
        .sint32(v)
        .int32(v);
    for (const v of [0n, 1n, -1n, 2n ** 63n - 1n, -(2n ** 63n)]) {
      w.fixed64(BigInt.asUintN(64, v)).sfixed64(v).sint64(v).uint64(BigInt.asUintN(64, v));
    }
    w.bool(true)
      .bool(false)
      .bytes(new Uint8Array([1, 2, 3]))
      .string("after the fixed-width fields");
    const payload = w.finish();
    // at a non-zero byte offset, as a message inside a socket read is
    const outer = new Uint8Array(payload.length + 16);
    outer.set(payload, 7);
    const bytes = outer.subarray(7, 7 + payload.length);
    const readAll = (r: BinaryReader) => () => {
      const out: unknown[] = [];
      for (const _ of doubles) out.push(r.double(), r.float());
      for (let i = 0; i < 5; i++) out.push(r.fixed32(), r.sfixed32(), r.sint32(), r.int32());
      for (let i = 0; i < 5; i++)
        out.push(String(r.fixed64()), String(r.sfixed64()), String(r.sint64()), String(r.uint64()));
      out.push(r.bool(), r.bool(), [...r.bytes()], r.string(), r.pos);
      return out;
    };
    assert.deepEqual(outcome(readAll(new ProtoReader(bytes))), outcome(readAll(new BinaryReader(bytes))));
    // skipping fixed-width fields, and reading past the end
    const skip = (r: BinaryReader) => () => [r.skip(1), r.skip(5), r.pos, r.double()];
    const short = new BinaryWriter().double(1).float(2).finish();
    assert.deepEqual(outcome(skip(new ProtoReader(short))), outcome(skip(new BinaryReader(short))));
  });

  test("throws BinaryReader's error for a string running past the end, and at the same position", () => {
    for (const [len, have] of [
      [5, 4],
      [40, 39],
      [41, 3],
      [300, 100],
    ] as const) {
      const w = new BinaryWriter();
      w.uint32(len);
      const bytes = new Uint8Array([...w.finish(), ...new Uint8Array(have).fill(0x61)]);
      const mine = new ProtoReader(bytes);
      const theirs = new BinaryReader(bytes);
      assert.deepEqual(
        outcome(() => mine.string()),
        outcome(() => theirs.string()),
      );
      assert.equal(mine.pos, theirs.pos);
      assert.throws(() => new ProtoReader(bytes).string(), RangeError);
    }
  });

  test("decodes every golden-vector event and random events as ts-proto's default reader does", () => {
    const golden = readGolden();
    let decoded = 0;
    for (const v of golden.vectors) {
      const codec = codecs.get(v.type);
      if (!codec || v.payload_hex === undefined) continue;
      const bytes = Buffer.from(v.payload_hex, "hex");
      const decode = codec.decode as unknown as Decode;
      assert.deepEqual(decode.call(codec, new ProtoReader(bytes)), codec.decode(bytes), v.name);
      decoded++;
    }
    assert.ok(decoded > 0, "golden vectors were decoded");
    // Random field soups through every event type: unknown fields skipped, wrong wire types,
    // truncation. Both readers must build the same object or throw the same error.
    const rng = prng(20261123);
    const words = stringPayloads();
    for (let n = 0; n < 2000; n++) {
      const w = new BinaryWriter();
      for (let f = rng.int(0, 12); f > 0; f--) {
        const field = rng.int(1, 12);
        const kind = rng.next();
        if (kind < 0.6) w.uint32((field << 3) | 2).bytes(words[rng.int(0, words.length - 1)]!);
        else if (kind < 0.8) w.uint32((field << 3) | 0).uint32(rng.int(0, 2 ** 20));
        // fixed-width fields: double/fixed64 (wire type 1) and float/fixed32 (wire type 5)
        else if (kind < 0.9) w.uint32((field << 3) | 1).double(rng.next() * 1e6 - 5e5);
        else w.uint32((field << 3) | 5).fixed32(rng.int(0, 2 ** 31));
      }
      let bytes = w.finish();
      if (rng.next() < 0.2) bytes = bytes.subarray(0, rng.int(0, bytes.length));
      for (const codec of codecs.values()) {
        const decode = codec.decode as unknown as Decode;
        assert.deepEqual(
          outcome(() => decode.call(codec, new ProtoReader(bytes))),
          outcome(() => codec.decode(bytes)),
          `${codec.$type} ${Buffer.from(bytes).toString("hex")}`,
        );
      }
    }
  });
});
