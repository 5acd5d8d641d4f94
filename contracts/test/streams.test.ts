import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, test } from "node:test";
import { type NatsServer, startServer } from "@jetkit/testing";
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { getCatalog, isJetkitError, type JetkitError, type StreamSpec } from "../src/index.js";
import {
  applyStreams,
  formatPlan,
  planStreams,
  planToJson,
  StreamsErrorCodes,
} from "../src/streams/index.js";

const catalog = getCatalog();
const NS_PER_MS = 1_000_000;

/** The catalog's streams with `ORDER` changed by `patch`: what a contract edit looks like to a plan. */
const withOrder = (patch: Partial<StreamSpec>) => ({
  streams: catalog.streams.map((s) => (s.name === "ORDER" ? { ...s, ...patch } : s)),
});

describe("streams as code (single server)", () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let jsm: JetStreamManager;

  beforeEach(async () => {
    server = await startServer();
    nc = await connect({ servers: server.url });
    jsm = await jetstreamManager(nc);
  });
  afterEach(async () => {
    await nc?.close();
    await server?.dispose();
  });

  const publishOrders = async (n: number) => {
    const js = jsm.jetstream();
    for (let i = 0; i < n; i++) await js.publish("order.fulfillment.completed", new Uint8Array([i]));
  };

  test("apply creates every catalog stream, and a second apply changes nothing", async () => {
    // The README's example: plan, print, apply.
    const plan = await planStreams(nc, catalog);
    const { applied } = await applyStreams(nc, catalog);

    assert.deepEqual(
      plan.entries.map((e) => `${e.name}:${e.action}`),
      catalog.streams.map((s) => `${s.name}:create`),
    );
    assert.match(
      formatPlan(plan),
      /^\+ ORDER create \(subjects \[order\.>\], file, R1 \(single server\)\)$/m,
    );
    assert.deepEqual(plan.entries[0]?.replicas, { count: 1, source: "cluster", reason: "single server" });
    assert.deepEqual(
      applied.map((a) => a.name),
      catalog.streams.map((s) => s.name),
    );
    const order = await jsm.streams.info("ORDER");
    const spec = catalog.stream("ORDER");
    assert.ok(spec);
    assert.deepEqual(order.config.subjects, ["order.>"]);
    assert.equal(order.config.max_age, spec.maxAgeMs * NS_PER_MS);
    assert.equal(order.config.duplicate_window, 120_000 * NS_PER_MS);
    assert.equal(order.config.max_bytes, -1);
    assert.equal(order.config.max_msg_size, -1);
    assert.equal(order.config.description, spec.description);

    await publishOrders(3);
    const again = await applyStreams(nc, catalog);
    assert.deepEqual(again.applied, []);
    assert.equal(again.plan.pending, 0);
    assert.ok(again.plan.entries.every((e) => e.action === "unchanged"));
    assert.match(formatPlan(again.plan), /^= ORDER unchanged$/m);
    const after = await jsm.streams.info("ORDER");
    assert.equal(after.created, order.created, "the stream was not recreated");
    assert.equal(after.state.messages, 3);
  });

  test("description and a longer max_age are updated in place, messages kept", async () => {
    await applyStreams(jsm, catalog);
    await publishOrders(2);
    const edited = withOrder({ description: "Orders, kept 120 days", maxAgeMs: 120 * 86_400_000 });

    const plan = await planStreams(jsm, edited);
    const order = plan.entries.find((e) => e.name === "ORDER");
    assert.equal(order?.action, "update");
    assert.deepEqual(
      order?.changes.map((c) => c.field),
      ["max_age", "description"],
    );
    assert.match(
      formatPlan(plan),
      /^~ ORDER update \(max_age: 90d -> 120d, description: "Orders from placement to fulfilment" -> "Orders, kept 120 days"\)$/m,
    );
    assert.equal(plan.entries.filter((e) => e.action === "unchanged").length, catalog.streams.length - 1);

    const { applied } = await applyStreams(jsm, edited);
    assert.deepEqual(applied, [{ name: "ORDER", action: "update" }]);
    const info = await jsm.streams.info("ORDER");
    assert.equal(info.config.description, "Orders, kept 120 days");
    assert.equal(info.config.max_age, 120 * 86_400_000 * NS_PER_MS);
    assert.equal(info.state.messages, 2);
    assert.equal((await applyStreams(jsm, edited)).applied.length, 0);
  });

  test("destructive changes are refused with JK_STREAMS_DESTRUCTIVE and the stream is left untouched", async () => {
    await applyStreams(jsm, catalog);
    await publishOrders(4);
    const before = await jsm.streams.info("ORDER");

    for (const patch of [
      { storage: "memory" },
      { maxAgeMs: 86_400_000 },
      { subjects: ["order.fulfillment.>"] },
      { retention: "workqueue" },
    ] as Partial<StreamSpec>[]) {
      const edited = withOrder({ ...patch, description: "changed too" });
      const plan = await planStreams(jsm, edited);
      assert.equal(plan.refused, 1, JSON.stringify(patch));
      assert.match(formatPlan(plan), /^! ORDER refused: .+\[allowDestructive to force\]$/m);
      await assert.rejects(applyStreams(jsm, edited), (err: JetkitError) => {
        assert.ok(isJetkitError(err, StreamsErrorCodes.DESTRUCTIVE));
        assert.match(err.message, /would lose data; nothing was changed/);
        assert.match(err.message, /allowDestructive/);
        return true;
      });
    }
    const after = await jsm.streams.info("ORDER");
    assert.deepEqual(after.config, before.config);
    assert.equal(after.state.messages, 4);
  });

  test("allowDestructive recreates a stream whose storage changes and says how many messages were dropped", async () => {
    await applyStreams(jsm, catalog);
    await publishOrders(5);
    const edited = withOrder({ storage: "memory" });

    const plan = await planStreams(jsm, edited, { allowDestructive: true });
    assert.match(
      formatPlan(plan),
      /^- ORDER recreate, dropping 5 message\(s\) \(storage: file -> memory\)$/m,
    );
    const { applied } = await applyStreams(jsm, edited, { allowDestructive: true });
    assert.deepEqual(applied, [{ name: "ORDER", action: "recreate", droppedMessages: 5 }]);
    const info = await jsm.streams.info("ORDER");
    assert.equal(info.config.storage, "memory");
    assert.equal(info.state.messages, 0);

    // Shrinking a limit is allowed in place with the flag.
    const shorter = withOrder({ storage: "memory", maxAgeMs: 86_400_000 });
    assert.deepEqual((await applyStreams(jsm, shorter, { allowDestructive: true })).applied, [
      { name: "ORDER", action: "update" },
    ]);
    assert.equal((await jsm.streams.info("ORDER")).config.max_age, 86_400_000 * NS_PER_MS);
  });

  test("streams outside the contracts are reported and never touched; overlapping ones block apply", async () => {
    await jsm.streams.add({ name: "LEGACY", subjects: ["legacy.>"] });
    await jsm.streams.add({ name: "OLD_ORDERS", subjects: ["order.lifecycle.>"] });

    const plan = await planStreams(jsm, catalog);
    assert.deepEqual(
      plan.unmanaged.map((u) => u.name),
      ["LEGACY", "OLD_ORDERS"],
    );
    const order = plan.entries.find((e) => e.name === "ORDER");
    assert.equal(order?.action, "refused");
    assert.equal(order?.overridable, false);
    assert.match(
      formatPlan(plan),
      /^\? LEGACY not in the contracts \(legacy\.>; 0 message\(s\)\): left alone$/m,
    );
    assert.match(
      formatPlan(plan),
      /^! ORDER refused: subjects "order\.>" overlap "order\.lifecycle\.>" of stream OLD_ORDERS/m,
    );

    await assert.rejects(applyStreams(jsm, catalog, { allowDestructive: true }), (err: JetkitError) =>
      isJetkitError(err, StreamsErrorCodes.CONFLICT),
    );
    assert.deepEqual((await jsm.streams.names().next()).sort(), ["LEGACY", "OLD_ORDERS"]);

    // Without the overlap, the rest applies and LEGACY stays as it was.
    await jsm.streams.delete("OLD_ORDERS");
    await applyStreams(jsm, catalog);
    assert.deepEqual((await jsm.streams.info("LEGACY")).config.subjects, ["legacy.>"]);
    const json = planToJson(await planStreams(jsm, catalog)) as { unmanaged: { name: string }[] };
    assert.deepEqual(
      json.unmanaged.map((u) => u.name),
      ["LEGACY"],
    );
  });

  test("invalid options are refused before the server is asked", async () => {
    await assert.rejects(planStreams(jsm, catalog, { replicas: 0 }), (err: JetkitError) =>
      isJetkitError(err, StreamsErrorCodes.INVALID_OPTIONS),
    );
    await assert.rejects(planStreams(jsm, catalog, { only: ["NOPE"] }), /no stream named NOPE/);
  });

  test("more replicas than the single server can hold are refused before anything is created", async () => {
    // One at a time: both started at once, the second's refusal is unhandled while the first is awaited.
    for (const attempt of [
      () => applyStreams(jsm, catalog, { replicas: 3 }),
      () => applyStreams(jsm, withOrder({ replicas: 3 })), // declared in the contracts: refused the same way
    ]) {
      await assert.rejects(attempt(), (err: JetkitError) => {
        assert.ok(isJetkitError(err, StreamsErrorCodes.REPLICAS_EXCEED_CLUSTER), String(err));
        assert.match(
          err.message,
          /ORDER asks for 3 replicas .*more than the single JetStream server .*at most 1/,
        );
        return true;
      });
    }
    assert.deepEqual(await jsm.streams.names().next(), [], "no stream was created");
  });
});
