import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { getCatalog } from "@jetkit/contracts";
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { AckPolicy, DeliverPolicy, type JsMsg } from "@nats-io/jetstream";
import { deliveryOf } from "../src/delivery-info.js";
import { completed, type Env, publishRaw, startEnv } from "./support.js";

/** A message with only a reply subject; `info` (nats.js's own parse) answers `fallback`. */
function withReply(reply: string, fallback = { streamSequence: -7, deliveryCount: -7 }): JsMsg {
  return { reply, info: fallback } as unknown as JsMsg;
}

describe("delivery info: sequence and delivery count from the reply subject", () => {
  let env: Env;
  before(async () => {
    env = await startEnv();
  });
  after(async () => {
    await env?.dispose();
  });

  it("agrees with msg.info on first deliveries and redeliveries", async () => {
    const spec = getCatalog().byType(OrderFulfillmentCompleted.$type);
    const first = (await env.jsm.streams.info("ORDER")).state.last_seq + 1;
    for (let i = 0; i < 3; i++) await publishRaw(env.js, OrderFulfillmentCompleted, completed());
    await env.jsm.consumers.add("ORDER", {
      durable_name: "delivery-info",
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: first,
      filter_subjects: [spec.subject],
    });
    const c = await env.js.consumers.get("ORDER", "delivery-info");
    const seen: { seq: number; deliveryCount: number }[] = [];
    for (let round = 1; round <= 2; round++) {
      for await (const m of await c.fetch({ max_messages: 3, expires: 5000 })) {
        const mine = deliveryOf(m);
        assert.deepEqual(mine, { seq: m.info.streamSequence, deliveryCount: m.info.deliveryCount });
        seen.push(mine);
        if (round === 1) m.nak();
        else m.ack();
      }
    }
    assert.deepEqual(
      seen.map((d) => d.seq),
      [first, first + 1, first + 2, first, first + 1, first + 2],
    );
    assert.deepEqual(
      seen.map((d) => d.deliveryCount),
      [1, 1, 1, 2, 2, 2],
    );
  });

  it("reads every reply subject form nats.js parses, and leaves other shapes to msg.info", () => {
    // Old form without domain and account hash (9 tokens).
    assert.deepEqual(deliveryOf(withReply("$JS.ACK.ORDER.svc.3.42.7.1767225600000000000.5")), {
      seq: 42,
      deliveryCount: 3,
    });
    // Domain and account hash (11 tokens), and the random token of current servers (12).
    assert.deepEqual(deliveryOf(withReply("$JS.ACK.hub.ACC.ORDER.svc.2.99.8.1767225600000000000.0")), {
      seq: 99,
      deliveryCount: 2,
    });
    assert.deepEqual(
      deliveryOf(withReply("$JS.ACK._.ACC.ORDER.svc.1.123456789012.8.1767225600000000000.0.tok")),
      { seq: 123456789012, deliveryCount: 1 },
    );
    const fallback = { streamSequence: 5, deliveryCount: 6 };
    for (const odd of [
      "$JS.ACK.ORDER.svc.x.42.7.1767225600000000000.5", // not a number
      "$JS.ACK.ORDER.svc.3..7.1767225600000000000.5", // empty token
      "$JS.ACK.a.b.ORDER.svc.3.42.7.1", // 10 tokens
      "$JS.NAK.ORDER.svc.3.42.7.1767225600000000000.5", // not an ack subject
      "$JS.ACK._.ACC.ORDER.svc.1.12345678901234567.8.1767225600000000000.0", // not a safe integer
    ]) {
      assert.deepEqual(deliveryOf(withReply(odd, fallback)), { seq: 5, deliveryCount: 6 }, odd);
    }
  });
});
