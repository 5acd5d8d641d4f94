import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { getCatalog } from "@jetkit/contracts";
import { applyStreams } from "@jetkit/contracts/streams";
import type { NatsServer } from "@jetkit/testing";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { batches } from "../examples/batches.js";
import { quickstart } from "../examples/quickstart.js";
import { serverWithStreams, storedMessages } from "./support.js";

describe("README examples", () => {
  let server: NatsServer;
  let admin: NatsConnection;
  before(async () => {
    ({ server, admin } = await serverWithStreams());
  });
  after(async () => {
    await admin?.close();
    await server?.dispose();
  });

  it("quickstart publishes one event and a batch; a rerun is deduplicated", async () => {
    const acks = await quickstart(server.url);
    assert.deepEqual(
      acks.map((a) => [a.stream, a.duplicate]),
      [
        ["ORDER", false],
        ["ORDER", false],
        ["ORDER", false],
      ],
    );
    const again = await quickstart(server.url);
    assert.ok(
      again.every((a) => a.duplicate),
      "same msgIds: the stream drops the copies",
    );
    assert.equal((await storedMessages(admin, "ORDER")).length, 3);
  });
});

describe("README examples: batches (streams applied from the contracts)", () => {
  let server: NatsServer;
  let admin: NatsConnection;
  before(async () => {
    ({ server, admin } = await serverWithStreams());
    await applyStreams(await jetstreamManager(admin), getCatalog());
  });
  after(async () => {
    await admin?.close();
    await server?.dispose();
  });

  it("stores an atomic batch once and loads events over a fast-ingest batch", async () => {
    const { reserved, loaded } = await batches(server.url);
    assert.equal(reserved.count, 2);
    assert.equal(reserved.lastSeq, reserved.firstSeq + 1);
    assert.equal(loaded.length, 3);
    assert.ok(loaded.every((a) => a.batch?.id === loaded[0]!.batch!.id));
    assert.deepEqual(
      (await storedMessages(admin, "INVENTORY")).map((m) => m.header.get("Nats-Msg-Id")),
      [
        "c0000000-0000-4000-8000-000000000002-1",
        "c0000000-0000-4000-8000-000000000002-2",
        "a0000000-0000-4000-8000-000000000003",
        "a0000000-0000-4000-8000-000000000004",
        "a0000000-0000-4000-8000-000000000005",
      ],
      "the refused rerun stored nothing",
    );
  });
});
