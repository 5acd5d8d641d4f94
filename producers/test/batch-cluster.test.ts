import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { InventoryStockReserved } from "@jetkit/contracts/gen/shop/inventory/v1/events";
import { type NatsCluster, startCluster } from "@jetkit/testing";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { createProducer, type Producer } from "../src/index.js";
import { reservation, silent, storedMessages } from "./support.js";

/** Atomic and fast-ingest batches on a 3-node cluster with an R3 stream (replicated commits, leader changes). */
describe("batches on a cluster (R3 INVENTORY with allow_atomic and allow_batched)", () => {
  let cluster: NatsCluster;
  let admin: NatsConnection;
  let producer: Producer;

  before(async () => {
    cluster = await startCluster({ size: 3 });
    admin = await connect({ servers: cluster.urls, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    await (await jetstreamManager(admin)).streams.add({
      name: "INVENTORY",
      subjects: ["inventory.>"],
      num_replicas: 3,
      duplicate_window: 120e9,
      allow_atomic: true,
      allow_batched: true,
    });
    producer = await createProducer({ servers: cluster.urls, name: "batch-cluster", logger: silent });
  });
  after(async () => {
    await producer?.close();
    await admin?.close();
    await cluster?.dispose();
  });

  it("an atomic batch is replicated as one commit at consecutive sequences", async () => {
    const events = Array.from({ length: 5 }, () => reservation());
    const ack = await producer.publishAtomic(
      events.map((e) => ({ type: InventoryStockReserved, event: e, opts: { msgId: e.reservationId } })),
    );
    assert.equal(ack.count, 5);
    const stored = await storedMessages(admin, "INVENTORY");
    assert.deepEqual(
      stored.map((m) => [m.seq, m.header.get("Nats-Msg-Id")]),
      events.map((e, i) => [ack.firstSeq + i, e.reservationId]),
    );
  });

  it("a fast-ingest publishMany through a stream leader change stores every event once, in order", async () => {
    const jsm = await jetstreamManager(admin);
    await jsm.streams.purge("INVENTORY");
    const events = Array.from({ length: 1500 }, () => reservation());
    const acks: string[] = [];
    let resent = 0;
    let stepdown: Promise<unknown> | undefined;
    for await (const ack of producer.publishEach(InventoryStockReserved, events, {
      options: (e) => ({ msgId: e.reservationId }),
    })) {
      acks.push(ack.msgId);
      if (ack.attempts > 1) resent++;
      if (acks.length === 300)
        stepdown = admin.request("$JS.API.STREAM.LEADER.STEPDOWN.INVENTORY", "", { timeout: 5000 });
    }
    const answer = (await stepdown) as { json(): { success?: boolean } };
    assert.equal(answer.json().success, true, "the stream leader stepped down");
    assert.ok(resent > 0, "the events after the leader change went out in a new batch");
    assert.deepEqual(
      acks,
      events.map((e) => e.reservationId),
      "every event acknowledged, in order",
    );
    const stored = await storedMessages(admin, "INVENTORY");
    assert.deepEqual(
      stored.map((m) => m.header.get("Nats-Msg-Id")),
      events.map((e) => e.reservationId),
      "stored once each, in order",
    );
  });
});
