import assert from "node:assert/strict";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import { isJetkitError } from "@jetkit/contracts";
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import {
  type BatchMessage,
  type Consumer,
  ConsumerErrorCodes,
  createConsumer,
  type HandlerContext,
  listDeadLetters,
} from "../src/index.js";
import { completed, type Env, publishRaw, silent, startEnv, until } from "./support.js";

type Msg = BatchMessage<OrderFulfillmentCompleted, HandlerContext>;
const tracking = (m: Msg) => m.event.shipments[0]!.trackingNumber;

describe("consumer: batch handlers (onBatch)", () => {
  let env: Env;
  const consumers: Consumer[] = [];
  before(async () => {
    env = await startEnv();
  });
  // Each test reads ORDER from its start: only its own events.
  beforeEach(async () => {
    await env.jsm.streams.purge("ORDER");
  });
  afterEach(async () => {
    for (const c of consumers.splice(0)) await c.stop({ timeoutMs: 1000 });
  });
  after(async () => {
    await env.dispose();
  });

  /** Nothing left for durable `name` on ORDER: every message acked or terminated. */
  const drained = (name: string) => async () => {
    const ci = await env.jsm.consumers.info("ORDER", name);
    return ci.num_pending === 0 && ci.num_ack_pending === 0;
  };

  it("acks what the handler does not name, retries and dead-letters what it names, once per event id", async () => {
    const c = await createConsumer({
      connection: env.nc,
      durable: "batch-outcomes",
      events: [OrderFulfillmentCompleted],
      concurrency: 16,
      idempotency: { bucket: "idem-batch-outcomes" },
      backoff: { initialMs: 20, maxMs: 50, jitter: 0 },
      logger: silent,
    });
    consumers.push(c);
    const sizes: number[] = [];
    const handled = new Map<string, number>();
    const attempts = new Map<string, number[]>();
    c.onBatch(
      OrderFulfillmentCompleted,
      (batch) => {
        sizes.push(batch.length);
        const retry: Msg[] = [];
        const deadLetter: { message: Msg; reason: string }[] = [];
        for (const m of batch) {
          const t = tracking(m);
          attempts.set(t, [...(attempts.get(t) ?? []), m.ctx.delivery]);
          if (t === "bad") deadLetter.push({ message: m, reason: "sku-1 is not sold any more" });
          else if (t === "flaky" && m.ctx.delivery === 1) retry.push(m);
          else handled.set(m.ctx.eventId, (handled.get(m.ctx.eventId) ?? 0) + 1);
        }
        return { retry, deadLetter };
      },
      { max: 16, maxWaitMs: 50 },
    );
    const ids: string[] = [];
    for (let i = 0; i < 40; i++)
      ids.push((await publishRaw(env.js, OrderFulfillmentCompleted, completed(undefined, `t${i}`))).id);
    const bad = await publishRaw(env.js, OrderFulfillmentCompleted, completed(undefined, "bad"));
    const flaky = await publishRaw(env.js, OrderFulfillmentCompleted, completed(undefined, "flaky"));
    // The same event again under another Nats-Msg-Id: its effect is recorded, so it never runs again.
    await publishRaw(env.js, OrderFulfillmentCompleted, completed(undefined, "t0-again"), {
      id: ids[0],
      msgId: "another-msg-id",
    });
    await c.start();
    await until(drained("batch-outcomes"), 20_000, "every message acked or dead-lettered");

    for (const id of [...ids, flaky.id]) assert.equal(handled.get(id), 1, `event ${id} handled once`);
    assert.equal(handled.size, ids.length + 1, "nothing else handled");
    assert.deepEqual(attempts.get("flaky"), [1, 2], "the retried message came back once, as delivery 2");
    assert.deepEqual(attempts.get("bad"), [1], "the dead-lettered message was not retried");
    assert.equal(
      attempts.get("t0-again"),
      undefined,
      "the copy of a recorded event never reached the handler",
    );
    assert.ok(Math.max(...sizes) > 1, `messages were handled in batches (sizes ${sizes.join(",")})`);
    assert.ok(Math.max(...sizes) <= 16, "no batch above max");
    const dead = (
      await listDeadLetters({ connection: env.nc, subject: "order.fulfillment.completed" })
    ).filter((d) => d.originalSeq === bad.seq);
    assert.equal(dead.length, 1);
    assert.equal(dead[0]!.failureClass, "handler_permanent");
    assert.match(dead[0]!.reason, /sku-1 is not sold any more/);
  });

  it("keeps each key's order with one event per key in a batch, and does not wait out maxWaitMs when no message can join", async () => {
    const c = await createConsumer({
      connection: env.nc,
      durable: "batch-per-key",
      events: [OrderFulfillmentCompleted],
      ordering: "per-key",
      concurrency: 8,
      idempotency: { bucket: "idem-batch-per-key" },
      backoff: { initialMs: 10, maxMs: 30, jitter: 0 },
      logger: silent,
    });
    consumers.push(c);
    const keys = ["k0", "k1", "k2", "k3"];
    const perKey = 15;
    const order = new Map<string, number[]>();
    const sizes: number[] = [];
    let twoOfAKey = 0;
    c.onBatch(
      OrderFulfillmentCompleted,
      (batch) => {
        sizes.push(batch.length);
        const inBatch = new Set<string>();
        const retry: Msg[] = [];
        for (const m of batch) {
          const key = m.ctx.partitionKey!;
          if (inBatch.has(key)) twoOfAKey++;
          inBatch.add(key);
          const n = Number(tracking(m));
          // Every 5th event fails once: its retry must still come before the key's next event.
          if (n % 5 === 2 && m.ctx.delivery === 1) retry.push(m);
          else order.set(key, [...(order.get(key) ?? []), n]);
        }
        return { retry };
      },
      // Far longer than the test may take: it passes only if batches go out when they cannot grow.
      { max: 8, maxWaitMs: 2_000 },
    );
    for (let n = 0; n < perKey; n++) {
      for (const key of keys)
        await publishRaw(env.js, OrderFulfillmentCompleted, completed(undefined, String(n)), { key });
    }
    await c.start();
    // 15 rounds of one event per key: waiting out maxWaitMs for each would take 30 s.
    await until(
      () => [...order.values()].reduce((a, l) => a + l.length, 0) === keys.length * perKey,
      12_000,
      "every event handled",
    );
    const expected = Array.from({ length: perKey }, (_, i) => i);
    for (const key of keys) assert.deepEqual(order.get(key), expected, `order of ${key}`);
    assert.equal(twoOfAKey, 0, "no batch held two events of one key");
    assert.ok(Math.max(...sizes) > 1, `keys were batched together (sizes ${sizes.join(",")})`);
  });

  it("retries the whole batch and acks none when the handler names a message it was not given", async () => {
    const c = await createConsumer({
      connection: env.nc,
      durable: "batch-wrong-outcome",
      events: [OrderFulfillmentCompleted],
      concurrency: 8,
      backoff: { initialMs: 20, maxMs: 50, jitter: 0 },
      logger: silent,
    });
    consumers.push(c);
    const seen = new Map<string, number[]>();
    let firstBatch: string[] | undefined;
    c.onBatch(
      OrderFulfillmentCompleted,
      (batch) => {
        for (const m of batch) seen.set(m.ctx.eventId, [...(seen.get(m.ctx.eventId) ?? []), m.ctx.delivery]);
        if (firstBatch) return undefined;
        firstBatch = batch.map((m) => m.ctx.eventId);
        // A look-alike of a batch message (a copy): not one of the batch's own objects.
        return { retry: [{ ...batch[0]! }] };
      },
      { max: 8, maxWaitMs: 100 },
    );
    const ids: string[] = [];
    for (let i = 0; i < 3; i++)
      ids.push((await publishRaw(env.js, OrderFulfillmentCompleted, completed())).id);
    await c.start();
    await until(drained("batch-wrong-outcome"), 10_000, "every message acked");
    assert.ok(firstBatch && firstBatch.length >= 1);
    // Every message of the batch with the wrong outcome came back (none was acked by it), once.
    for (const id of firstBatch) assert.deepEqual(seen.get(id), [1, 2], `deliveries of ${id}`);
    for (const id of ids) assert.ok(seen.has(id), `${id} handled`);
  });

  it("refuses a batch larger than the consumer's concurrency, naming the fix", async () => {
    const c = await createConsumer({
      connection: env.nc,
      durable: "batch-config",
      events: [OrderFulfillmentCompleted],
      concurrency: 4,
      logger: silent,
    });
    assert.throws(
      () => c.onBatch(OrderFulfillmentCompleted, () => undefined, { max: 10 }),
      (err: unknown) =>
        isJetkitError(err, ConsumerErrorCodes.CONFIG) && /Raise concurrency to at least 10/.test(err.message),
    );
  });
});
