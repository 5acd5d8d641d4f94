import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { isJetkitError, parseRegistryDataschema, readEvent } from "@jetkit/contracts";
import type { NatsServer } from "@jetkit/testing";
import type { NatsConnection } from "@nats-io/transport-node";
import { createProducer } from "../src/index.js";
import {
  fulfillmentCompleted,
  OrderFulfillmentCompleted,
  serverWithStreams,
  silent,
  storedMessages,
} from "./support.js";

const TYPE = "shop.order.v1.OrderFulfillmentCompleted";

describe("ce-dataschema: the registry version a producer encodes with (registryVersion)", () => {
  let server: NatsServer;
  let admin: NatsConnection;

  before(async () => {
    ({ server, admin } = await serverWithStreams());
  });
  after(async () => {
    await admin?.close();
    await server?.dispose();
  });

  it("stamps jetkit:registry/<version>#<type> in binary and structured mode; a reader gets it back; none without the option", async () => {
    const stamped = await createProducer({
      servers: server.url,
      name: "stamped",
      logger: silent,
      registryVersion: 7,
    });
    const structured = await createProducer({
      servers: server.url,
      name: "stamped",
      logger: silent,
      registryVersion: 7,
      contentMode: "structured",
    });
    const plain = await createProducer({ servers: server.url, name: "plain", logger: silent });
    try {
      const a = await stamped.publish(OrderFulfillmentCompleted, fulfillmentCompleted());
      const b = await structured.publish(OrderFulfillmentCompleted, fulfillmentCompleted());
      const c = await plain.publish(OrderFulfillmentCompleted, fulfillmentCompleted());
      const all = await storedMessages(admin, "ORDER");
      const read = (seq: number) => {
        const m = all.find((x) => x.seq === seq);
        assert.ok(m, `stored message ${seq}`);
        return {
          raw: m,
          event: readEvent(
            [...m.header].map(([k, v]) => [k, v[0] ?? ""] as const),
            m.data,
          ),
        };
      };
      const binary = read(a.seq);
      assert.equal(binary.raw.header.get("ce-dataschema"), `jetkit:registry/7#${TYPE}`);
      assert.equal(binary.event.headers.dataschema, `jetkit:registry/7#${TYPE}`);
      assert.deepEqual(parseRegistryDataschema(binary.event.headers.dataschema ?? ""), {
        version: 7,
        type: TYPE,
      });
      const s = read(b.seq);
      assert.equal(
        (JSON.parse(Buffer.from(s.raw.data).toString("utf8")) as { dataschema?: string }).dataschema,
        `jetkit:registry/7#${TYPE}`,
      );
      assert.equal(s.event.headers.dataschema, `jetkit:registry/7#${TYPE}`);
      const none = read(c.seq);
      assert.equal(none.raw.header.get("ce-dataschema"), "");
      assert.equal(none.event.headers.dataschema, undefined);
    } finally {
      await Promise.all([stamped.close(), structured.close(), plain.close()]);
    }
  });

  it("refuses a registryVersion that is not a version number, before connecting", async () => {
    await assert.rejects(
      createProducer({ servers: server.url, name: "bad", logger: silent, registryVersion: 0 }),
      (err: unknown) =>
        isJetkitError(err) && err.code === "JK_PRODUCER_OPTIONS" && /jetkit contracts list/.test(err.message),
    );
  });
});
