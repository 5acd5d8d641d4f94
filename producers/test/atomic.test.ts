import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { getCatalog, isJetkitError } from "@jetkit/contracts";
import { InventoryStockReserved } from "@jetkit/contracts/gen/shop/inventory/v1/events";
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { applyStreams } from "@jetkit/contracts/streams";
import { type NatsServer, startServer } from "@jetkit/testing";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, type MsgHdrs, type NatsConnection, TimeoutError } from "@nats-io/transport-node";
import { AckInbox } from "../src/acks.js";
import { sendAtomic } from "../src/atomic.js";
import type { BatchContext, BatchMessage } from "../src/batch.js";
import { CircuitBreaker } from "../src/breaker.js";
import { toMsgHdrs } from "../src/headers.js";
import { createProducer, type Producer } from "../src/index.js";
import { DEFAULT_BREAKER, DEFAULT_RETRY } from "../src/options.js";
import {
  addCatalogStreams,
  fulfillmentCompleted,
  reservation,
  silent,
  storedMessages,
  uuid,
} from "./support.js";

const stored = async (nc: NatsConnection, stream: string) =>
  (await (await jetstreamManager(nc)).streams.info(stream)).state.messages;

/** Expects `p` to fail with the JetkitError `code`; returns it. */
async function refusedWith(p: Promise<unknown>, code: string) {
  const err = await p.then(
    () => assert.fail(`expected ${code}, but it resolved`),
    (e: unknown) => e,
  );
  assert.ok(isJetkitError(err, code), `expected ${code}, got ${(err as Error).message}`);
  return err;
}

describe("producer: atomic batches (INVENTORY applied from the contracts, allow_atomic)", () => {
  let server: NatsServer;
  let admin: NatsConnection;
  let producer: Producer;
  before(async () => {
    server = await startServer();
    admin = await connect({ servers: server.url });
    await applyStreams(await jetstreamManager(admin), getCatalog());
    producer = await createProducer({ servers: server.url, name: "atomic-test", logger: silent });
  });
  after(async () => {
    await producer.close();
    await admin.close();
    await server.dispose();
  });

  it("streams apply provisions allow_atomic and allow_batched from the contract", async () => {
    const jsm = await jetstreamManager(admin);
    const inventory = (await jsm.streams.info("INVENTORY")).config;
    assert.equal(inventory.allow_atomic, true);
    assert.equal(inventory.allow_batched, true);
    assert.notEqual((await jsm.streams.info("ORDER")).config.allow_atomic, true, "ORDER does not declare it");
  });

  it("stores every event of a batch at consecutive sequences, with one ack, and a rerun is refused whole", async () => {
    const checkout = uuid();
    const events = ["SKU-1", "SKU-2", "SKU-3"].map((sku) => reservation(checkout, sku));
    const before = await stored(admin, "INVENTORY");
    const ack = await producer.publishAtomic(
      events.map((e) => ({ type: InventoryStockReserved, event: e, opts: { msgId: e.reservationId } })),
    );
    assert.equal(ack.stream, "INVENTORY");
    assert.equal(ack.count, 3);
    assert.equal(ack.duplicate, false);
    assert.equal(ack.lastSeq - ack.firstSeq, 2);
    assert.deepEqual(
      ack.acks.map((a) => [a.seq, a.msgId]),
      events.map((e, i) => [ack.firstSeq + i, e.reservationId]),
    );
    const jsm = await jetstreamManager(admin);
    for (const [i, e] of events.entries()) {
      const m = await jsm.streams.getMessage("INVENTORY", { seq: ack.firstSeq + i });
      assert.equal(m!.header.get("Nats-Msg-Id"), e.reservationId, "each event keeps its own msg id");
      assert.equal(m!.header.get("Nats-Batch-Id"), ack.batchId);
      assert.equal(InventoryStockReserved.decode(m!.data).lines[0]?.sku, e.lines[0]?.sku);
    }
    assert.equal(await stored(admin, "INVENTORY"), before + 3);

    // The same events again: the stream has their ids, so it refuses the batch and stores nothing.
    const again = await refusedWith(
      producer.publishAtomic(
        events.map((e) => ({ type: InventoryStockReserved, event: e, opts: { msgId: e.reservationId } })),
      ),
      "JK_PRODUCER_REJECTED",
    );
    assert.equal(again.details.api_code, 10201);
    assert.equal(await stored(admin, "INVENTORY"), before + 3);
  });

  it("stores nothing when an event in the middle breaks an expectation, or repeats a stored msg id", async () => {
    const before = await stored(admin, "INVENTORY");
    // the second event expects its subject to be empty, which it is not
    const broken = producer
      .transaction()
      .add(InventoryStockReserved, reservation())
      .add(InventoryStockReserved, reservation(), { expect: { lastSubjectSequence: 0 } })
      .add(InventoryStockReserved, reservation());
    assert.equal(broken.size, 3);
    await refusedWith(broken.commit(), "JK_PRODUCER_EXPECTATION_FAILED");
    assert.equal(await stored(admin, "INVENTORY"), before, "nothing of the batch is stored");

    const single = await producer.publish(InventoryStockReserved, reservation());
    const dup = await refusedWith(
      producer.publishAtomic([
        { type: InventoryStockReserved, event: reservation() },
        { type: InventoryStockReserved, event: reservation(), opts: { msgId: single.msgId } },
        { type: InventoryStockReserved, event: reservation() },
      ]),
      "JK_PRODUCER_REJECTED",
    );
    assert.match(dup.message, /already has one of its msgIds/);
    assert.equal(await stored(admin, "INVENTORY"), before + 1, "only the single event");
  });

  it("refuses bad batches before sending anything, each with its code", async () => {
    const before = await stored(admin, "INVENTORY");
    const empty = await refusedWith(producer.transaction().commit(), "JK_PRODUCER_BATCH_EMPTY");
    assert.match(empty.message, /add at least one/);

    const two = await refusedWith(
      producer.publishAtomic([
        { type: InventoryStockReserved, event: reservation() },
        { type: OrderFulfillmentCompleted, event: fulfillmentCompleted() },
      ]),
      "JK_PRODUCER_BATCH_STREAMS",
    );
    assert.deepEqual(two.details.streams, ["INVENTORY", "ORDER"]);

    const tooMany = Array.from({ length: 1001 }, () => ({
      type: InventoryStockReserved,
      event: reservation(),
    }));
    const large = await refusedWith(producer.publishAtomic(tooMany), "JK_PRODUCER_BATCH_TOO_LARGE");
    assert.equal(large.details.limit, 1000);

    const order = await refusedWith(
      producer.publishAtomic([{ type: OrderFulfillmentCompleted, event: fulfillmentCompleted() }]),
      "JK_PRODUCER_UNSUPPORTED",
    );
    assert.match(order.message, /allow_atomic: true/);

    assert.throws(
      () => producer.transaction().add(InventoryStockReserved, { ...reservation(), lines: [] }),
      (e: unknown) => isJetkitError(e, "JK_CONTRACT_VIOLATION"),
      "a broken event is refused when added",
    );
    assert.equal(await stored(admin, "INVENTORY"), before);
    assert.equal((await storedMessages(admin, "ORDER")).length, 0);
  });
});

describe("producer: atomic batches against a server's own limits and stream settings", () => {
  let server: NatsServer;
  let dir: string;
  let admin: NatsConnection;
  let producer: Producer;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "jetkit-atomic-"));
    // a server that takes at most 3 messages per batch; INVENTORY made by hand without allow_atomic
    server = await startServer({
      jetstream: false,
      config: `jetstream { store_dir: ${JSON.stringify(join(dir, "js"))}, limits { batch { max_msgs: 3 } } }`,
    });
    admin = await connect({ servers: server.url });
    await addCatalogStreams(admin, ["INVENTORY"]);
    producer = await createProducer({ servers: server.url, name: "atomic-limits", logger: silent });
  });
  after(async () => {
    await producer.close();
    await admin.close();
    await server.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it("names allow_atomic when the stream on the server does not have it, and stores nothing", async () => {
    const err = await refusedWith(
      producer.publishAtomic([
        { type: InventoryStockReserved, event: reservation() },
        { type: InventoryStockReserved, event: reservation() },
      ]),
      "JK_PRODUCER_UNSUPPORTED",
    );
    assert.equal(err.details.api_code, 10174);
    assert.match(err.message, /jetkit streams apply/);
    assert.equal(await stored(admin, "INVENTORY"), 0);
  });

  it("maps the server's batch size limit to JK_PRODUCER_BATCH_TOO_LARGE, storing nothing", async () => {
    await applyStreams(await jetstreamManager(admin), getCatalog());
    const four = Array.from({ length: 4 }, () => ({ type: InventoryStockReserved, event: reservation() }));
    const err = await refusedWith(producer.publishAtomic(four), "JK_PRODUCER_BATCH_TOO_LARGE");
    assert.equal(err.details.api_code, 10199);
    assert.equal(await stored(admin, "INVENTORY"), 0);
    const ack = await producer.publishAtomic(four.slice(0, 3));
    assert.equal(ack.count, 3);
    assert.equal(await stored(admin, "INVENTORY"), 3);
  });
});

describe("atomic batches: a lost answer to the commit (real server, the ack inbox loses one reply)", () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let acks: AckInbox;
  before(async () => {
    server = await startServer();
    nc = await connect({ servers: server.url });
    await applyStreams(await jetstreamManager(nc), getCatalog());
    acks = new AckInbox(nc);
  });
  after(async () => {
    await nc.close();
    await server.dispose();
  });

  /** A batch context whose inbox loses the answer to the first commit (after sending it, or instead of it). */
  function losingCommit(how: "answer" | "message"): BatchContext {
    let lost = false;
    const lossy = {
      publishPart(subject: string, payload: Uint8Array, headers: MsgHdrs, timeoutMs: number) {
        if (lost || headers.get("Nats-Batch-Commit") !== "1")
          return acks.publishPart(subject, payload, headers, timeoutMs);
        lost = true;
        if (how === "message") return Promise.reject(new TimeoutError());
        return acks
          .publishPart(subject, payload, headers, timeoutMs)
          .then(() => Promise.reject(new TimeoutError()));
      },
    } as unknown as AckInbox;
    return {
      nc,
      acks: lossy,
      log: silent,
      retry: { ...DEFAULT_RETRY, deadlineMs: 5_000 },
      breaker: new CircuitBreaker(DEFAULT_BREAKER, () => {}),
      inboxPrefix: undefined,
      judge: async () => {},
      closing: () => false,
      duplicateWindowMs: () => 120_000,
    };
  }

  const messages = (n: number): BatchMessage[] => {
    const spec = getCatalog().byType(InventoryStockReserved.$type);
    return Array.from({ length: n }, () => {
      const msgId = uuid();
      return {
        spec,
        subject: spec.subject,
        payload: InventoryStockReserved.encode(reservation()).finish(),
        headers: toMsgHdrs([["Nats-Msg-Id", msgId]]),
        msgId,
      };
    });
  };

  it("commit stored, its ack lost: the retry finds it, reports the batch stored once (duplicate) with its sequences", async () => {
    const before = await stored(nc, "INVENTORY");
    const msgs = messages(4);
    const ack = await sendAtomic(losingCommit("answer"), msgs);
    assert.equal(ack.duplicate, true);
    assert.equal(ack.attempts, 2);
    assert.equal(await stored(nc, "INVENTORY"), before + 4, "stored once");
    const jsm = await jetstreamManager(nc);
    for (const [i, a] of ack.acks.entries()) {
      const m = await jsm.streams.getMessage("INVENTORY", { seq: a.seq });
      assert.equal(m!.header.get("Nats-Msg-Id"), msgs[i]!.msgId, "the sequences are the stored events'");
    }
  });

  it("commit lost on the way: the retry stores the batch, once", async () => {
    const before = await stored(nc, "INVENTORY");
    const ack = await sendAtomic(losingCommit("message"), messages(3));
    assert.equal(ack.duplicate, false);
    assert.equal(ack.attempts, 2);
    assert.equal(await stored(nc, "INVENTORY"), before + 3);
  });
});
