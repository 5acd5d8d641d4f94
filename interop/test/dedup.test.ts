import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { uuidv7 } from "@jetkit/contracts";
import { Carrier, OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { createProducer, type Producer } from "@jetkit/producers";
import { type Env, silent, startEnv } from "./env.js";
import { type Binaries, buildExamples, runExample } from "./polyglot.js";

describe("duplicate suppression across languages", () => {
  let env: Env;
  let bins: Binaries;
  let ts: Producer;

  before(async () => {
    bins = await buildExamples();
    env = await startEnv();
    ts = await createProducer({ servers: env.server.url, name: "interop-dedup", logger: silent });
  });
  after(async () => {
    await ts?.close();
    await env?.dispose();
  });

  type Publisher = (msgId: string) => Promise<{ seq: number; duplicate: boolean }>;
  const publishers: Record<string, Publisher> = {
    go: async (id) => one(await runExample(bins.goProducer, ["-server", env.server.url, "-msg-id", id])),
    rust: async (id) =>
      one(await runExample(bins.rustProducer, ["--server", env.server.url, "--msg-id", id])),
    ts: (id) =>
      ts.publish(
        OrderFulfillmentCompleted,
        {
          orderId: uuidv7(),
          checkoutId: uuidv7(),
          shipments: [
            { shipmentId: "s-ts", carrier: Carrier.CARRIER_FEDEX, trackingNumber: "FX1", skus: ["SKU-1"] },
          ],
          completedAt: new Date(),
        },
        { msgId: id },
      ),
  };

  for (const order of [
    ["go", "rust", "ts"],
    ["ts", "rust", "go"],
    ["rust", "go", "ts"],
  ]) {
    it(`the same message id from ${order.join(", then ")} is stored once`, async () => {
      const before = (await env.jsm.streams.info("ORDER")).state.messages;
      const id = `interop-dup-${uuidv7()}`;
      const acks = [];
      for (const lang of order) acks.push(await publishers[lang]!(id));
      assert.deepEqual(
        acks.map((a) => a.duplicate),
        [false, true, true],
      );
      assert.equal(
        new Set(acks.map((a) => a.seq)).size,
        1,
        "every duplicate is acknowledged with the stored sequence",
      );
      assert.equal((await env.jsm.streams.info("ORDER")).state.messages, before + 1);
      const stored = await env.jsm.streams.getMessage("ORDER", { seq: acks[0]!.seq });
      assert.equal(stored?.header?.get("Nats-Msg-Id"), id);
    });
  }
});

function one(lines: Record<string, unknown>[]): { seq: number; duplicate: boolean } {
  assert.equal(lines.length, 1);
  return { seq: Number(lines[0]!.seq), duplicate: lines[0]!.duplicate === true };
}
