import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { NatsServer } from "@jetkit/testing";
import type { NatsConnection } from "@nats-io/transport-node";
import { quickstart } from "../examples/quickstart.js";
import { idempotencyScope } from "../src/http/ack-token.js";
import { natsWithStreams, tempDir } from "./helpers.js";

let dir: { dir: string; remove: () => Promise<void> };
let nats: { server: NatsServer; nc: NatsConnection };
before(async () => {
  dir = await tempDir("example");
  nats = await natsWithStreams();
});
after(async () => {
  await nats?.nc.close();
  await nats?.server.stop();
  await dir?.remove();
});

test("the README quickstart publishes one event over mTLS", async () => {
  const res = await quickstart(dir.dir, nats.server.url);
  assert.equal(res.status, 201, res.body);
  const body = JSON.parse(res.body);
  assert.deepEqual(
    { stream: body.stream, seq: body.seq, msgId: body.msgId },
    { stream: "ORDER", seq: 1, msgId: `${idempotencyScope("spiffe://jetkit.dev/fulfillment")}.order-1-done` },
  );
});
