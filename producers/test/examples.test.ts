import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { NatsServer } from "@jetkit/testing";
import type { NatsConnection } from "@nats-io/transport-node";
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
