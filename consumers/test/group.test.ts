import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { type Consumer, createConsumer } from "../src/index.js";
import { completed, type Env, publishRaw, silent, startEnv, until } from "./support.js";

describe("consumer: partitioned consumer groups (in one process)", () => {
  let env: Env;
  before(async () => {
    env = await startEnv();
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
});
