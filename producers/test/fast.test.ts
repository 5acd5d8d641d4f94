import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { getCatalog, isJetkitError } from "@jetkit/contracts";
import { InventoryStockReserved } from "@jetkit/contracts/gen/shop/inventory/v1/events";
import { applyStreams } from "@jetkit/contracts/streams";
import { type NatsServer, startServer } from "@jetkit/testing";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { pino } from "pino";
import { createProducer, type Producer } from "../src/index.js";
import { addCatalogStreams, reservation, silent, storedMessages, uuid } from "./support.js";

const count = async (nc: NatsConnection, stream: string) =>
  (await (await jetstreamManager(nc)).streams.info(stream)).state.messages;

/** The msg ids stored in INVENTORY, in stream order. */
const storedIds = async (nc: NatsConnection) =>
  (await storedMessages(nc, "INVENTORY")).map((m) => m.header.get("Nats-Msg-Id"));

describe("producer: publishMany over fast-ingest batches (INVENTORY applied from the contracts, allow_batched)", () => {
  let server: NatsServer;
  let admin: NatsConnection;
  let producer: Producer;
  before(async () => {
    server = await startServer();
    admin = await connect({ servers: server.url });
    await applyStreams(await jetstreamManager(admin), getCatalog());
    producer = await createProducer({
      servers: server.url,
      name: "fast-test",
      logger: silent,
      maxInFlight: 64,
    });
  });
  after(async () => {
    await producer.close();
    await admin.close();
    await server.dispose();
  });

  it("stores every event once, in order, acknowledging each; a rerun with the same msg ids stores nothing", async () => {
    await (await jetstreamManager(admin)).streams.purge("INVENTORY");
    const events = Array.from({ length: 700 }, () => reservation());
    const opts = { options: (e: InventoryStockReserved) => ({ msgId: e.reservationId }) };
    const acks = await producer.publishMany(InventoryStockReserved, events, opts);
    assert.deepEqual(
      acks.map((a) => a.msgId),
      events.map((e) => e.reservationId),
      "one ack per event, in order",
    );
    assert.ok(
      acks.every((a) => a.batch !== undefined && a.seq === 0),
      "acknowledged by a fast-ingest batch",
    );
    assert.deepEqual(
      await storedIds(admin),
      events.map((e) => e.reservationId),
      "stored once each, in order",
    );
    assert.ok(producer.stats().inFlightHighWater <= 64, `window held: ${producer.stats().inFlightHighWater}`);

    const again = await producer.publishMany(InventoryStockReserved, events, opts);
    assert.equal(again.length, 700);
    assert.equal(await count(admin, "INVENTORY"), 700, "the stream dropped every copy");
  });

  it("stops at an event the stream refuses: the ones before it are stored, it and the ones after it are not", async () => {
    await (await jetstreamManager(admin)).streams.purge("INVENTORY");
    const seed = await producer.publish(InventoryStockReserved, reservation());
    const events = Array.from({ length: 300 }, () => reservation());
    const yielded: string[] = [];
    const err = await (async () => {
      for await (const ack of producer.publishEach(InventoryStockReserved, events, {
        // event 120 expects its subject to be empty, which it is not
        options: (e, i) => ({
          msgId: e.reservationId,
          ...(i === 120 ? { expect: { lastSubjectSequence: 0 } } : {}),
        }),
      })) {
        yielded.push(ack.msgId);
      }
    })().then(
      () => assert.fail("expected JK_PRODUCER_BATCH_FAILED"),
      (e: unknown) => e,
    );
    assert.ok(isJetkitError(err, "JK_PRODUCER_BATCH_FAILED"), (err as Error).message);
    assert.equal(err.details.index, 120);
    assert.ok(isJetkitError(err.cause, "JK_PRODUCER_EXPECTATION_FAILED"), String(err.cause));
    assert.deepEqual(
      yielded,
      events.slice(0, 120).map((e) => e.reservationId),
    );
    assert.deepEqual(await storedIds(admin), [
      seed.msgId,
      ...events.slice(0, 120).map((e) => e.reservationId),
    ]);
  });

  it("stops at an event that breaks its contract, after storing the ones before it", async () => {
    await (await jetstreamManager(admin)).streams.purge("INVENTORY");
    const events = Array.from({ length: 50 }, () => reservation());
    events[30] = { ...events[30]!, lines: [] };
    const err = await producer.publishMany(InventoryStockReserved, events).then(
      () => assert.fail("expected JK_PRODUCER_BATCH_FAILED"),
      (e: unknown) => e,
    );
    assert.ok(isJetkitError(err, "JK_PRODUCER_BATCH_FAILED"));
    assert.equal(err.details.index, 30);
    assert.ok(isJetkitError(err.cause, "JK_CONTRACT_VIOLATION"));
    assert.equal(await count(admin, "INVENTORY"), 30);
  });

  it("acknowledges what a stalled source gave so far: the open batch is committed while it waits", async () => {
    const events = Array.from({ length: 10 }, () => reservation());
    let resume!: () => void;
    const stalled = new Promise<void>((r) => {
      resume = r;
    });
    async function* source() {
      yield* events.slice(0, 5);
      await stalled; // until the first five are acknowledged
      yield* events.slice(5);
    }
    const acks: { msgId: string; batch: string | undefined }[] = [];
    for await (const ack of producer.publishEach(InventoryStockReserved, source(), {
      options: (e) => ({ msgId: e.reservationId }),
    })) {
      acks.push({ msgId: ack.msgId, batch: ack.batch?.id });
      if (acks.length === 5) resume();
    }
    assert.deepEqual(
      acks.map((a) => a.msgId),
      events.map((e) => e.reservationId),
    );
    assert.equal(new Set(acks.slice(0, 5).map((a) => a.batch)).size, 1);
    assert.notEqual(acks[5]!.batch, acks[0]!.batch, "the rest went out in a new batch");
  });

  it("gives back its in-flight slots when the caller stops reading early", async () => {
    let read = 0;
    for await (const _ack of producer.publishEach(
      InventoryStockReserved,
      Array.from({ length: 500 }, () => reservation()),
    )) {
      if (++read === 10) break;
    }
    assert.equal(producer.stats().inFlight, 0, "no slot kept by the abandoned batch");
    const after = await producer.publishMany(InventoryStockReserved, [reservation()]);
    assert.equal(after.length, 1, "the producer publishes on");
  });

  it("publishes one by one with per-event sequences when asked (fast: false)", async () => {
    const acks = await producer.publishMany(InventoryStockReserved, [reservation(), reservation()], {
      fast: false,
    });
    assert.ok(acks.every((a) => a.batch === undefined && a.seq > 0));
    assert.equal(acks[1]!.seq, acks[0]!.seq + 1);
  });
});

describe("producer: publishMany falls back to pipelined publishes when the stream has no allow_batched", () => {
  const logged: string[] = [];
  let server: NatsServer;
  let admin: NatsConnection;
  let producer: Producer;
  before(async () => {
    server = await startServer();
    admin = await connect({ servers: server.url });
    await addCatalogStreams(admin, ["INVENTORY"]); // made by hand: no allow_batched on the server
    producer = await createProducer({
      servers: server.url,
      name: "fast-fallback",
      logger: pino({ level: "warn" }, { write: (line: string) => void logged.push(line) }),
    });
  });
  after(async () => {
    await producer.close();
    await admin.close();
    await server.dispose();
  });

  it("stores every event once with its own ack, the refused first batch message included", async () => {
    const events = Array.from({ length: 40 }, () => reservation(uuid()));
    const acks = await producer.publishMany(InventoryStockReserved, events, {
      options: (e) => ({ msgId: e.reservationId }),
    });
    assert.deepEqual(
      acks.map((a) => [a.msgId, a.batch]),
      events.map((e) => [e.reservationId, undefined]),
    );
    assert.deepEqual(
      acks.map((a) => a.seq),
      events.map((_, i) => i + 1),
      "per-event sequences: one publish per event",
    );
    assert.deepEqual(
      await storedIds(admin),
      events.map((e) => e.reservationId),
    );
    assert.equal(
      logged.filter((l) => l.includes("does not take fast-ingest batches")).length,
      1,
      "the server refused the fast batch once; the producer remembers it",
    );
    await producer.publishMany(InventoryStockReserved, [reservation()]);
    assert.equal(logged.filter((l) => l.includes("does not take fast-ingest batches")).length, 1);
  });
});

describe("producer: a fast-ingest publishMany through a server restart", () => {
  let server: NatsServer;
  let admin: NatsConnection;
  before(async () => {
    server = await startServer();
    admin = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    await applyStreams(await jetstreamManager(admin), getCatalog());
  });
  after(async () => {
    await admin.close();
    await server.dispose();
  });

  it("completes with every event stored once, in order, after the server comes back", async () => {
    const producer = await createProducer({
      servers: server.url,
      name: "fast-restart",
      logger: silent,
      maxInFlight: 64,
      retry: { attemptTimeoutMs: 400, deadlineMs: 30_000, initialDelayMs: 20, maxDelayMs: 200 },
    });
    try {
      const events = Array.from({ length: 1500 }, () => reservation());
      const acks: string[] = [];
      let resent = 0;
      let stopping: Promise<void> | undefined;
      for await (const ack of producer.publishEach(InventoryStockReserved, events, {
        options: (e) => ({ msgId: e.reservationId }),
      })) {
        acks.push(ack.msgId);
        if (ack.attempts > 1) resent++;
        if (acks.length === 300) {
          stopping = server.stop().then(() => server.start());
        }
      }
      await stopping;
      assert.ok(resent > 0, "events after the restart went out in a new batch");
      assert.deepEqual(
        acks,
        events.map((e) => e.reservationId),
        "every event acknowledged, in order",
      );
      assert.deepEqual(
        await storedIds(admin),
        events.map((e) => e.reservationId),
        "stored once each, in order",
      );
    } finally {
      await producer.close();
    }
  });
});
