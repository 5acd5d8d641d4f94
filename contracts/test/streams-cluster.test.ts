import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { type NatsCluster, startCluster } from "@jetkit/testing";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { getCatalog, isJetkitError } from "../src/index.js";
import { applyStreams, formatPlan, planStreams, StreamsErrorCodes } from "../src/streams/index.js";

let cluster: NatsCluster;
let nc: NatsConnection;

before(async () => {
  cluster = await startCluster({ size: 3 });
  await cluster.waitReady();
  nc = await connect({ servers: cluster.urls });
});
after(async () => {
  await nc?.close();
  await cluster?.dispose();
});

test("on a 3-node cluster the replicas override gives R3 streams, idempotently", async () => {
  const catalog = getCatalog();
  const { applied } = await applyStreams(nc, catalog, { replicas: 3, only: ["ORDER", "PAYMENT"] });
  assert.deepEqual(
    applied.map((a) => `${a.name}:${a.action}`),
    ["ORDER:create", "PAYMENT:create"],
  );
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info("ORDER");
  assert.equal(info.config.num_replicas, 3);
  assert.equal(info.cluster?.replicas?.length, 2, "a leader and two followers");

  const again = await planStreams(nc, catalog, { replicas: 3, only: ["ORDER", "PAYMENT"] });
  assert.equal(again.pending, 0, formatPlan(again));

  // Going back to R1 loses copies: refused without the flag.
  await assert.rejects(applyStreams(nc, catalog, { only: ["ORDER"] }), (err) =>
    isJetkitError(err, StreamsErrorCodes.DESTRUCTIVE),
  );
  assert.equal((await jsm.streams.info("ORDER")).config.num_replicas, 3);
});
