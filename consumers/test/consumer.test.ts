import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { DeadLetterHeaders, EventHeaders, type EventType } from "@jetkit/contracts";
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { pino } from "pino";
import {
  type Consumer,
  type ConsumerOptions,
  createConsumer,
  listDeadLetters,
  PermanentError,
  purgeDeadLetters,
  replayDeadLetters,
  showDeadLetter,
} from "../src/index.js";
import { completed, type Env, publishRaw, silent, startEnv, until } from "./support.js";

/** DLQ messages whose Jetkit-Dlq-Sequence header is `seq` in stream ORDER. */
async function deadLettersOf(env: Env, seq: number) {
  const all = await listDeadLetters({
    connection: env.nc,
    subject: "order.fulfillment.completed",
    limit: 1000,
  });
  return all.filter((d) => d.originalStream === "ORDER" && d.originalSeq === seq);
}

describe("consumer: delivery, failures, dead letters", () => {
  let env: Env;
  const consumers: Consumer[] = [];
  before(async () => {
    env = await startEnv();
  });
  // Every test's consumer stops after it, so it cannot take the next test's messages.
  afterEach(async () => {
    for (const c of consumers.splice(0)) await c.stop({ timeoutMs: 500 });
  });
  after(async () => {
    await env.dispose();
  });

  async function consumer(durable: string, opts: Partial<ConsumerOptions> = {}) {
    const c = await createConsumer({
      connection: env.nc,
      durable,
      events: [OrderFulfillmentCompleted],
      logger: silent,
      deliverPolicy: "new",
      backoff: { initialMs: 50, maxMs: 1000, multiplier: 2, jitter: 0 },
      ...opts,
    });
    consumers.push(c);
    return c;
  }

  it("gives the handler a child logger with the message's fields, whose level can be set", async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino(
      { level: "info" },
      { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
    );
    const c = await consumer("logs", { logger });
    const seen: number[] = [];
    c.on(OrderFulfillmentCompleted, (_e, ctx) => {
      seen.push(ctx.seq);
      // A level set on ctx.logger applies to that child, not to the consumer's logger.
      ctx.logger.level = "debug";
      ctx.logger.debug({ step: 1 }, "handled");
    });
    await c.start();
    const { id, seq } = await publishRaw(env.js, OrderFulfillmentCompleted, completed());
    await until(
      () => seen.length === 1 && lines.some((l) => l.msg === "handled"),
      5000,
      "the handler's log line",
    );
    const line = lines.find((l) => l.msg === "handled")!;
    assert.deepEqual(
      {
        durable: line.durable,
        subject: line.subject,
        stream: line.stream,
        seq: line.seq,
        delivery: line.delivery,
        msg_id: line.msg_id,
        step: line.step,
        level: line.level,
      },
      {
        durable: "logs",
        subject: "order.fulfillment.completed",
        stream: "ORDER",
        seq,
        delivery: 1,
        msg_id: id,
        step: 1,
        level: 20,
      },
    );
    assert.equal(logger.level, "info");
  });

  it("decodes events of generated code built against another copy of @bufbuild/protobuf", async () => {
    // ts-proto's decode reads a reader only when it is an instanceof its own BinaryReader import;
    // with another copy of the runtime it wraps any other reader in a new one of no bytes (here:
    // the same code path, given jetkit's reader, which is not a Uint8Array).
    const Foreign: EventType<OrderFulfillmentCompleted> = {
      ...OrderFulfillmentCompleted,
      decode: (input: Uint8Array) =>
        OrderFulfillmentCompleted.decode(
          input instanceof Uint8Array ? input : new BinaryReader(input as unknown as Uint8Array),
        ),
    };
    const c = await consumer("foreign-runtime", { events: [Foreign] });
    const got: string[] = [];
    c.on(Foreign, (e) => {
      got.push(e.orderId);
    });
    await c.start();
    const sent = [completed(), completed()];
    for (const e of sent) await publishRaw(env.js, OrderFulfillmentCompleted, e);
    await until(() => got.length === 2, 10_000, "both events handled");
    assert.deepEqual(
      got,
      sent.map((e) => e.orderId),
    );
  });

  it("handles every event once with the idempotency store, also a duplicate with another Nats-Msg-Id", async () => {
    const c = await consumer("once", { idempotency: { bucket: "idem-once" }, concurrency: 8 });
    const effects = new Map<string, number>();
    c.on(OrderFulfillmentCompleted, async (e, ctx) => {
      assert.equal(ctx.subject, "order.fulfillment.completed");
      effects.set(e.orderId, (effects.get(e.orderId) ?? 0) + 1);
    });
    await c.start();
    const ids: string[] = [];
    for (let i = 0; i < 50; i++) {
      const e = completed();
      ids.push(e.orderId);
      await publishRaw(env.js, OrderFulfillmentCompleted, e, { id: `evt-${e.orderId}` });
    }
    await until(() => effects.size === 50, 10_000, "50 events handled");
    // Same event (same ce-id) again with a new Nats-Msg-Id: stored again, but its effect is recorded.
    const again = completed(ids[0]);
    const h = await publishRaw(env.js, OrderFulfillmentCompleted, again, { id: `evt-${ids[0]}` });
    assert.ok(h.seq > 0);
    await until(
      async () => (await c.lag()).ackPending === 0 && (await c.lag()).pending === 0,
      5000,
      "all acked",
    );
    assert.deepEqual(
      [...effects.values()].filter((n) => n !== 1),
      [],
    );
    assert.equal(effects.size, 50);
    assert.equal(c.isReady(), true);
  });

  it("two consumers on one durable never both run a handler for one event id: copies at once, and a handler slower than the ack wait", async () => {
    // A non-idempotent effect (a counter per event id). Each event is stored twice (same ce-id,
    // two Nats-Msg-Ids), so both consumers get a copy at about the same time; every 5th handler
    // outlasts the ack wait, so without a renewed claim JetStream redelivers it meanwhile.
    const idem = { bucket: "idem-race" };
    const a = await consumer("race", { idempotency: idem, ackWaitMs: 1000, concurrency: 8 });
    const b = await consumer("race", { idempotency: idem, ackWaitMs: 1000, concurrency: 8 });
    const effects = new Map<string, string[]>();
    const handler = (name: string) => async (e: OrderFulfillmentCompleted) => {
      effects.set(e.orderId, [...(effects.get(e.orderId) ?? []), name]);
      const slow = Number.parseInt(e.orderId.slice(-2), 16) % 5 === 0;
      await new Promise((r) => setTimeout(r, slow ? 1800 : 100));
    };
    a.on(OrderFulfillmentCompleted, handler("a"));
    b.on(OrderFulfillmentCompleted, handler("b"));
    await a.start();
    await b.start();
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) {
      const e = completed();
      ids.push(e.orderId);
      await Promise.all([
        publishRaw(env.js, OrderFulfillmentCompleted, e, {
          id: `race-${e.orderId}`,
          msgId: `race-${e.orderId}-1`,
        }),
        publishRaw(env.js, OrderFulfillmentCompleted, e, {
          id: `race-${e.orderId}`,
          msgId: `race-${e.orderId}-2`,
        }),
      ]);
    }
    await until(
      async () => {
        const [la, lb] = [await a.lag(), await b.lag()];
        return effects.size === 30 && la.ackPending === 0 && la.pending === 0 && lb.ackPending === 0;
      },
      20_000,
      "every copy acked",
    );
    const twice = [...effects]
      .filter(([, by]) => by.length !== 1)
      .map(([id, by]) => `${id}: ${by.join(",")}`);
    assert.deepEqual(twice, [], "no event's handler ran twice");
    assert.ok(
      ids.some((id) => Number.parseInt(id.slice(-2), 16) % 5 === 0),
      "some handlers outlasted the ack wait (else the test proves less)",
    );
  });

  it("dead-letters poison payloads, unknown types and contract violations without calling the handler", async () => {
    const c = await consumer("poison");
    let calls = 0;
    c.on(OrderFulfillmentCompleted, () => {
      calls++;
    });
    await c.start();
    const poison = await publishRaw(env.js, OrderFulfillmentCompleted, completed(), {
      data: new Uint8Array([0xff, 0xff, 0xff, 0xff]),
    });
    const unknown = await publishRaw(env.js, OrderFulfillmentCompleted, completed(), {
      type: "shop.order.v1.Nope",
    });
    const bad = completed();
    bad.shipments = [];
    const violation = await publishRaw(env.js, OrderFulfillmentCompleted, bad);
    const cases = [
      [poison.seq, "undecodable", /JK_CONTRACT_UNDECODABLE/],
      [unknown.seq, "unknown_type", /shop\.order\.v1\.Nope/],
      [violation.seq, "contract_violation", /shipments/],
    ] as const;
    for (const [seq, cls, reason] of cases) {
      await until(async () => (await deadLettersOf(env, seq)).length === 1, 5000, `dead letter of #${seq}`);
      const [dl] = await deadLettersOf(env, seq);
      assert.equal(dl!.failureClass, cls);
      assert.match(dl!.reason, reason);
      assert.equal(dl!.deliveries, 1, "no retries");
      assert.equal(dl!.consumer, "poison");
      assert.equal(dl!.headers[EventHeaders.MSG_ID]?.[0], `dlq:ORDER:${seq}:poison`);
    }
    assert.equal(calls, 0);
    await until(async () => (await c.lag()).ackPending === 0, 5000, "poison terminated");
  });

  it("retries a failing handler with growing delays and handles it once it succeeds", async () => {
    const c = await consumer("retry", { maxDeliver: 5 });
    const seen: number[] = [];
    let handled = 0;
    c.on(OrderFulfillmentCompleted, (_e, ctx) => {
      seen.push(performance.now());
      if (ctx.delivery <= 3) throw new Error(`flaky ${ctx.delivery}`);
      handled++;
    });
    await c.start();
    await publishRaw(env.js, OrderFulfillmentCompleted, completed());
    await until(() => handled === 1, 10_000, "handled after 3 failures");
    assert.equal(seen.length, 4);
    const gaps = seen.slice(1).map((t, i) => t - seen[i]!);
    // backoff 50, 100, 200 ms (no jitter): each redelivery waits at least its own, growing delay.
    // (Upper bounds and strict growth of the measured gaps depend on machine load, so they are
    // not asserted: a slow redelivery after the 2nd failure can make gap 2 longer than gap 3.)
    assert.ok(gaps[0]! >= 45 && gaps[1]! >= 95 && gaps[2]! >= 195, `gaps ${gaps.join(", ")}`);
  });

  it("dead-letters after maxDeliver with the last error; a replay from the DLQ is handled", async () => {
    const c = await consumer("exhaust", { maxDeliver: 3 });
    let fail = true;
    const handled: { replayOf: string | undefined; eventId: string }[] = [];
    c.on(OrderFulfillmentCompleted, (_e, ctx) => {
      if (fail) throw new Error(`warehouse down (delivery ${ctx.delivery})`);
      handled.push({ replayOf: ctx.replayOf, eventId: ctx.eventId });
    });
    await c.start();
    const { id, seq } = await publishRaw(env.js, OrderFulfillmentCompleted, completed());
    await until(
      async () => (await deadLettersOf(env, seq)).length === 1,
      10_000,
      "dead letter after 3 deliveries",
    );
    const [dl] = await deadLettersOf(env, seq);
    assert.equal(dl!.failureClass, "handler_exhausted");
    assert.equal(dl!.deliveries, 3);
    assert.match(dl!.reason, /warehouse down \(delivery 3\)/);
    assert.ok(
      Date.parse(dl!.firstFailure) < Date.parse(dl!.lastFailure),
      "first failure before last failure",
    );
    assert.equal(dl!.eventId, id);
    const shown = await showDeadLetter({ connection: env.nc }, dl!.seq);
    assert.equal((shown.event as { orderId: string }).orderId.length, 36);
    assert.equal(shown.headers[DeadLetterHeaders.FAILURE_CLASS]?.[0], "handler_exhausted");

    fail = false;
    const [r] = await replayDeadLetters({ connection: env.nc, seqs: [dl!.seq] });
    assert.equal(r!.subject, "order.fulfillment.completed");
    assert.equal(r!.eventId, id);
    await until(() => handled.length === 1, 5000, "replay handled");
    assert.deepEqual(handled[0], { replayOf: `DLQ:${dl!.seq}`, eventId: id });
  });

  it("dead-letters a PermanentError at once", async () => {
    const c = await consumer("permanent", { maxDeliver: 5 });
    let calls = 0;
    c.on(OrderFulfillmentCompleted, () => {
      calls++;
      throw new PermanentError("order does not exist");
    });
    await c.start();
    const { seq } = await publishRaw(env.js, OrderFulfillmentCompleted, completed());
    await until(async () => (await deadLettersOf(env, seq)).length === 1, 5000, "permanent dead letter");
    const [dl] = await deadLettersOf(env, seq);
    assert.equal(dl!.failureClass, "handler_permanent");
    assert.equal(dl!.deliveries, 1);
    assert.match(dl!.reason, /JK_CONSUMER_PERMANENT: order does not exist/);
    assert.equal(calls, 1);
  });

  it("writes dead letters per WIRE.md §5; replaying one twice stores it once and handles it once", async () => {
    const c = await consumer("replay-twice", { maxDeliver: 5 });
    let permanent = true;
    const handled: { replayOf: string | undefined; msgId: string }[] = [];
    c.on(OrderFulfillmentCompleted, (_e, ctx) => {
      if (permanent) throw new PermanentError("address unknown");
      handled.push({ replayOf: ctx.replayOf, msgId: ctx.msgId });
    });
    await c.start();
    const { id, seq } = await publishRaw(env.js, OrderFulfillmentCompleted, completed(), {
      key: "order-7",
    });
    await until(async () => (await deadLettersOf(env, seq)).length === 1, 5000, "dead letter");
    const [dl] = await deadLettersOf(env, seq);
    // Original headers in their order, Nats-Msg-Id per durable, then the Jetkit-Dlq-* block.
    const stored = await env.jsm.streams.getMessage("DLQ", { seq: dl!.seq });
    // Nats-* other than Nats-Msg-Id are publish/read machinery (Nats-Expected-Stream, direct get).
    const names = [...stored!.header!.keys()].filter((k) => !/^Nats-/.test(k) || k === "Nats-Msg-Id");
    assert.deepEqual(names, [
      ...["ce-id", "ce-specversion", "ce-type", "ce-source", "ce-time", "ce-datacontenttype"],
      ...["ce-partitionkey", "Nats-Msg-Id"],
      ...Object.values(DeadLetterHeaders),
    ]);
    assert.equal(stored!.header!.get(EventHeaders.MSG_ID), `dlq:ORDER:${seq}:replay-twice`);

    permanent = false;
    const [first] = await replayDeadLetters({ connection: env.nc, seqs: [dl!.seq] });
    assert.equal(first!.duplicate, false);
    assert.equal(first!.msgId, `replay:${dl!.seq}:${id}`);
    await until(() => handled.length === 1, 5000, "replay handled");
    const [second] = await replayDeadLetters({ connection: env.nc, seqs: [dl!.seq] });
    assert.equal(second!.duplicate, true, "the second replay is a duplicate within the window");
    assert.equal(second!.seq, first!.seq);
    // Nothing left to deliver or to ack: the duplicate was never stored, so it cannot run again.
    await until(
      async () => {
        const lag = await c.lag();
        return lag.pending === 0 && lag.ackPending === 0;
      },
      5000,
      "no lag",
    );
    assert.deepEqual(handled, [{ replayOf: `DLQ:${dl!.seq}`, msgId: `replay:${dl!.seq}:${id}` }]);
  });

  it("dead-letters from the MAX_DELIVERIES advisory when the handler never finishes", async () => {
    const c = await consumer("stuck", { maxDeliver: 2, ackWaitMs: 1000 });
    let calls = 0;
    c.on(OrderFulfillmentCompleted, () => {
      calls++;
      return new Promise<void>(() => {});
    });
    await c.start();
    const { seq } = await publishRaw(env.js, OrderFulfillmentCompleted, completed());
    await until(async () => (await deadLettersOf(env, seq)).length === 1, 10_000, "advisory dead letter");
    const [dl] = await deadLettersOf(env, seq);
    assert.equal(dl!.failureClass, "max_deliveries");
    assert.equal(dl!.deliveries, 2);
    assert.equal(calls, 2);
  });

  it("lists by failure class and purges only with confirmation", async () => {
    const violations = await listDeadLetters({ connection: env.nc, failureClass: "contract_violation" });
    assert.ok(violations.length >= 1);
    assert.ok(violations.every((d) => d.failureClass === "contract_violation"));
    await assert.rejects(purgeDeadLetters({ connection: env.nc }), { code: "JK_DLQ_CONFIRM" });
    await assert.rejects(showDeadLetter({ connection: env.nc }, 999_999), { code: "JK_DLQ_NOT_FOUND" });
    const before = (await listDeadLetters({ connection: env.nc, limit: 1000 })).length;
    const { purged } = await purgeDeadLetters({
      connection: env.nc,
      confirm: "DLQ",
      seqs: [violations[0]!.seq],
    });
    assert.equal(purged, 1);
    assert.equal((await listDeadLetters({ connection: env.nc, limit: 1000 })).length, before - 1);
  });

  it("refuses bad options and late handlers with coded errors", async () => {
    await assert.rejects(createConsumer({ connection: env.nc, durable: "bad name" }), {
      code: "JK_CONSUMER_CONFIG",
    });
    const c = await consumer("late");
    c.on(OrderFulfillmentCompleted, () => {});
    await c.start();
    assert.throws(() => c.on(OrderFulfillmentCompleted, () => {}), { code: "JK_CONSUMER_STATE" });
    const other = await createConsumer({
      connection: env.nc,
      durable: "x",
      subjects: ["customer.>"],
      logger: silent,
    });
    assert.throws(() => other.on(OrderFulfillmentCompleted, () => {}), { code: "JK_CONSUMER_CONFIG" });
  });
});
