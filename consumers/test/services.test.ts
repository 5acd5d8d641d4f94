import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, it } from "node:test";
import { CustomerCheckoutInitiated } from "@jetkit/contracts/gen/shop/customer/v1/events";
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { createProducer } from "@jetkit/producers";
import { shipmentReport } from "../examples/batch.js";
import { quickstart } from "../examples/quickstart.js";
import { runFulfillment, runNotifications, type SentNotification } from "../services/index.js";
import { listDeadLetters } from "../src/index.js";
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

  it("runs the README batch handler example: one SQL transaction per batch, a test shipment dead-lettered", async () => {
    // What the README shows is this file, verbatim.
    const pkg = new URL("../../", import.meta.url);
    const readme = await readFile(new URL("README.md", pkg), "utf8");
    assert.ok(
      readme.includes(await readFile(new URL("examples/batch.ts", pkg), "utf8")),
      "README shows examples/batch.ts",
    );
    const db = new DatabaseSync(":memory:");
    const consumer = await shipmentReport(env.server.url, db);
    const producer = await createProducer({ servers: env.server.url, name: "batch-example", logger: silent });
    try {
      const events = Array.from({ length: 30 }, (_, i) => completed(undefined, `TRK-batch-${i}`));
      const test = completed(undefined, "TEST-1");
      await producer.publishMany(OrderFulfillmentCompleted, [...events, test]);
      // The durable reads ORDER from its start: the earlier tests' events are reported too.
      const rows = () =>
        (
          db.prepare("SELECT COUNT(*) AS n FROM shipments WHERE tracking LIKE 'TRK-batch-%'").get() as {
            n: number;
          }
        ).n;
      await until(() => rows() === events.length, 10_000, "every shipment reported");
      const dead = async () =>
        (
          await listDeadLetters({ connection: env.nc, subject: "order.fulfillment.completed", limit: 1000 })
        ).filter((d) => d.consumer === "shipment-report");
      await until(async () => (await dead()).length === 1, 10_000, "the test shipment dead-lettered");
      assert.match((await dead())[0]!.reason, /test shipment: not reported/);
      const reported = db.prepare("SELECT tracking FROM shipments ORDER BY tracking").all() as {
        tracking: string;
      }[];
      assert.ok(!reported.some((r) => r.tracking.startsWith("TEST-")));
    } finally {
      await consumer.stop({ timeoutMs: 1000 });
      await producer.close();
    }
  });
});
