import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { CustomerCheckoutInitiated } from "@jetkit/contracts/gen/shop/customer/v1/events";
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { createProducer } from "@jetkit/producers";
import { quickstart } from "../examples/quickstart.js";
import { runFulfillment, runNotifications, type SentNotification } from "../services/index.js";
import { checkout, completed, type Env, silent, startEnv, until } from "./support.js";

describe("example services and the README example", () => {
  let env: Env;
  before(async () => {
    env = await startEnv();
  });
  after(async () => {
    await env.dispose();
  });

  it("fulfillment turns checkouts into fulfillment events; notifications records one e-mail per order", async () => {
    const ac = new AbortController();
    const fulfilled: string[] = [];
    const sent: SentNotification[] = [];
    const fulfillment = await runFulfillment({
      servers: env.server.url,
      signal: ac.signal,
      logger: silent,
      onHandled: (f) => fulfilled.push(f.orderId),
    });
    const notifications = await runNotifications({
      servers: env.server.url,
      signal: ac.signal,
      logger: silent,
      onHandled: (n) => sent.push(n),
    });
    const producer = await createProducer({ servers: env.server.url, name: "checkout", logger: silent });
    try {
      for (let i = 0; i < 5; i++) await producer.publish(CustomerCheckoutInitiated, checkout());
      await until(() => sent.length === 5, 15_000, "5 notifications");
      assert.deepEqual(new Set(sent.map((n) => n.orderId)), new Set(fulfilled));
      assert.equal(
        (await env.jsm.streams.info("ORDER")).state.messages,
        10,
        "started + completed per checkout",
      );
      assert.ok(sent.every((n) => n.trackingNumbers[0]?.startsWith("TRK")));
    } finally {
      ac.abort();
      await Promise.all([fulfillment.stopped, notifications.stopped]);
      await producer.close();
    }
    assert.equal(fulfillment.handled(), 5);
    assert.equal(fulfillment.consumer.isReady(), false);
  });

  it("runs the README quickstart", async () => {
    const shipped: string[] = [];
    const consumer = await quickstart(env.server.url, (id) => shipped.push(id));
    const producer = await createProducer({ servers: env.server.url, name: "quickstart", logger: silent });
    try {
      const e = completed();
      await producer.publish(OrderFulfillmentCompleted, e);
      await until(() => shipped.includes(e.orderId), 10_000, "quickstart handled the event");
    } finally {
      await consumer.stop({ timeoutMs: 1000 });
      await producer.close();
    }
  });
});
