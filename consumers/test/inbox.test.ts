import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, it } from "node:test";
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { createConsumer, partitionOf, SqliteInbox } from "../src/index.js";
import { completed, type Env, publishRaw, silent, startEnv, until } from "./support.js";

describe("partitionOf: the wire's partition function (WIRE.md 6a)", () => {
  it("is FNV-1a 32 of the key's UTF-8 bytes, modulo the partition count", () => {
    assert.equal(partitionOf("", 2 ** 32 - 1), 2166136261 % (2 ** 32 - 1));
    assert.equal(partitionOf("a", 16), 3826002220 % 16);
    // Multi-byte UTF-8: "é" is 0xc3 0xa9.
    let h = 0x811c9dc5;
    for (const b of [0xc3, 0xa9]) h = Math.imul(h ^ b, 0x01000193) >>> 0;
    assert.equal(partitionOf("é", 1000), h % 1000);
  });
});

describe("SqliteInbox: the effect and its record in one transaction", () => {
  let env: Env;
  before(async () => {
    env = await startEnv();
  });
  after(async () => {
    await env.dispose();
  });

  it("commits effect and record together, skips a redelivered event, and rolls both back on a throw", async () => {
    const db = new DatabaseSync(":memory:");
    db.exec("CREATE TABLE invoices (order_id TEXT)");
    const inbox = SqliteInbox.open(db, { consumer: "billing" });
    let attempts = 0;
    const c = await createConsumer({
      connection: env.nc,
      durable: "inbox",
      events: [OrderFulfillmentCompleted],
      deliverPolicy: "new",
      backoff: { initialMs: 20, maxMs: 50, jitter: 0 },
      logger: silent,
    });
    c.on(
      OrderFulfillmentCompleted,
      inbox.handler((e, _ctx, tx) => {
        attempts++;
        tx.prepare("INSERT INTO invoices VALUES (?)").run(e.orderId);
        // The first attempt fails after its write: the write must not survive.
        if (attempts === 1) throw new Error("after the write");
      }),
    );
    await c.start();
    const ev = completed();
    const { id } = await publishRaw(env.js, OrderFulfillmentCompleted, ev);
    await until(() => inbox.effected(id), 10_000, "the event recorded in the inbox");
    // A copy with another Nats-Msg-Id (a redelivery the broker cannot dedup) is skipped.
    await publishRaw(env.js, OrderFulfillmentCompleted, ev, { id, msgId: `${id}-again` });
    await until(
      async () => (await c.lag()).ackPending === 0 && (await c.lag()).pending === 0,
      10_000,
      "both handled",
    );
    const rows = db.prepare("SELECT order_id FROM invoices").all();
    assert.deepEqual(
      rows.map((r) => r.order_id),
      [ev.orderId],
      "one invoice: the failed attempt's write rolled back, the copy skipped",
    );
    assert.equal(attempts, 2, "the copy never reached the effect");
    await c.stop({ timeoutMs: 1000 });
  });

  it("refuses a table name that is not an identifier", () => {
    assert.throws(
      () => SqliteInbox.open(new DatabaseSync(":memory:"), { consumer: "x", table: "a; DROP" }),
      /JK_CONSUMER_CONFIG|invalid/,
    );
  });
});
