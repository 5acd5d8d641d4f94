import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { type Consumer, createConsumer } from "../src/index.js";
import { completed, type Env, publishRaw, silent, startEnv, until } from "./support.js";

describe("consumer: partitioned consumer groups (in one process)", () => {
  let env: Env;
  before(async () => {
    env = await startEnv();
  });
  // Members left running by a failed test would keep the process alive: stop them all.
  const running: Consumer[] = [];
  afterEach(async () => {
    for (const c of running.splice(0)) await c.stop({ timeoutMs: 500 });
  });
  after(async () => {
    await env.dispose();
  });

  it("spreads the partitions over the members, keeps each key's order and runs each event once through a rebalance", async () => {
    const keys = Array.from({ length: 12 }, (_, i) => `key-${i}`);
    const perKey = 30;
    const effects: { key: string; n: number; id: string; member: string }[] = [];
    const make = async (member: string) => {
      const c = await createConsumer({
        connection: env.nc,
        durable: "grouped",
        events: [OrderFulfillmentCompleted],
        group: { partitions: 8, leaseMs: 2000 },
        concurrency: 8,
        logger: silent,
      });
      running.push(c);
      c.on(OrderFulfillmentCompleted, async (e, ctx) => {
        await sleep(Math.random() * 3);
        effects.push({
          key: ctx.partitionKey!,
          n: Number(e.shipments[0]!.trackingNumber),
          id: ctx.eventId,
          member,
        });
      });
      return c;
    };
    const a: Consumer = await make("a");
    await a.start();
    await until(() => a.ownedPartitions().length === 8, 10_000, "a owns every partition");
    let b: Consumer | undefined;
    for (let n = 0; n < perKey; n++) {
      for (const key of keys) {
        await publishRaw(env.js, OrderFulfillmentCompleted, completed(undefined, String(n)), { key });
      }
      if (n === 5) {
        b = await make("b");
        await b.start();
        // The rest goes out while the partitions move (a's drain and b's start overlap it).
        await until(() => b!.ownedPartitions().length > 0, 10_000, "b owns a partition");
      }
    }
    await until(() => effects.length >= keys.length * perKey, 30_000, "every event handled");
    await until(
      () => a.ownedPartitions().length === 4 && b!.ownedPartitions().length === 4,
      10_000,
      "4 partitions each",
    );
    assert.deepEqual(
      [...a.ownedPartitions(), ...b!.ownedPartitions()].sort((x, y) => x - y),
      [0, 1, 2, 3, 4, 5, 6, 7],
    );
    const ids = new Set(effects.map((e) => e.id));
    assert.equal(ids.size, effects.length, "no event ran twice");
    for (const key of keys) {
      const ns = effects.filter((e) => e.key === key).map((e) => e.n);
      assert.deepEqual(
        ns,
        Array.from({ length: perKey }, (_, i) => i),
        `order of ${key}`,
      );
    }
    assert.ok(
      new Set(effects.filter((e) => e.n > 20).map((e) => e.member)).size === 2,
      "both members did work",
    );
    await b!.stop({ timeoutMs: 2000 });
    await until(() => a.ownedPartitions().length === 8, 10_000, "a takes b's partitions back when b leaves");
    await a.stop({ timeoutMs: 2000 });
  });

  it("static membership: a name's partitions stay with it, a standby of the same name takes them when it stops", async () => {
    const make = (member: string) =>
      createConsumer({
        connection: env.nc,
        durable: "static",
        events: [OrderFulfillmentCompleted],
        group: { partitions: 4, members: ["x", "y"], member, leaseMs: 1000 },
        logger: silent,
      }).then((c) => {
        running.push(c);
        return c.on(OrderFulfillmentCompleted, () => {});
      });
    const x1 = await make("x");
    const x2 = await make("x");
    const y = await make("y");
    await x1.start();
    await until(() => x1.ownedPartitions().length === 2, 10_000, "x1 owns x's partitions");
    await x2.start();
    await y.start();
    await until(() => y.ownedPartitions().length === 2, 10_000, "y owns y's partitions");
    assert.deepEqual(x1.ownedPartitions(), [0, 2], "x owns partitions 0 and 2 (p % 2 == 0)");
    assert.deepEqual(y.ownedPartitions(), [1, 3]);
    assert.deepEqual(x2.ownedPartitions(), [], "the standby owns nothing while x1 runs");
    await x1.stop({ timeoutMs: 1000 });
    await until(() => x2.ownedPartitions().length === 2, 10_000, "the standby takes x's partitions");
    assert.deepEqual(y.ownedPartitions(), [1, 3], "y's partitions never moved");
    await x2.stop({ timeoutMs: 1000 });
    await y.stop({ timeoutMs: 1000 });
  });

  it("refuses to join a group with another partition count (JK_CONSUMER_GROUP), naming both", async () => {
    const first = await createConsumer({
      connection: env.nc,
      durable: "mismatch",
      events: [OrderFulfillmentCompleted],
      group: { partitions: 8 },
      logger: silent,
    });
    running.push(first);
    first.on(OrderFulfillmentCompleted, () => {});
    await first.start();
    const second = await createConsumer({
      connection: env.nc,
      durable: "mismatch",
      events: [OrderFulfillmentCompleted],
      group: { partitions: 4 },
      logger: silent,
    });
    second.on(OrderFulfillmentCompleted, () => {});
    await assert.rejects(second.start(), (err: Error & { code?: string }) => {
      assert.equal(err.code, "JK_CONSUMER_GROUP");
      assert.match(err.message, /exists with 8 partitions .* asks for 4/);
      return true;
    });
    await first.stop({ timeoutMs: 1000 });
  });
});
