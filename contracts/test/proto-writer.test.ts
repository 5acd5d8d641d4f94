import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { ProtoWriter } from "../src/proto/index.js";
import { readGolden } from "../tools/vectors.js";
import { codecs, prng } from "./support.js";

/** What ts-proto's encode does with a writer it is given. */
type Encode = (message: unknown, writer: unknown) => { finish(): Uint8Array };

const STRINGS = [
  "",
  "a",
  "EUR",
  "x".repeat(127),
  "y".repeat(128),
  "z".repeat(20000),
  "Zürich",
  "東京",
  "😀",
  "\ud800",
  "a\udfffb",
  "é".repeat(70),
];
const INT32 = [0, 1, -1, 127, 128, 300, 2 ** 31 - 1, -(2 ** 31), -128];
const UINT32 = [0, 1, 127, 128, 16383, 16384, 2 ** 28, 2 ** 32 - 1];
const INT64: (number | bigint | string)[] = [
  0,
  1,
  -1,
  2 ** 32,
  -(2 ** 32),
  2 ** 32 + 5,
  -(2 ** 32) - 5,
  Number.MAX_SAFE_INTEGER,
  Number.MIN_SAFE_INTEGER,
  9223372036854775807n,
  -9223372036854775808n,
  "123456789012345",
  "-42",
];
const UINT64: (number | bigint | string)[] = [
  0,
  1,
  2 ** 32 - 1,
  2 ** 32,
  Number.MAX_SAFE_INTEGER,
  18446744073709551615n,
  "42",
];

/** Applies the same random sequence of writes (nested forks included) to both writers. */
function randomWrites(
  rng: ReturnType<typeof prng>,
  writers: (BinaryWriter | ProtoWriter)[],
  depth = 0,
): void {
  const ops = rng.int(1, 12);
  for (let i = 0; i < ops; i++) {
    const op = rng.int(0, 15);
    const tag = rng.int(8, 16000);
    for (const w of writers) w.uint32(tag);
    const all = (f: (w: BinaryWriter) => void) => {
      for (const w of writers) f(w as BinaryWriter);
    };
    switch (op) {
      case 0: {
        const v = rng.pick(UINT32);
        all((w) => w.uint32(v));
        break;
      }
      case 1: {
        const v = rng.pick(INT32);
        all((w) => w.int32(v));
        break;
      }
      case 2: {
        const v = rng.pick(INT32);
        all((w) => w.sint32(v));
        break;
      }
      case 3: {
        const v = rng.pick(INT64);
        all((w) => w.int64(v));
        break;
      }
      case 4: {
        const v = rng.pick(UINT64);
        all((w) => w.uint64(v));
        break;
      }
      case 5: {
        const v = rng.pick(INT64);
        all((w) => w.sint64(v));
        break;
      }
      case 6: {
        const v = rng.pick(UINT64);
        all((w) => w.fixed64(v));
        break;
      }
      case 7: {
        const v = rng.pick(INT64);
        all((w) => w.sfixed64(v));
        break;
      }
      case 8: {
        const v = rng.pick(UINT32);
        all((w) => w.fixed32(v));
        break;
      }
      case 9: {
        const v = rng.pick(INT32);
        all((w) => w.sfixed32(v));
        break;
      }
      case 10: {
        const v = rng.pick([0, -0, 1.5, -2.25, 3.4e38, Number.NaN, Number.POSITIVE_INFINITY, 1e-45]);
        all((w) => w.float(v));
        break;
      }
      case 11: {
        const v = rng.pick([0, Math.PI, -1e308, Number.NaN, Number.NEGATIVE_INFINITY]);
        all((w) => w.double(v));
        break;
      }
      case 12: {
        const v = rng.next() < 0.5;
        all((w) => w.bool(v));
        break;
      }
      case 13: {
        const v = rng.pick(STRINGS);
        all((w) => w.string(v));
        break;
      }
      case 14: {
        const v = Uint8Array.from({ length: rng.pick([0, 3, 200]) }, (_, k) => k & 0xff);
        all((w) => w.bytes(v));
        break;
      }
      default:
        if (depth < 4) {
          all((w) => w.fork());
          randomWrites(rng, writers, depth + 1);
          all((w) => w.join());
        }
    }
  }
}

describe("ProtoWriter (the producer's protobuf writer)", () => {
  test("writes the bytes BinaryWriter writes, for 3000 random messages through one writer", () => {
    const rng = prng(20261122);
    const fast = new ProtoWriter();
    const kept: [Uint8Array, Buffer][] = [];
    for (let n = 0; n < 3000; n++) {
      const reference = new BinaryWriter();
      randomWrites(rng, [reference, fast]);
      const want = reference.finish();
      const got = fast.finish();
      assert.deepEqual(Buffer.from(got), Buffer.from(want), `message ${n}`);
      kept.push([got, Buffer.from(want)]);
    }
    // a finished message is a view of the writer's arena: later messages must not overwrite it
    for (const [got, want] of kept) assert.deepEqual(Buffer.from(got), want);
  });

  test("encodes every golden-vector event as ts-proto's default writer does", () => {
    const fast = new ProtoWriter();
    const golden = readGolden();
    assert.ok(golden.vectors.length > 0);
    for (let round = 0; round < 50; round++) {
      for (const v of golden.vectors) {
        const codec = codecs.get(v.type);
        if (!codec) continue;
        const message = codec.fromJSON(v.event);
        const encode = codec.encode as unknown as Encode;
        const got = encode.call(codec, message, fast).finish();
        assert.equal(Buffer.from(got).toString("hex"), v.payload_hex, v.name);
      }
    }
  });

  test("refuses out-of-range values like BinaryWriter", () => {
    for (const [method, value] of [
      ["uint32", -1],
      ["uint32", 2 ** 32],
      ["uint32", 1.5],
      ["int32", 2 ** 31],
      ["int32", Number.NaN],
      ["sint32", -(2 ** 31) - 1],
      ["fixed32", -1],
      ["float", 1e39],
      ["int64", 2 ** 64],
      ["uint64", -1],
    ] as const) {
      const call = (w: BinaryWriter | ProtoWriter) =>
        (w as unknown as Record<string, (v: unknown) => unknown>)[method]!.call(w, value);
      const expected = (() => {
        try {
          call(new BinaryWriter());
          return undefined;
        } catch (err) {
          return (err as Error).message;
        }
      })();
      assert.ok(expected, `BinaryWriter accepts ${method}(${value})?`);
      assert.throws(() => call(new ProtoWriter()), { message: expected }, `${method}(${value})`);
    }
  });
});
