import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, it } from "node:test";
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import type { NatsServer } from "@jetkit/testing";
import type { NatsConnection } from "@nats-io/transport-node";
import { createProducer, SqliteOutbox, startOutboxRelay } from "../src/index.js";
import { fulfillmentCompleted, serverWithStreams, silent, storedMessages, until } from "./support.js";

const RELAY = new URL("./fixtures/outbox-relay.js", import.meta.url).pathname;

/** The events of ORDER as (msg id, key, per-key number) in stream order. */
async function stored(admin: NatsConnection) {
  return (await storedMessages(admin, "ORDER")).map((m) => {
    const e = OrderFulfillmentCompleted.decode(m.data);
    return { id: m.header.get("Nats-Msg-Id"), key: e.orderId, n: Number(e.shipments[0]!.trackingNumber) };
  });
}

function event(key: ReturnType<typeof crypto.randomUUID>, n: number) {
  const e = fulfillmentCompleted(key);
  e.shipments[0]!.trackingNumber = String(n);
  return e;
}

describe("SqliteOutbox: events written with the business change, relayed in order", () => {
  let server: NatsServer;
  let admin: NatsConnection;
  const dir = mkdtempSync(join(tmpdir(), "jetkit-outbox-"));
  before(async () => {
    ({ server, admin } = await serverWithStreams());
  });
  after(async () => {
    await admin.close();
    await server.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it("stores an event only if its transaction commits, and a bad event not at all", async () => {
    const db = new DatabaseSync(":memory:");
    db.exec("CREATE TABLE orders (id TEXT)");
    const outbox = SqliteOutbox.open(db);
    db.exec("BEGIN");
    db.prepare("INSERT INTO orders VALUES (?)").run("o-1");
    outbox.add(OrderFulfillmentCompleted, fulfillmentCompleted());
    db.exec("ROLLBACK");
    assert.equal(outbox.pending(), 0, "a rolled-back transaction leaves no event");
    const bad = fulfillmentCompleted();
    bad.orderId = "not-a-uuid";
    assert.throws(() => outbox.add(OrderFulfillmentCompleted, bad), /JK_CONTRACT_VIOLATION|order_id/);
    assert.equal(outbox.pending(), 0);
    db.exec("BEGIN");
    db.prepare("INSERT INTO orders VALUES (?)").run("o-2");
    const id = outbox.add(OrderFulfillmentCompleted, fulfillmentCompleted());
    db.exec("COMMIT");
    assert.equal(outbox.pending(), 1);
    const producer = await createProducer({ servers: server.url, name: "outbox-test", logger: silent });
    const relay = startOutboxRelay(outbox, { producer, logger: silent });
    await until("the row relayed", () => outbox.pending() === 0);
    await relay.stop();
    await producer.close();
    assert.ok(
      (await stored(admin)).some((m) => m.id === id),
      "the committed event is in the stream with its id",
    );
  });

  it("two relay processes, one killed -9 mid-flow and the broker restarted: every event once, each key in order", async () => {
    const path = join(dir, "shop.db");
    const db = new DatabaseSync(path);
    db.exec("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000;");
    const outbox = SqliteOutbox.open(db);
    const before = (await stored(admin)).length;
    const keys = Array.from({ length: 40 }, () => crypto.randomUUID());
    const perKey = 15;
    const ids = new Set<string>();
    const write = (n: number) => {
      db.exec("BEGIN IMMEDIATE");
      for (const k of keys) ids.add(outbox.add(OrderFulfillmentCompleted, event(k, n)));
      db.exec("COMMIT");
    };
    for (let n = 0; n < 5; n++) write(n);
    const start = (): { proc: ChildProcess; relaying: Promise<void> } => {
      const proc = spawn(process.execPath, [RELAY, server.url, path], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      const relaying = new Promise<void>((resolve) => {
        proc.stdout!.on("data", (b: Buffer) => {
          if (b.toString().includes("relaying")) resolve();
        });
      });
      return { proc, relaying };
    };
    const a = start();
    await a.relaying;
    const b = start(); // a standby: it takes over when a's lease lapses
    await until("some rows relayed", () => outbox.pending() < keys.length * 5 - 50, 20_000);
    a.proc.kill("SIGKILL");
    for (let n = 5; n < 10; n++) write(n);
    await b.relaying;
    // The broker goes away and comes back while rows are still being written and relayed.
    await server.restart({ kill: true });
    for (let n = 10; n < perKey; n++) write(n);
    await until("every row relayed", () => outbox.pending() === 0, 60_000);
    b.proc.kill("SIGTERM");
    await new Promise((r) => b.proc.once("exit", r));
    const got = (await stored(admin)).slice(before);
    assert.equal(got.length, ids.size, "each event stored once (no loss, no second copy)");
    assert.deepEqual(new Set(got.map((m) => m.id)), ids);
    for (const k of keys) {
      assert.deepEqual(
        got.filter((m) => m.key === k).map((m) => m.n),
        Array.from({ length: perKey }, (_, i) => i),
        `order of key ${k}`,
      );
    }
  });
});
