import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { readEventHeaders } from "@jetkit/contracts";
import type { NatsServer } from "@jetkit/testing";
import type { NatsConnection } from "@nats-io/transport-node";
import { createKeyPicker, keyUuid, parseDuration, runCheckout, runFulfillment } from "../services/index.js";
import type { PublishAck } from "../src/index.js";
import { serverWithStreams, silent, storedMessages } from "./support.js";

const run = promisify(execFile);

/** A deterministic random source (mulberry32) so the distribution test cannot flake. */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("example services", () => {
  let server: NatsServer;
  let admin: NatsConnection;

  before(async () => {
    ({ server, admin } = await serverWithStreams());
  });
  after(async () => {
    await admin?.close();
    await server?.dispose();
  });

  it("checkout emits valid checkouts for customers of the key space, every ack stored", async () => {
    const acks: PublishAck[] = [];
    const summary = await runCheckout({
      servers: server.url,
      ratePerSec: 200,
      durationMs: 600,
      keys: 5,
      distribution: "zipf",
      logger: silent,
      onPublished: (ack) => acks.push(ack),
    });
    assert.ok(summary.started > 10, `started ${summary.started}`);
    assert.equal(summary.failed, 0);
    assert.equal(summary.succeeded, summary.started);
    assert.equal(acks.length, summary.started);
    const stored = await storedMessages(admin, "CUSTOMER");
    assert.equal(stored.length, acks.length);
    const customers = new Set(Array.from({ length: 5 }, (_, i) => keyUuid(i, 0xc0)));
    for (const m of stored) {
      const h = readEventHeaders((n) => m.header.get(n) || undefined);
      assert.equal(h.source, "/jetkit/checkout");
      assert.ok(customers.has(h.partitionKey!), `key ${h.partitionKey} is in the key space`);
    }
  });

  it("fulfillment emits started then completed per order, completed caused by started", async () => {
    const acks: PublishAck[] = [];
    const summary = await runFulfillment({
      servers: server.url,
      ratePerSec: 100,
      durationMs: 400,
      keys: 20,
      logger: silent,
      onPublished: (ack) => acks.push(ack),
    });
    assert.equal(summary.failed, 0);
    assert.equal(acks.length, summary.started * 2);
    const stored = await storedMessages(admin, "ORDER");
    const byId = new Map(stored.map((m) => [m.header.get("ce-id"), m]));
    const completed = stored.filter((m) => m.subject === "order.fulfillment.completed");
    assert.equal(completed.length, summary.started);
    for (const c of completed) {
      const cause = byId.get(c.header.get("ce-causationid"))!;
      assert.equal(cause.subject, "order.fulfillment.started");
      assert.ok(cause.seq < c.seq, "started is stored before completed");
      assert.equal(cause.header.get("ce-partitionkey"), c.header.get("ce-partitionkey"));
      assert.equal(c.header.get("ce-correlationid"), cause.header.get("ce-id"));
    }
  });

  it("runs from the command line and prints its summary", async () => {
    const script = fileURLToPath(new URL("../services/checkout.js", import.meta.url));
    const before = (await storedMessages(admin, "CUSTOMER")).length;
    const { stdout } = await run(
      process.execPath,
      [script, "--servers", server.url, "--rate", "50", "--duration", "400ms", "--log-level", "silent"],
      { timeout: 30_000 },
    );
    const summary = JSON.parse(stdout.trim()) as { service: string; succeeded: number; failed: number };
    assert.equal(summary.service, "checkout");
    assert.ok(summary.succeeded > 0);
    assert.equal(summary.failed, 0);
    assert.equal((await storedMessages(admin, "CUSTOMER")).length, before + summary.succeeded);
  });

  it("zipf keys are skewed towards the first keys; uniform keys are not", () => {
    const count = (pick: () => string) => {
      const n = new Map<string, number>();
      for (let i = 0; i < 20_000; i++) {
        const k = pick();
        n.set(k, (n.get(k) ?? 0) + 1);
      }
      return n;
    };
    const zipf = count(createKeyPicker({ size: 100, distribution: "zipf", random: seeded(1) }));
    const uniform = count(createKeyPicker({ size: 100, random: seeded(2) }));
    const hottest = (n: Map<string, number>) => Math.max(...n.values()) / 20_000;
    assert.equal([...zipf.entries()].sort((a, b) => b[1] - a[1])[0]![0], keyUuid(0));
    assert.ok(hottest(zipf) > 0.1, `zipf hottest key share ${hottest(zipf)}`);
    assert.ok(hottest(uniform) < 0.03, `uniform hottest key share ${hottest(uniform)}`);
    assert.equal(uniform.size, 100);
  });

  it("parses durations", () => {
    assert.equal(parseDuration("10s"), 10_000);
    assert.equal(parseDuration("500ms"), 500);
    assert.equal(parseDuration("2m"), 120_000);
    assert.throws(() => parseDuration("soon"));
  });
});
