import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { getCatalog, isJetkitError } from "@jetkit/contracts";
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { applyStreams } from "@jetkit/contracts/streams";
import { type NatsServer, startServer } from "@jetkit/testing";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { ConsumerErrorCodes, createConsumer } from "../src/index.js";
import { completed, publishRaw, silent, until } from "./support.js";

// A service user whose NATS permissions name exactly its durable and its event's subject, as the
// gateway's auth callout and `jetkit policy nats-config` grant them: the durable's create carries
// its filter in the request subject, where a permission can bound it.
const SERVICE = {
  publish: [
    "$JS.API.INFO",
    "$JS.API.STREAM.INFO.ORDER",
    "$JS.API.STREAM.INFO.DLQ",
    "$JS.API.CONSUMER.CREATE.ORDER.bounded.order.fulfillment.completed",
    "$JS.API.CONSUMER.INFO.ORDER.bounded",
    "$JS.API.CONSUMER.MSG.NEXT.ORDER.bounded",
    "$JS.ACK.ORDER.bounded.>",
    "dlq.order.fulfillment.completed",
  ],
  subscribe: ["_INBOX.>", "$JS.EVENT.ADVISORY.CONSUMER.*.ORDER.bounded"],
};
const list = (xs: string[]) => xs.map((x) => JSON.stringify(x)).join(", ");

describe("consumer: a service user with permissions bounded to its durable and subject", () => {
  let server: NatsServer;
  let admin: NatsConnection;
  let service: NatsConnection;
  before(async () => {
    server = await startServer({
      config: `accounts {
  APP: {
    jetstream: enabled
    users: [
      { user: admin, password: admin }
      { user: svc, password: svc, permissions: { publish: { allow: [${list(SERVICE.publish)}] }, subscribe: { allow: [${list(SERVICE.subscribe)}] } } }
    ]
  }
}`,
    });
    admin = await connect({ servers: server.url, user: "admin", pass: "admin" });
    await applyStreams(await jetstreamManager(admin), getCatalog());
    service = await connect({ servers: server.url, user: "svc", pass: "svc" });
  });
  after(async () => {
    await service?.close();
    await admin?.close();
    await server?.dispose();
  });

  it("creates its durable and handles its events; a durable it was not granted is refused by NATS", async () => {
    const c = await createConsumer({
      connection: service,
      durable: "bounded",
      events: [OrderFulfillmentCompleted],
      logger: silent,
    });
    const got: string[] = [];
    c.on(OrderFulfillmentCompleted, (e) => {
      got.push(e.orderId);
    });
    await c.start();
    const e = completed();
    await publishRaw(jetstream(admin), OrderFulfillmentCompleted, e);
    await until(() => got.includes(e.orderId), 10_000, "the event handled by the bounded service user");
    await c.stop({ timeoutMs: 1000 });

    const other = await createConsumer({
      connection: service,
      durable: "other",
      events: [OrderFulfillmentCompleted],
      logger: silent,
    });
    await assert.rejects(
      other.start(),
      (err: unknown) =>
        isJetkitError(err, ConsumerErrorCodes.CONNECT) &&
        /Permissions Violation|permission/i.test(
          String((err as Error).message) + String((err as { cause?: Error }).cause?.message),
        ),
    );
  });
});
