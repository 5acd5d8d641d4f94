import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { isJetkitError, readEvent } from "@jetkit/contracts";
import type { NatsServer } from "@jetkit/testing";
import type { NatsConnection } from "@nats-io/transport-node";
import { createProducer, type Producer } from "../src/index.js";
import {
  fulfillmentCompleted,
  OrderFulfillmentCompleted,
  serverWithStreams,
  silent,
  storedMessages,
} from "./support.js";

describe("structured content mode on request (contentMode: structured)", () => {
  let server: NatsServer;
  let admin: NatsConnection;
  let structured: Producer;
  let binary: Producer;

  before(async () => {
    ({ server, admin } = await serverWithStreams());
    structured = await createProducer({
      servers: server.url,
      name: "structured",
      logger: silent,
      contentMode: "structured",
    });
    binary = await createProducer({ servers: server.url, name: "structured", logger: silent });
  });
  after(async () => {
    await structured?.close();
    await binary?.close();
    await admin?.close();
    await server?.dispose();
  });

  it("writes application/cloudevents+json with the payload in data_base64: the same event a binary-mode publish writes", async () => {
    const event = fulfillmentCompleted();
    const opts = {
      correlationId: "flow Zoë 100%",
      causationId: "ev-0",
      time: new Date("2026-11-22T10:00:00.000Z"),
    };
    const s = await structured.publish(OrderFulfillmentCompleted, event, { ...opts, msgId: "structured-1" });
    const b = await binary.publish(OrderFulfillmentCompleted, event, { ...opts, msgId: "binary-1" });
    const all = await storedMessages(admin, "ORDER");
    const [ms, mb] = [all.find((m) => m.seq === s.seq)!, all.find((m) => m.seq === b.seq)!];

    assert.deepEqual(
      ms.header.keys(),
      ["content-type", "Nats-Msg-Id"],
      "no ce- headers: the attributes are in the body",
    );
    assert.equal(ms.header.get("content-type"), "application/cloudevents+json");
    assert.equal(ms.header.get("Nats-Msg-Id"), "structured-1");
    const body = JSON.parse(Buffer.from(ms.data).toString("utf8"));
    assert.deepEqual(body, {
      specversion: "1.0",
      id: "structured-1",
      source: "/jetkit/structured",
      type: "shop.order.v1.OrderFulfillmentCompleted",
      time: "2026-11-22T10:00:00.000Z",
      datacontenttype: "application/protobuf",
      partitionkey: event.orderId,
      correlationid: "flow Zoë 100%",
      causationid: "ev-0",
      data_base64: Buffer.from(OrderFulfillmentCompleted.encode(event).finish()).toString("base64"),
    });

    // a reader of either mode finds the same attributes and data
    const read = (m: typeof ms) =>
      readEvent(
        [...m.header].map(([k, v]) => [k, v[0]!] as const),
        m.data,
      );
    const [rs, rb] = [read(ms), read(mb)];
    assert.deepEqual({ ...rs.headers, id: "", msgId: "" }, { ...rb.headers, id: "", msgId: "" });
    assert.deepEqual(Buffer.from(rs.data), Buffer.from(rb.data));
  });

  it("refuses an unknown content mode", async () => {
    await assert.rejects(
      createProducer({ servers: server.url, name: "x", logger: silent, contentMode: "batch" as "binary" }),
      (err) => isJetkitError(err, "JK_PRODUCER_OPTIONS") && /contentMode/.test((err as Error).message),
    );
  });
});
