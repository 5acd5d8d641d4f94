import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { fromBinary, fromJson, toBinary } from "@bufbuild/protobuf";
import { ContractValidator, getCatalog, readEventHeaders } from "../src/index.js";
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

  test("cover every domain event of the catalog", () => {
    const covered = new Set(golden.vectors.map((v) => v.type));
    const missing = catalog.events
      .filter((e) => e.stream !== "AUDIT" && !covered.has(e.type))
      .map((e) => e.type);
    assert.deepEqual(missing, []);
  });

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
