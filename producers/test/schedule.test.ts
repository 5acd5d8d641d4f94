import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { getCatalog } from "@jetkit/contracts";
import { CustomerCheckoutInitiated } from "@jetkit/contracts/gen/shop/customer/v1/events";
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { applyStreams } from "@jetkit/contracts/streams";
import { type NatsServer, startServer } from "@jetkit/testing";
import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { createProducer, type Producer } from "../src/index.js";
import { checkoutInitiated, fulfillmentCompleted, silent, until } from "./support.js";

describe("producer: scheduled and expiring events (streams applied from the contracts)", () => {
  let server: NatsServer;
  let admin: NatsConnection;
  let producer: Producer;
  /** ce-id -> when the event reached the subject's reader (epoch ms). */
  const seen = new Map<string, number>();
  let stopReading: (() => void) | undefined;
  before(async () => {
    server = await startServer();
    admin = await connect({ servers: server.url });
    await applyStreams(await jetstreamManager(admin), getCatalog());
    producer = await createProducer({ servers: server.url, name: "schedule-test", logger: silent });
    // What a consumer of the event's subject sees, and when.
    const c = await jetstream(admin).consumers.get("CUSTOMER", {
      filter_subjects: ["customer.checkout.initiated"],
      deliver_policy: DeliverPolicy.New,
    });
    const iter = await c.consume();
    stopReading = () => iter.stop();
    void (async () => {
      for await (const m of iter) seen.set(m.headers?.get("ce-id") ?? "", Date.now());
    })();
  });
  after(async () => {
    stopReading?.();
    await producer.close();
    await admin.close();
    await server.dispose();
  });

  it("delivers a delayed event at its time, not before, and a cancelled one never", async () => {
    const sent = Date.now();
    await producer.publish(CustomerCheckoutInitiated, checkoutInitiated(), { delayMs: 1500 });
    const cancelledId = crypto.randomUUID();
    await producer.publish(CustomerCheckoutInitiated, checkoutInitiated(), {
      delayMs: 1200,
      msgId: cancelledId,
    });
    const laterId = crypto.randomUUID();
    await producer.publish(CustomerCheckoutInitiated, checkoutInitiated(), { delayMs: 2000, msgId: laterId });
    assert.equal(
      await producer.cancelScheduled(CustomerCheckoutInitiated, cancelledId),
      true,
      "cancelled while pending",
    );
    assert.equal(seen.size, 0, "nothing delivered at publish time");
    await until("the 2 s event delivered", () => seen.has(laterId), 10_000);
    assert.ok(
      seen.get(laterId)! - sent >= 2000,
      `delivered ${seen.get(laterId)! - sent} ms after the publish, before its time`,
    );
    assert.equal(seen.has(cancelledId), false, "the cancelled event was never delivered");
    assert.equal(seen.size, 2, "the 1.5 s and the 2 s events, nothing else");
    assert.equal(
      await producer.cancelScheduled(CustomerCheckoutInitiated, laterId),
      false,
      "nothing left to cancel once delivered",
    );
  });

  it("removes an event with a TTL from the stream after it, and refuses a TTL its stream does not allow", async () => {
    const jsm = await jetstreamManager(admin);
    const id = crypto.randomUUID();
    const ack = await producer.publish(CustomerCheckoutInitiated, checkoutInitiated(), {
      ttlMs: 1000,
      msgId: id,
    });
    const stored = await jsm.streams.getMessage("CUSTOMER", { seq: ack.seq });
    assert.equal(stored?.header.get("Nats-TTL"), "1s");
    await until(
      "the event expired",
      async () => (await jsm.streams.getMessage("CUSTOMER", { seq: ack.seq }).catch(() => null)) === null,
      10_000,
    );
    const before = (await jsm.streams.info("ORDER")).state.messages;
    await assert.rejects(
      producer.publish(OrderFulfillmentCompleted, fulfillmentCompleted(), { ttlMs: 5000 }),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, "JK_PRODUCER_UNSUPPORTED");
        assert.match(err.message, /stream ORDER does not allow per-message TTLs.*allow_msg_ttl: true/);
        return true;
      },
    );
    await assert.rejects(
      producer.publish(OrderFulfillmentCompleted, fulfillmentCompleted(), { delayMs: 1000 }),
      /JK_PRODUCER_UNSUPPORTED|does not allow message schedules/,
    );
    assert.equal((await jsm.streams.info("ORDER")).state.messages, before, "nothing was sent");
  });

  it("refuses a schedule in the past or beyond the stream's max age, naming the fix, and sends nothing", async () => {
    const jsm = await jetstreamManager(admin);
    const before = (await jsm.streams.info("CUSTOMER")).state.messages;
    await assert.rejects(
      producer.publish(CustomerCheckoutInitiated, checkoutInitiated(), {
        deliverAt: new Date(Date.now() - 60_000),
      }),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, "JK_PRODUCER_OPTIONS");
        assert.match(err.message, /s in the past: schedule a future time, or publish without deliverAt/);
        return true;
      },
    );
    // CUSTOMER keeps messages 30 days: a schedule 31 days ahead would expire unfired.
    await assert.rejects(
      producer.publish(CustomerCheckoutInitiated, checkoutInitiated(), { delayMs: 31 * 86_400_000 }),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, "JK_PRODUCER_OPTIONS");
        assert.match(
          err.message,
          /beyond stream CUSTOMER's max_age of 2592000 s.*Schedule sooner, or raise max_age/,
        );
        return true;
      },
    );
    assert.equal((await jsm.streams.info("CUSTOMER")).state.messages, before, "nothing was sent");
  });
});
