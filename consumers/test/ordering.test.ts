import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { pino } from "pino";
import { createConsumer } from "../src/index.js";
import { completed, type Env, publishRaw, silent, startEnv, until } from "./support.js";

describe("consumer: per-key ordering", () => {
  let env: Env;
  before(async () => {
    env = await startEnv();
  });
  after(async () => {
    await env.dispose();
  });

  it("keeps each key's order under concurrency and failing deliveries, keys in parallel", async () => {
    const keys = ["k0", "k1", "k2", "k3", "k4"];
    const perKey = 20;
    const c = await createConsumer({
      connection: env.nc,
      durable: "ordered",
      events: [OrderFulfillmentCompleted],
      ordering: "per-key",
      concurrency: 8,
      maxDeliver: 5,
      backoff: { initialMs: 20, maxMs: 100, jitter: 0.5 },
      logger: silent,
    });
    const order = new Map<string, number[]>();
    let running = 0;
    let maxRunning = 0;
    const failedOnce = new Set<string>();
    c.on(OrderFulfillmentCompleted, async (e, ctx) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      try {
        await sleep(Math.random() * 4);
        const n = Number(e.shipments[0]!.trackingNumber);
        // Every 7th event fails on its first attempt: the retry must still come before n + 1.
        if (n % 7 === 3 && !failedOnce.has(ctx.eventId)) {
          failedOnce.add(ctx.eventId);
          throw new Error("transient");
        }
        const list = order.get(ctx.partitionKey!) ?? [];
        list.push(n);
        order.set(ctx.partitionKey!, list);
      } finally {
        running--;
      }
    });
    await c.start();
    for (let n = 0; n < perKey; n++) {
      for (const key of keys) {
        await publishRaw(env.js, OrderFulfillmentCompleted, completed(undefined, String(n)), { key });
      }
    }
    await until(
      () => [...order.values()].reduce((a, l) => a + l.length, 0) === keys.length * perKey,
      20_000,
      "every event handled",
    );
    const expected = Array.from({ length: perKey }, (_, i) => i);
    for (const key of keys) assert.deepEqual(order.get(key), expected, `order of ${key}`);
    assert.ok(failedOnce.size >= keys.length * 2, "some deliveries failed");
    assert.ok(maxRunning > 1, "different keys ran in parallel");
    await c.stop({ timeoutMs: 1000 });
  });
});

describe("consumer: per-key ordering while the idempotency store is unavailable", () => {
  let env: Env;
  before(async () => {
    env = await startEnv();
  });
  after(async () => {
    await env.dispose();
  });

  it("holds each key in place instead of nak'ing, so a key's later events never overtake a held one", async () => {
    const bucket = "hold-in-place";
    const c = await createConsumer({
      connection: env.nc,
      durable: "held",
      events: [OrderFulfillmentCompleted],
      ordering: "per-key",
      idempotency: { bucket },
      deliverPolicy: "new",
      backoff: { initialMs: 50, maxMs: 200, jitter: 0 },
      logger: pino(
        { level: "warn" },
        {
          write: (line: string) =>
            void (
              JSON.parse(line).msg === "idempotency store unavailable; retrying in place" && heldRetries++
            ),
        },
      ),
    });
    let heldRetries = 0;
    const order = new Map<string, number[]>();
    c.on(OrderFulfillmentCompleted, (e, ctx) => {
      const list = order.get(ctx.partitionKey!) ?? [];
      list.push(Number(e.shipments[0]!.trackingNumber));
      order.set(ctx.partitionKey!, list);
    });
    await c.start();
    // The store goes away (its stream deleted): every claim fails until it is back.
    const jsm = await jetstreamManager(env.nc);
    await jsm.streams.delete(`KV_${bucket}`);
    const keys = ["a", "b", "c"];
    for (let n = 0; n < 6; n++) {
      for (const key of keys)
        await publishRaw(env.js, OrderFulfillmentCompleted, completed(undefined, String(n)), { key });
    }
    // Several failed claims pass (each retried in place after its backoff) before the store returns.
    await until(() => heldRetries >= 6, 10_000, "claims failing and retried in place");
    assert.equal(order.size, 0, "nothing ran without the store");
    await new Kvm(env.js).create(bucket, { history: 1, ttl: 24 * 3600_000 });
    await until(
      () => [...order.values()].reduce((a, l) => a + l.length, 0) === 18,
      20_000,
      "every event handled",
    );
    for (const key of keys) assert.deepEqual(order.get(key), [0, 1, 2, 3, 4, 5], `order of ${key}`);
    const info = await jsm.consumers.info("ORDER", "held");
    assert.equal(info.num_redelivered, 0, "no delivery was nak'd and redelivered");
    await c.stop({ timeoutMs: 1000 });
  });
});
