import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { type NatsCluster, startCluster } from "@jetkit/testing";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { createConsumer } from "../src/index.js";
import { completed, publishRaw, silent, until } from "./support.js";

/** The consumer on a real 3-node cluster with an R3 stream, through a leader kill. */
describe("consumer on a cluster", () => {
  let cluster: NatsCluster;
  let admin: NatsConnection;

  before(async () => {
    cluster = await startCluster({ size: 3 });
    admin = await connect({ servers: cluster.urls, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    const jsm = await jetstreamManager(admin);
    await jsm.streams.add({ name: "ORDER", subjects: ["order.>"], num_replicas: 3 });
    await jsm.streams.add({ name: "DLQ", subjects: ["dlq.>"], num_replicas: 3 });
  });
  after(async () => {
    await admin?.close();
    await cluster?.dispose();
  });

  it("the consumer leader's node killed: every event is handled once, the ones published after the election too", async () => {
    const nc = await connect({ servers: cluster.urls, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    const c = await createConsumer({
      connection: nc,
      durable: "through-kill",
      events: [OrderFulfillmentCompleted],
      logger: silent,
      idempotency: { bucket: "idem-kill" },
      ackWaitMs: 5000,
    });
    const effects = new Map<string, number>();
    const firstEffect = new Map<string, number>();
    c.on(OrderFulfillmentCompleted, (e) => {
      effects.set(e.orderId, (effects.get(e.orderId) ?? 0) + 1);
      if (!firstEffect.has(e.orderId)) firstEffect.set(e.orderId, Date.now());
    });
    await c.start();
    const js = jetstream(admin);
    const jsm = await jetstreamManager(admin);
    try {
      const before = Array.from({ length: 20 }, () => completed());
      for (const e of before) await publishRaw(js, OrderFulfillmentCompleted, e);
      await until(() => effects.size === 20, 10_000, "the events before the kill");

      const leader = (await jsm.consumers.info("ORDER", "through-kill")).cluster?.leader;
      assert.ok(leader, "the durable has a leader");
      const victim = cluster.node(leader);
      await victim.kill();
      let elected = 0;
      await until(
        async () => {
          const info = await jsm.consumers.info("ORDER", "through-kill").catch(() => undefined);
          const l = info?.cluster?.leader;
          if (l && l !== leader && (await cluster.streamLeader("ORDER"))) elected = Date.now();
          return elected > 0;
        },
        30_000,
        "a new consumer leader",
      );
      const afterKill = completed();
      let published = 0;
      await until(
        async () => {
          try {
            await publishRaw(js, OrderFulfillmentCompleted, afterKill, { id: `after-${afterKill.orderId}` });
            published = Date.now();
            return true;
          } catch {
            return false; // the stream may still be electing; the consumer leader is there
          }
        },
        15_000,
        "a publish after the election",
      );
      await until(() => effects.has(afterKill.orderId), 20_000, "the event published after the election");
      const recoveryMs = (firstEffect.get(afterKill.orderId) ?? 0) - published;
      // A figure, not an assertion (the machine is noisy): publish -> effect after the election.
      console.log(
        `# consumer recovery: published ${published - elected} ms after the new leader, effected ${recoveryMs} ms after the publish`,
      );
      await victim.start();
      assert.deepEqual(
        [...effects].filter(([, n]) => n !== 1),
        [],
        "every handler ran once",
      );
      assert.equal(effects.size, 21);
    } finally {
      await c.stop({ timeoutMs: 1000 });
      await nc.close();
    }
  });
});
