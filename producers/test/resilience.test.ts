import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { JetkitError } from "@jetkit/contracts";
import type { NatsServer } from "@jetkit/testing";
import type { NatsConnection } from "@nats-io/transport-node";
import { type BreakerChange, createProducer, type PublishAck } from "../src/index.js";
import {
  fulfillmentCompleted,
  OrderFulfillmentCompleted,
  serverWithStreams,
  silent,
  storedMessages,
  until,
} from "./support.js";

describe("resilience", () => {
  let server: NatsServer;
  let admin: NatsConnection;

  before(async () => {
    ({ server, admin } = await serverWithStreams());
  });
  after(async () => {
    server?.resume?.();
    await admin?.close();
    await server?.dispose();
  });

  it("a server stopped mid-stream and restarted: publishes retry and complete, no loss, no duplicate; the breaker opens and closes", async () => {
    const changes: BreakerChange[] = [];
    let opened!: () => void;
    const openedOnce = new Promise<void>((resolve) => {
      opened = resolve;
    });
    const producer = await createProducer({
      servers: server.url,
      name: "restart-drill",
      logger: silent,
      maxInFlight: 32,
      retry: { attemptTimeoutMs: 400, deadlineMs: 30_000, initialDelayMs: 20, maxDelayMs: 200 },
      breaker: { failureThreshold: 3, coolDownMs: 300 },
      onBreakerChange: (c) => {
        changes.push(c);
        if (c.to === "open") opened();
      },
    });
    try {
      const total = 400;
      const acks: PublishAck[] = [];
      let stopping: Promise<void> | undefined;
      const run = (async () => {
        for await (const ack of producer.publishEach(
          OrderFulfillmentCompleted,
          Array.from({ length: total }, () => fulfillmentCompleted()),
          { options: (_e, i) => ({ msgId: `restart-${i}` }) },
        )) {
          acks.push(ack);
          if (acks.length === 100) stopping = server.stop();
        }
      })();
      // awaited below; a failed assertion before that must not surface as this promise's rejection
      run.catch(() => {});

      await openedOnce;
      // While open, a new publish fails fast instead of waiting for a deadline.
      const t0 = performance.now();
      await assert.rejects(
        producer.publish(OrderFulfillmentCompleted, fulfillmentCompleted()),
        (err: JetkitError) => {
          assert.equal(err.code, "JK_PRODUCER_CIRCUIT_OPEN");
          return true;
        },
      );
      assert.ok(performance.now() - t0 < 100, "fails fast");
      await stopping;
      await server.start();
      await run;

      assert.equal(acks.length, total, "every publish completed");
      assert.deepEqual(
        acks.map((a) => a.msgId),
        Array.from({ length: total }, (_, i) => `restart-${i}`),
        "acks in order",
      );
      assert.ok(
        acks.some((a) => a.attempts > 1),
        "some publishes needed retries",
      );
      const ids = (await storedMessages(admin, "ORDER"))
        .map((m) => m.header.get("Nats-Msg-Id"))
        .filter((id) => id.startsWith("restart-"));
      assert.equal(new Set(ids).size, total, "no loss");
      assert.equal(ids.length, total, "no duplicate stored");

      const states = changes.map((c) => c.to);
      assert.equal(states[0], "open");
      assert.equal(states.at(-1), "closed", "closed again once the server is back");
      assert.ok(states.includes("half-open"), "probed before closing");
      assert.equal(producer.breakerState, "closed");
    } finally {
      await producer.close();
    }
  });

  it("backpressure: with a paused server, publishes in flight never exceed the window", async () => {
    const window = 16;
    const producer = await createProducer({
      servers: server.url,
      name: "backpressure",
      logger: silent,
      maxInFlight: window,
      retry: { attemptTimeoutMs: 60_000, deadlineMs: 60_000 },
    });
    let pulled = 0;
    async function* events() {
      for (let i = 0; i < 200; i++) {
        pulled++;
        yield fulfillmentCompleted();
      }
    }
    try {
      await producer.publish(OrderFulfillmentCompleted, fulfillmentCompleted()); // connected and warm
      server.pause();
      const batch = producer.publishMany(OrderFulfillmentCompleted, events(), { window: 8 });
      const singles = Array.from({ length: 50 }, () =>
        producer.publish(OrderFulfillmentCompleted, fulfillmentCompleted()),
      );
      // If an assertion below fails, close() in `finally` rejects these; that must not hide it.
      batch.catch(() => {});
      for (const p of singles) p.catch(() => {});
      await until("the window to fill", () => producer.stats().inFlight === window);
      await new Promise((r) => setTimeout(r, 200)); // let anything that would overrun the window try
      const stalled = producer.stats();
      assert.equal(stalled.inFlight, window, `exactly the window is in flight: ${JSON.stringify(stalled)}`);
      assert.ok(stalled.waiting >= 50 + 8 - window, `callers wait for a slot (${stalled.waiting})`);
      assert.ok(pulled <= 8 + 1, `the batch pulled only its window from the source (${pulled})`);

      server.resume();
      const acks = await batch;
      await Promise.all(singles);
      assert.equal(acks.length, 200);
      const after = producer.stats();
      assert.equal(
        after.inFlightHighWater,
        window,
        `never more than the window at once: ${JSON.stringify(after)}`,
      );
      assert.equal(after.inFlight, 0, JSON.stringify(after));
    } finally {
      server.resume();
      await producer.close();
    }
  });
});
