import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import { createConsumer } from "@jetkit/consumers";
import { uuidv7 } from "@jetkit/contracts";
import { Carrier, OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { createProducer } from "@jetkit/producers";
import { ADDED, newOrderFulfillmentCompleted, withDeliveryNote } from "./added-field.js";
import { type Env, eventually, silent, startEnv } from "./env.js";
import { type Binaries, buildExamples, fromHex, runExample } from "./polyglot.js";

/**
 * The compatibility promise of WIRE.md §8 for "a field is added", across languages. New
 * messages: a new producer's payload carries field 6 (hand-encoded after the old fields, exactly
 * what a regenerated encoder writes). Old messages: what today's Go, Rust and TS producers send,
 * decoded with the new contract version built at test time (see added-field.ts).
 */
describe("a contract change that adds a field", () => {
  let env: Env;
  let bins: Binaries;
  const note = "leave at the door";
  const event: OrderFulfillmentCompleted = {
    orderId: uuidv7(),
    checkoutId: uuidv7(),
    shipments: [
      { shipmentId: "s-new", carrier: Carrier.CARRIER_UPS, trackingNumber: "1Z9", skus: ["SKU-1"] },
    ],
    shippingCost: { currencyCode: "EUR", units: 3, nanos: 0 },
    completedAt: new Date("2026-11-23T08:00:00.000Z"),
  };
  const oldPayload = OrderFulfillmentCompleted.encode(event).finish();
  const newPayload = withDeliveryNote(oldPayload, note);
  let newId = "";

  before(async () => {
    bins = await buildExamples();
    env = await startEnv();
    const producer = await createProducer({ servers: env.server.url, name: "interop-v2", logger: silent });
    try {
      newId = (await producer.publishEncoded({ type: OrderFulfillmentCompleted.$type, payload: newPayload }))
        .msgId;
    } finally {
      await producer.close();
    }
  });
  after(async () => {
    await env?.dispose();
  });

  it("an old Go consumer decodes the new message and keeps the new field", async () => {
    const [line] = await runExample(bins.goConsumer, [
      "-server",
      env.server.url,
      "-durable",
      "go-old",
      "-count",
      "1",
    ]);
    assert.equal(line?.id, newId);
    assert.equal(line?.dead_letter, undefined);
    assert.deepEqual(OrderFulfillmentCompleted.decode(fromHex(line?.payload_hex)), event);
    // Go keeps unknown fields: re-encoding (e.g. forwarding the event) passes the new field on.
    assert.equal(line?.payload_hex, Buffer.from(newPayload).toString("hex"));
  });

  it("an old Rust consumer decodes the new message and ignores the new field", async () => {
    const [line] = await runExample(bins.rustConsumer, [
      "--server",
      env.server.url,
      "--durable",
      "rust-old",
      "--count",
      "1",
    ]);
    assert.equal(line?.id, newId);
    assert.equal(line?.dead_letter, undefined);
    assert.equal(line?.order_id, event.orderId);
    // prost drops unknown fields: the re-encoded event is the old one.
    assert.equal(line?.payload_hex, Buffer.from(oldPayload).toString("hex"));
  });

  it("an old TypeScript consumer (SDK, with validation) handles the new message", async () => {
    const seen: OrderFulfillmentCompleted[] = [];
    const consumer = await createConsumer({
      servers: env.server.url,
      durable: "ts-old",
      events: [OrderFulfillmentCompleted],
      logger: silent,
    });
    consumer.on(OrderFulfillmentCompleted, (e) => {
      seen.push(e);
    });
    await consumer.start();
    try {
      await eventually("the new message handled", () => (seen.length > 0 ? true : undefined));
    } finally {
      await consumer.stop({ timeoutMs: 5_000 });
    }
    assert.deepEqual(seen, [event]);
    assert.equal((await env.jsm.streams.info("DLQ")).state.messages, 0);
  });

  it("a new consumer decodes old messages from Go, Rust and TypeScript producers", async () => {
    const schema = newOrderFulfillmentCompleted();
    const [go] = await runExample(bins.goProducer, ["-server", env.server.url]);
    const [rust] = await runExample(bins.rustProducer, ["--server", env.server.url]);
    for (const line of [go, rust]) {
      const stored = await env.jsm.streams.getMessage("ORDER", { seq: Number(line?.seq) });
      assert.ok(stored);
      const decoded = fromBinary(schema, stored.data) as unknown as Record<string, unknown>;
      const old = OrderFulfillmentCompleted.decode(fromHex(line?.payload_hex));
      assert.equal(decoded.orderId, old.orderId);
      assert.equal((decoded.shipments as unknown[]).length, old.shipments.length);
      assert.equal(decoded[ADDED.jsonName], "", "the added field reads as its default on old messages");
    }
    const fromTs = fromBinary(schema, oldPayload) as unknown as Record<string, unknown>;
    assert.equal(fromTs.orderId, event.orderId);
    assert.equal(fromTs[ADDED.jsonName], "");
    // And the new consumer reads the new field from a new message.
    assert.equal(
      (fromBinary(schema, newPayload) as unknown as Record<string, unknown>)[ADDED.jsonName],
      note,
    );
  });
});
