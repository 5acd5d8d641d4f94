import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  EventHeaders,
  getCatalog,
  isJetkitError,
  type JetkitError,
  readEventHeaders,
} from "@jetkit/contracts";
import { Money } from "@jetkit/contracts/gen/shop/common/v1/commerce";
import type { NatsServer } from "@jetkit/testing";
import { startServer } from "@jetkit/testing";
import type { NatsConnection } from "@nats-io/transport-node";
import { createProducer, type Producer } from "../src/index.js";
import {
  CustomerCheckoutInitiated,
  checkoutInitiated,
  fulfillmentCompleted,
  OrderFulfillmentCompleted,
  serverWithStreams,
  silent,
  storedMessages,
} from "./support.js";

describe("publish", () => {
  let server: NatsServer;
  let admin: NatsConnection;
  let producer: Producer;

  before(async () => {
    ({ server, admin } = await serverWithStreams());
    producer = await createProducer({ servers: server.url, name: "fulfillment", logger: silent });
  });
  after(async () => {
    await producer?.close();
    await admin?.close();
    await server?.dispose();
  });

  it("stores the event in its contract's stream with the wire headers, decodable to the same event", async () => {
    const event = fulfillmentCompleted();
    const ack = await producer.publish(OrderFulfillmentCompleted, event, { causationId: "cause-1" });
    assert.equal(ack.stream, "ORDER");
    assert.equal(ack.subject, "order.fulfillment.completed");
    assert.equal(ack.duplicate, false);
    assert.equal(ack.attempts, 1);

    const stored = (await storedMessages(admin, "ORDER")).find((m) => m.seq === ack.seq);
    assert.ok(stored, "message is stored at the acked sequence");
    assert.equal(stored.subject, "order.fulfillment.completed");
    assert.deepEqual(OrderFulfillmentCompleted.decode(stored.data), event);
    const decoded = getCatalog().decode(getCatalog().bySubject(stored.subject), stored.data);
    assert.equal((decoded as unknown as { orderId: string }).orderId, event.orderId);

    const h = readEventHeaders((name) => stored.header.get(name) || undefined);
    assert.equal(h.id, ack.msgId);
    assert.equal(h.msgId, ack.msgId);
    assert.equal(h.type, "shop.order.v1.OrderFulfillmentCompleted");
    assert.equal(h.source, "/jetkit/fulfillment");
    assert.equal(h.partitionKey, event.orderId);
    assert.equal(h.correlationId, ack.msgId, "correlation id defaults to the event id");
    assert.equal(h.causationId, "cause-1");
    assert.match(ack.msgId, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it("writes the headers in the wire order of contracts/WIRE.md", async () => {
    const ack = await producer.publish(OrderFulfillmentCompleted, fulfillmentCompleted(), {
      msgId: "golden-1",
      correlationId: "corr-1",
      causationId: "cause-1",
      time: new Date("2025-03-01T10:00:00.000Z"),
    });
    const stored = (await storedMessages(admin, "ORDER")).find((m) => m.seq === ack.seq)!;
    assert.deepEqual(
      [...stored.header.keys()],
      [
        EventHeaders.ID,
        EventHeaders.SPEC_VERSION,
        EventHeaders.TYPE,
        EventHeaders.SOURCE,
        EventHeaders.TIME,
        EventHeaders.DATA_CONTENT_TYPE,
        EventHeaders.PARTITION_KEY,
        EventHeaders.CORRELATION_ID,
        EventHeaders.CAUSATION_ID,
        EventHeaders.MSG_ID,
      ],
    );
    assert.equal(stored.header.get("ce-id"), "golden-1");
    assert.equal(stored.header.get("ce-specversion"), "1.0");
    assert.equal(stored.header.get("ce-time"), "2025-03-01T10:00:00.000Z");
    assert.equal(stored.header.get("ce-datacontenttype"), "application/protobuf");
    assert.equal(stored.header.get("ce-correlationid"), "corr-1");
    assert.equal(stored.header.get("Nats-Msg-Id"), "golden-1");
  });

  it("a second publish with the same msgId is a duplicate and stores nothing more", async () => {
    const event = fulfillmentCompleted();
    const before = (await storedMessages(admin, "ORDER")).length;
    const first = await producer.publish(OrderFulfillmentCompleted, event, { msgId: "dup-1" });
    const second = await producer.publish(OrderFulfillmentCompleted, event, { msgId: "dup-1" });
    assert.equal(first.duplicate, false);
    assert.equal(second.duplicate, true);
    assert.equal(second.seq, first.seq, "the stream answers with the stored sequence");
    const stored = await storedMessages(admin, "ORDER");
    assert.equal(stored.length, before + 1);
    assert.equal(stored.filter((m) => m.header.get("Nats-Msg-Id") === "dup-1").length, 1);
  });

  it("refuses an event that breaks its contract, naming the field and rule, and sends nothing", async () => {
    const before = (await storedMessages(admin, "ORDER")).length;
    const bad = fulfillmentCompleted();
    bad.shipments[0]!.carrier = 0; // CARRIER_UNSPECIFIED is not allowed
    await assert.rejects(producer.publish(OrderFulfillmentCompleted, bad), (err: JetkitError) => {
      assert.equal(err.code, "JK_CONTRACT_VIOLATION");
      assert.equal(err.details.field, "shipments[0].carrier");
      assert.equal(err.details.rule, "enum.not_in");
      assert.match(err.message, /shipments\[0\]\.carrier/);
      return true;
    });
    const missing = fulfillmentCompleted();
    delete missing.completedAt;
    await assert.rejects(producer.publish(OrderFulfillmentCompleted, missing), (err: JetkitError) => {
      assert.equal(err.details.field, "completed_at");
      assert.equal(err.details.rule, "required");
      return true;
    });
    assert.equal((await storedMessages(admin, "ORDER")).length, before, "nothing stored");
  });

  it("refuses a message type that is not an event of the catalog", async () => {
    await assert.rejects(
      producer.publish(Money, { currencyCode: "EUR", units: 1, nanos: 0 }),
      (err: JetkitError) =>
        isJetkitError(err, "JK_CONTRACT_UNKNOWN_TYPE") && /shop\.common\.v1\.Money/.test(err.message),
    );
  });

  it("publishes already-encoded bytes by subject or type, still validated", async () => {
    const event = checkoutInitiated();
    const payload = CustomerCheckoutInitiated.encode(event).finish();
    const bySubject = await producer.publishEncoded({ subject: "customer.checkout.initiated", payload });
    const byType = await producer.publishEncoded({
      type: "shop.customer.v1.CustomerCheckoutInitiated",
      payload,
      headers: { "x-gateway-client": "spiffe://shop/client" },
    });
    assert.equal(bySubject.stream, "CUSTOMER");
    assert.equal(byType.stream, "CUSTOMER");
    const stored = (await storedMessages(admin, "CUSTOMER")).find((m) => m.seq === byType.seq)!;
    assert.equal(stored.header.get("ce-partitionkey"), event.customerId, "key read from the decoded bytes");
    assert.equal(stored.header.get("x-gateway-client"), "spiffe://shop/client");

    const invalid = CustomerCheckoutInitiated.encode({ ...event, items: [] }).finish();
    await assert.rejects(
      producer.publishEncoded({ subject: "customer.checkout.initiated", payload: invalid }),
      (err: JetkitError) => err.code === "JK_CONTRACT_VIOLATION" && err.details.field === "items",
    );
    await assert.rejects(
      producer.publishEncoded({
        subject: "customer.checkout.initiated",
        payload: new Uint8Array([0xff, 0xff]),
      }),
      (err: JetkitError) => err.code === "JK_CONTRACT_UNDECODABLE",
    );
    await assert.rejects(
      producer.publishEncoded({ subject: "customer.checkout.initiated", payload, headers: { "ce-id": "x" } }),
      (err: JetkitError) => err.code === "JK_PRODUCER_OPTIONS",
    );
    await assert.rejects(
      producer.publishEncoded({
        subject: "order.fulfillment.started",
        type: "shop.customer.v1.CustomerCheckoutInitiated",
        payload,
      }),
      (err: JetkitError) => err.code === "JK_PRODUCER_OPTIONS",
    );
  });

  it("passes optimistic-concurrency expectations to the stream and does not retry a mismatch", async () => {
    const orderId = "c8f0a7a2-0a6e-4c1e-9b0a-6d7f2f5f2a11";
    const first = await producer
      .publish(OrderFulfillmentCompleted, fulfillmentCompleted(orderId), {
        expect: { lastSubjectSequence: 0 },
      })
      .catch((e: unknown) => e as JetkitError);
    // the subject already has messages from earlier tests, so 0 is stale
    assert.equal((first as JetkitError).code, "JK_PRODUCER_EXPECTATION_FAILED");
    assert.equal((first as JetkitError).details.api_code, 10071);
    const last = (await storedMessages(admin, "ORDER"))
      .filter((m) => m.subject === "order.fulfillment.completed")
      .at(-1)!;
    const ok = await producer.publish(OrderFulfillmentCompleted, fulfillmentCompleted(orderId), {
      expect: { lastSubjectSequence: last.seq },
    });
    assert.equal(ok.seq > last.seq, true);
    const stats = producer.stats();
    assert.equal(stats.breaker, "closed", "a refusal is an answer, not a broker failure");
  });

  it("refuses an event larger than the server's max_payload, naming size and limit, and sends nothing", async () => {
    const small = await startServer({ config: "max_payload: 2048" });
    const p = await createProducer({ servers: small.url, name: "big", logger: silent });
    try {
      const event = checkoutInitiated();
      event.items = Array.from({ length: 80 }, (_, i) => ({
        sku: `SKU-${i}-${"x".repeat(20)}`,
        quantity: 1,
        unitPrice: { currencyCode: "EUR", units: 1, nanos: 0 },
      }));
      await assert.rejects(p.publish(CustomerCheckoutInitiated, event), (err: JetkitError) => {
        assert.equal(err.code, "JK_PRODUCER_PAYLOAD_TOO_LARGE");
        assert.equal(err.details.limit, 2048);
        assert.ok((err.details.size as number) > 2048);
        assert.match(err.message, new RegExp(`${err.details.size} bytes.*max_payload of 2048 bytes`));
        return true;
      });
      assert.equal(p.stats().failures, 1);
    } finally {
      await p.close();
      await small.dispose();
    }
  });

  it("retries while no stream answers (no responders) and fails at the deadline with JK_PRODUCER_OUTCOME_UNKNOWN, not a refusal", async () => {
    const bare = await startServer(); // JetStream on, no streams: the server answers 503 no responders
    const p = await createProducer({
      servers: bare.url,
      name: "no-stream",
      logger: silent,
      retry: { deadlineMs: 400, attemptTimeoutMs: 200, initialDelayMs: 10, maxDelayMs: 20 },
      breaker: { failureThreshold: 1000 }, // keep the breaker out of it: the last failure is the server's answer
    });
    try {
      const started = Date.now();
      await assert.rejects(
        p.publish(OrderFulfillmentCompleted, fulfillmentCompleted()),
        (err: JetkitError) =>
          err.code === "JK_PRODUCER_OUTCOME_UNKNOWN" &&
          /no responders/.test(err.message) &&
          /may be stored/.test(err.message) &&
          err.details.msgId !== undefined,
      );
      assert.ok(Date.now() - started < 3000, "failed at the deadline, not later");
      assert.ok(p.stats().retries > 0, "no responders is retried");
    } finally {
      await p.close();
      await bare.dispose();
    }
  });

  it("fails publishes after close with JK_PRODUCER_CLOSED", async () => {
    const p = await createProducer({ servers: server.url, name: "short-lived", logger: silent });
    const inFlight = p.publish(OrderFulfillmentCompleted, fulfillmentCompleted());
    await p.close();
    assert.equal((await inFlight).stream, "ORDER", "close flushed the publish in flight");
    await assert.rejects(
      p.publish(OrderFulfillmentCompleted, fulfillmentCompleted()),
      (err: JetkitError) => err.code === "JK_PRODUCER_CLOSED",
    );
  });
});
