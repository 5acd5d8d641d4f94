import assert from "node:assert/strict";
import { after, afterEach, before, test } from "node:test";
import { type NatsCluster, startCluster } from "@jetkit/testing";
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { getCatalog, isJetkitError, type JetkitError } from "../src/index.js";
import { applyStreams, formatPlan, planStreams, StreamsErrorCodes } from "../src/streams/index.js";

// `app` is an ordinary user that may not ask the servers about themselves ($SYS.>).
const USERS = `authorization { users = [
  { user: admin, password: admin }
  { user: app, password: app, permissions: { publish: { deny: ["$SYS.>"] } } }
] }`;

let cluster: NatsCluster;
let nc: NatsConnection;
let jsm: JetStreamManager;
const catalog = getCatalog();
const only = ["ORDER", "PAYMENT"];
const withOrder = (replicas: number) => ({
  streams: catalog.streams.map((s) => (s.name === "ORDER" ? { ...s, replicas } : s)),
});
const replicasOf = async (name: string) => (await jsm.streams.info(name)).config.num_replicas;

before(async () => {
  cluster = await startCluster({ size: 3, config: USERS });
  nc = await connect({ servers: cluster.urls, user: "admin", pass: "admin" });
  jsm = await jetstreamManager(nc);
});
afterEach(async () => {
  for (const name of await jsm.streams.names().next()) await jsm.streams.delete(name);
});
after(async () => {
  await nc?.close();
  await cluster?.dispose();
});

test("by default a 3-node cluster gets R3 streams, and the plan says why", async () => {
  const plan = await planStreams(nc, catalog, { only });
  const text = formatPlan(plan);
  assert.match(text, /^cluster "jetkit": 3 JetStream server\(s\) \(n1, n2, n3\)$/m);
  assert.match(text, /^\+ ORDER create \(subjects \[order\.>\], file, R3 \(cluster of 3 nodes\)\)$/m);

  const { applied } = await applyStreams(nc, catalog, { only });
  assert.deepEqual(
    applied.map((a) => `${a.name}:${a.action}`),
    ["ORDER:create", "PAYMENT:create"],
  );
  assert.equal(await replicasOf("ORDER"), 3);
  assert.equal((await jsm.streams.info("ORDER")).cluster?.replicas?.length, 2, "a leader and two followers");
  assert.equal((await planStreams(nc, catalog, { only })).pending, 0);

  // Going back to R1 loses copies: refused without allowDestructive, whatever asks for it.
  // One at a time: both started at once, the second's refusal is unhandled while the first is awaited.
  for (const attempt of [
    () => applyStreams(nc, catalog, { only: ["ORDER"], replicas: 1 }),
    () => applyStreams(nc, withOrder(1), { only: ["ORDER"] }),
  ]) {
    await assert.rejects(attempt(), (err) => isJetkitError(err, StreamsErrorCodes.DESTRUCTIVE));
  }
  assert.equal(await replicasOf("ORDER"), 3);
});

test("the replicas option wins over the contracts, which win over the cluster's size", async () => {
  await applyStreams(nc, catalog, { only, replicas: 1 });
  assert.equal(await replicasOf("ORDER"), 1);
  assert.equal(await replicasOf("PAYMENT"), 1);
  await jsm.streams.delete("ORDER");
  await jsm.streams.delete("PAYMENT");

  const plan = await planStreams(nc, withOrder(2), { only });
  assert.match(
    formatPlan(plan),
    /^\+ ORDER create \(.*R2 \(declared in shop\/order\/v1\/events\.proto\)\)$/m,
  );
  await applyStreams(nc, withOrder(2), { only });
  assert.equal(await replicasOf("ORDER"), 2);
  assert.equal(await replicasOf("PAYMENT"), 3);
});

test("an R1 stream on the cluster is scaled to R3 in place, shown as an update", async () => {
  await applyStreams(nc, catalog, { only: ["ORDER"], replicas: 1 });
  const js = jsm.jetstream();
  for (let i = 0; i < 3; i++) await js.publish("order.fulfillment.completed", new Uint8Array([i]));

  const plan = await planStreams(nc, catalog, { only: ["ORDER"] });
  assert.equal(plan.entries[0]?.action, "update");
  assert.match(formatPlan(plan), /^~ ORDER update \(num_replicas: 1 -> 3 \(cluster of 3 nodes\)\)$/m);
  const { applied } = await applyStreams(nc, catalog, { only: ["ORDER"] });
  assert.deepEqual(applied, [{ name: "ORDER", action: "update" }]);
  const info = await jsm.streams.info("ORDER");
  assert.equal(info.config.num_replicas, 3);
  assert.equal(info.state.messages, 3, "scaling keeps the messages");
});

test("more replicas than the cluster has servers are refused before anything changes", async () => {
  await applyStreams(nc, catalog, { only: ["PAYMENT"], replicas: 1 });
  await assert.rejects(applyStreams(nc, catalog, { only, replicas: 5 }), (err: JetkitError) => {
    assert.ok(isJetkitError(err, StreamsErrorCodes.REPLICAS_EXCEED_CLUSTER), String(err));
    assert.match(
      err.message,
      /ORDER asks for 5 replicas \(replicas option\).*3 JetStream server\(s\) of cluster "jetkit" \(n1, n2, n3\)/,
    );
    assert.match(err.message, /at most 3/);
    return true;
  });
  assert.deepEqual(await jsm.streams.names().next(), ["PAYMENT"], "ORDER was not created");
  assert.equal(await replicasOf("PAYMENT"), 1, "PAYMENT was not scaled");
});

test("a user that cannot read the cluster's size must say how many replicas it wants", async () => {
  const app = await connect({ servers: cluster.urls, user: "app", pass: "app" });
  try {
    await assert.rejects(planStreams(app, catalog, { only }), (err: JetkitError) => {
      assert.ok(isJetkitError(err, StreamsErrorCodes.CLUSTER_UNKNOWN), String(err));
      assert.match(err.message, /cluster "jetkit".*ORDER, PAYMENT.*--replicas 1/);
      return true;
    });
    assert.deepEqual(await jsm.streams.names().next(), []);

    await applyStreams(app, catalog, { only: ["ORDER"], replicas: 3 });
    assert.equal(await replicasOf("ORDER"), 3);
    // ORDER's replicas name all three servers: that settles the default for the others too.
    const plan = await planStreams(app, catalog, { only });
    assert.match(formatPlan(plan), /^\+ PAYMENT create \(.*R3 \(cluster of at least 3 nodes\)\)$/m);
    assert.match(formatPlan(plan), /^= ORDER unchanged$/m);
    // With the size unknown, a count above it cannot be refused up front: the server refuses.
    await assert.rejects(applyStreams(app, catalog, { only: ["PAYMENT"], replicas: 5 }), (err) =>
      isJetkitError(err, StreamsErrorCodes.APPLY_FAILED),
    );
  } finally {
    await app.close();
  }
});
