import assert from "node:assert/strict";
import { request } from "node:https";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { createConsumer } from "@jetkit/consumers";
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { createProducer, type Producer } from "@jetkit/producers";
import type { NatsServer } from "@jetkit/testing";
import type { NatsConnection } from "@nats-io/transport-node";
import { type Gateway, startGateway } from "../src/gateway.js";
import {
  clientAgent,
  completedJson,
  eventually,
  https,
  makePki,
  natsWithStreams,
  silent,
  type TestPki,
  tempDir,
  writePolicy,
} from "./helpers.js";

interface SseEvent {
  id: string;
  event: string;
  data: { seq: number; subject: string; event: { orderId: string } };
}

/** Opens an SSE stream over mTLS; collects events until `close()`. */
function openSse(gw: Gateway, pki: TestPki, path: string, headers: Record<string, string> = {}) {
  const events: SseEvent[] = [];
  let status = 0;
  const req = request(
    `${gw.url}${path}`,
    { agent: clientAgent(pki.paths.caCert, pki.bob), headers },
    (res) => {
      status = res.statusCode ?? 0;
      let buf = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        buf += chunk;
        for (let i = buf.indexOf("\n\n"); i >= 0; i = buf.indexOf("\n\n")) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const fields = Object.fromEntries(
            block
              .split("\n")
              .filter((l) => !l.startsWith(":"))
              .map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 2)]),
          );
          if (fields.data) events.push({ id: fields.id, event: fields.event, data: JSON.parse(fields.data) });
        }
      });
      res.on("error", () => undefined);
    },
  );
  req.on("error", () => undefined);
  req.end();
  return { events, status: () => status, close: () => req.destroy() };
}

describe("end to end over mTLS", () => {
  let dir: { dir: string; remove: () => Promise<void> };
  let pki: TestPki;
  let nats: { server: NatsServer; nc: NatsConnection };
  let gw: Gateway;
  let producer: Producer;

  before(async () => {
    dir = await tempDir("e2e");
    pki = await makePki(join(dir.dir, "pki"));
    nats = await natsWithStreams();
    gw = await startGateway({
      admin: { port: 0 },
      listen: { port: 0 },
      tls: { cert: pki.paths.serverCert, key: pki.paths.serverKey, ca: pki.paths.caCert, crl: pki.paths.crl },
      policy: { file: await writePolicy(dir.dir) },
      nats: { servers: nats.server.url },
      logger: silent,
    });
    producer = await createProducer({ servers: nats.server.url, name: "e2e-producer", logger: silent });
  });

  after(async () => {
    await producer?.close();
    await gw?.close();
    await nats?.nc.close();
    await nats?.server.stop();
    await dir?.remove();
  });

  test("an event published through the gateway is consumed by the consumer SDK", async () => {
    const got: { orderId: string; msgId: string }[] = [];
    const consumer = await createConsumer({
      servers: nats.server.url,
      durable: "gateway-e2e",
      events: [OrderFulfillmentCompleted],
      logger: silent,
    });
    consumer.on(OrderFulfillmentCompleted, async (event, ctx) => {
      got.push({ orderId: event.orderId, msgId: ctx.msgId });
    });
    await consumer.start();
    try {
      const res = await https(gw.url, clientAgent(pki.paths.caCert, pki.checkout), {
        method: "POST",
        path: "/v1/events/order.fulfillment.completed",
        headers: { "content-type": "application/json", "idempotency-key": "e2e-1" },
        body: JSON.stringify(completedJson("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a99")),
      });
      assert.equal(res.status, 201, res.body);
      await eventually(() => got.length > 0, 10_000, "consumed");
      assert.equal(got.length, 1);
      assert.equal(got[0]!.orderId, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a99");
      // the event id is the Idempotency-Key scoped to the publishing principal
      assert.match(got[0]!.msgId, /^[\w-]{43}\.e2e-1$/);
    } finally {
      await consumer.stop({ timeoutMs: 5000 });
    }
  });

  test("SSE receives events published by the producer SDK and resumes after reconnect without gaps", async () => {
    const publish = async (n: number, from: number) => {
      for (let i = 0; i < n; i++) {
        const id = `0190a1b2-c3d4-7e5f-8a9b-${String(from + i).padStart(12, "0")}`;
        await producer.publish(
          OrderFulfillmentCompleted,
          OrderFulfillmentCompleted.fromJSON({ ...completedJson(id) }),
        );
      }
    };
    const first = openSse(gw, pki, "/v1/events/order.fulfillment.*/stream?from_seq=1");
    await publish(5, 0);
    await eventually(() => first.events.length >= 3, 10_000, "first events");
    first.close();
    const seen = [...first.events];
    await publish(5, 5);
    const lastId = seen.at(-1)!.id;
    const second = openSse(gw, pki, "/v1/events/order.fulfillment.*/stream", { "last-event-id": lastId });
    await eventually(
      () => second.events.some((e) => e.data.event?.orderId?.endsWith("000000000009")),
      10_000,
      "resumed events",
    );
    second.close();
    assert.equal(first.status(), 200);
    const all = [...seen, ...second.events];
    const seqs = all.map((e) => Number(e.id));
    for (let i = 1; i < seqs.length; i++)
      assert.equal(seqs[i], seqs[i - 1]! + 1, `no gap, no duplicate: ${seqs.join(",")}`);
    assert.equal(seqs[0], 1);
    const orderIds = all
      .filter((e) => e.data.subject === "order.fulfillment.completed")
      .map((e) => e.data.event.orderId);
    const mine = orderIds.filter((o) => o.startsWith("0190a1b2-c3d4-7e5f-8a9b-0000"));
    assert.deepEqual(
      mine,
      Array.from({ length: 10 }, (_, i) => `0190a1b2-c3d4-7e5f-8a9b-${String(i).padStart(12, "0")}`),
    );
  });

  test("SSE refuses a pattern the policy denies, with 403 before any event", async () => {
    const res = await https(gw.url, clientAgent(pki.paths.caCert, pki.bob), {
      path: "/v1/events/payment.>/stream",
    });
    assert.equal(res.status, 403);
    assert.equal(res.json().error.code, "JK_GATEWAY_FORBIDDEN");
  });

  test("the admin listener (plain HTTP, no certificate) serves probes and the OpenTelemetry metrics, the SDK's messaging.* included", async () => {
    assert.match(gw.adminUrl ?? "", /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal((await fetch(`${gw.adminUrl}/healthz`)).status, 200);
    assert.equal((await fetch(`${gw.adminUrl}/readyz`)).status, 200);
    const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    const expiry = /jetkit_gateway_certificate_expiry\{certificate="server"[^}]*\} ([\d.e+]+)/.exec(text);
    assert.ok(expiry && Number(expiry[1]) > 86_400, "the server certificate expires in more than a day");
    assert.match(
      text,
      /jetkit_gateway_requests_total\{route="\/v1\/events\/:subject",method="POST",status="201"/,
    );
    assert.match(
      text,
      /messaging_client_operation_duration_count\{[^}]*messaging_destination_name="order\.fulfillment\.completed"/,
    );
  });
});
