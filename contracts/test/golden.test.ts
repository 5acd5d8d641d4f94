import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { fromBinary, fromJson, toBinary } from "@bufbuild/protobuf";
import {
  ContractValidator,
  getCatalog,
  isJetkitError,
  percentDecode,
  readEvent,
  readEventHeaders,
} from "../src/index.js";
import { computeGolden, readGolden } from "../tools/vectors.js";
import { codecs } from "./support.js";

describe("golden vectors (contracts/vectors/golden.json)", () => {
  const golden = readGolden();
  const catalog = getCatalog();

  test("the committed outputs are what the inputs produce", () => {
    assert.deepEqual(
      computeGolden(golden),
      golden,
      "run 'pnpm --filter @jetkit/contracts vectors' and review the diff",
    );
  });

  test("cover every event of the catalog", () => {
    const covered = new Set(golden.vectors.map((v) => v.type));
    const missing = catalog.events.filter((e) => !covered.has(e.type)).map((e) => e.type);
    assert.deepEqual(missing, []);
  });

  test("every header value is printable ASCII and at most 1024 characters", () => {
    for (const v of golden.vectors) {
      for (const [k, value] of v.headers!) {
        assert.match(value, /^[\x20-\x7e]*$/, `${v.name}: ${k}`);
        assert.ok(value.length <= 1024, `${v.name}: ${k} is ${value.length} characters`);
      }
    }
  });

  test("a cut value ends with an encoded … and decodes to a prefix of the text", () => {
    const v = golden.vectors.find((x) => x.name.startsWith("payment.charge.declined (a correlation id cut"))!;
    const h = new Map(v.headers);
    const cut = h.get("ce-correlationid")!;
    assert.equal(cut.length, 1023, "169 escaped ü (6 characters each) and the 9 of the mark");
    assert.ok(cut.endsWith("%E2%80%A6"));
    const text = percentDecode(cut);
    assert.ok(v.header_input.correlation_id!.startsWith(text.slice(0, -1)));
    assert.equal(
      percentDecode(h.get("ce-causationid")!),
      "line one line two  end",
      "each control run becomes one space",
    );
  });

  for (const r of golden.received) {
    test(`received: ${r.name}`, () => {
      const body =
        r.body !== undefined ? Buffer.from(r.body, "utf8") : Buffer.from(payloadOf(r.payload_of), "hex");
      if (r.error) {
        assert.throws(
          () => readEvent(r.headers, body),
          (err: unknown) =>
            isJetkitError(err, r.error) || assert.fail(`expected ${r.error}, got ${String(err)}`),
        );
        return;
      }
      const e = readEvent(r.headers, body);
      const x = r.expect!;
      assert.deepEqual(
        {
          id: e.headers.id,
          type: e.headers.type,
          source: e.headers.source,
          time: e.headers.time,
          msg_id: e.headers.msgId,
          partition_key: e.headers.partitionKey,
          correlation_id: e.headers.correlationId,
          causation_id: e.headers.causationId,
          traceparent: e.headers.traceparent,
          tracestate: e.headers.tracestate,
          payload_hex: Buffer.from(e.data).toString("hex"),
        },
        {
          partition_key: undefined,
          correlation_id: undefined,
          causation_id: undefined,
          traceparent: undefined,
          tracestate: undefined,
          ...x,
        },
      );
    });
  }

  for (const s of golden.structured) {
    test(`structured: ${s.vector} reads back as the binary-mode event`, () => {
      const v = golden.vectors.find((x) => x.name === s.vector)!;
      const structured = readEvent(s.headers!, Buffer.from(s.body!, "utf8"));
      const binary = readEvent(v.headers!, Buffer.from(v.payload_hex!, "hex"));
      assert.deepEqual(structured.headers, binary.headers);
      assert.equal(Buffer.from(structured.data).toString("hex"), v.payload_hex);
    });
  }

  for (const v of golden.vectors) {
    test(`${v.name}: ts-proto encodes the same bytes and decodes back equal`, () => {
      const codec = codecs.get(v.type);
      assert.ok(codec, `ts-proto codec for ${v.type}`);
      const bytes = codec.encode(codec.fromJSON(v.event)).finish();
      assert.equal(Buffer.from(bytes).toString("hex"), v.payload_hex);
      const decoded = codec.decode(Buffer.from(v.payload_hex!, "hex"));
      assert.deepEqual(codec.toJSON(decoded), codec.toJSON(codec.fromJSON(v.event)));
    });

    test(`${v.name}: protobuf-es agrees, the event satisfies its contract, headers parse back`, () => {
      const spec = catalog.byType(v.type);
      assert.equal(v.subject, spec.subject);
      const bytes = toBinary(spec.schema, fromJson(spec.schema, v.event));
      assert.equal(Buffer.from(bytes).toString("hex"), v.payload_hex);
      new ContractValidator(catalog).check(spec, bytes);
      const headers = new Map(v.headers);
      const parsed = readEventHeaders((k) => headers.get(k));
      assert.equal(parsed.id, v.header_input.id);
      assert.equal(parsed.msgId, v.header_input.id, "Nats-Msg-Id equals ce-id");
      assert.equal(parsed.type, v.type);
      assert.equal(parsed.traceparent, v.header_input.traceparent);
      if (spec.partitionKey) {
        const keyField = spec.schema.fields.find((f) => f.name === spec.partitionKey)!;
        const message = fromBinary(spec.schema, bytes) as unknown as Record<string, string>;
        assert.equal(parsed.partitionKey, message[keyField.localName]);
      }
    });
  }

  function payloadOf(name: string | undefined): string {
    const v = golden.vectors.find((x) => x.name === name);
    assert.ok(v, `payload_of "${name}" names a vector`);
    return v.payload_hex!;
  }

  test("a dead letter keeps the original headers, swaps the dedup id, cannot carry injected lines", () => {
    const dl = golden.dead_letter;
    const h = new Map(dl.headers);
    assert.equal(h.get("Nats-Msg-Id"), `dlq:${dl.input.stream}:${dl.input.sequence}:${dl.input.consumer}`);
    assert.equal(h.get("Jetkit-Dlq-Failure-Class"), "handler_exhausted");
    assert.doesNotMatch(h.get("Jetkit-Dlq-Reason")!, /[\r\n]/);
    const replay = new Map(dl.replay_headers);
    assert.equal(replay.get("Jetkit-Replay-Of"), `DLQ:${dl.replay_sequence}`);
    assert.equal(replay.get("ce-id"), h.get("ce-id"), "a replay is the same event");
    assert.ok(![...replay.keys()].some((k) => k.startsWith("Jetkit-Dlq-")));
  });
});
