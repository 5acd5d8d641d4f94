import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fromBinary, fromJson, toBinary } from "@bufbuild/protobuf";
import { getCatalog, structuredEventBody } from "@jetkit/contracts";
import type { NatsServer } from "@jetkit/testing";
import { jetstream } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/nats-core";
import type { NatsConnection } from "@nats-io/transport-node";
import { type Gateway, startGateway } from "../src/gateway.js";
import {
  clientAgent,
  completedJson,
  https,
  makePki,
  natsWithStreams,
  silent,
  streamCount,
  type TestPki,
  tempDir,
  writePolicy,
} from "./helpers.js";

const catalog = getCatalog();
const COMPLETED = "shop.order.v1.OrderFulfillmentCompleted";
const spec = catalog.byType(COMPLETED);
const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT = `00-${TRACE}-00f067aa0ba902b7-01`;

function completedBytes(orderId?: string): Buffer {
  const message = fromJson(spec.schema, completedJson(orderId) as never, { registry: catalog.registry });
  return Buffer.from(toBinary(spec.schema, message));
}

/** Binary-mode headers of a CloudEvent of `type` (CloudEvents HTTP binding §3.1). */
function ceHeaders(id: string, more: Record<string, string> = {}, type = COMPLETED): Record<string, string> {
  return {
    "ce-specversion": "1.0",
    "ce-id": id,
    "ce-source": "/acme/orders",
    "ce-type": type,
    "content-type": "application/protobuf",
    ...more,
  };
}

describe("CloudEvents HTTP binding over mTLS", () => {
  let dir: { dir: string; remove: () => Promise<void> };
  let pki: TestPki;
  let nats: { server: NatsServer; nc: NatsConnection };
  let gw: Gateway;

  before(async () => {
    dir = await tempDir("ce");
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
  });

  after(async () => {
    await gw?.close();
    await nats?.nc.close();
    await nats?.server.stop();
    await dir?.remove();
  });

  const send = (path: string, headers: Record<string, string>, body: string | Buffer, who = pki.checkout) =>
    https(gw.url, clientAgent(pki.paths.caCert, who), { method: "POST", path, headers, body });
  const stored = (seq: number) =>
    jetstream(nats.nc)
      .streams.get("ORDER")
      .then((s) => s.getMessage({ seq }));

  test("binary mode (ce- headers, protobuf body): published on the contract's subject, the id is the idempotency key, the trace continues", async () => {
    const orderId = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a01";
    const headers = ceHeaders("ce-bin-1", {
      "ce-time": "2026-03-04T05:06:07.123+01:00",
      "ce-correlationid": "corr-ce",
      "ce-causationid": "cause-1",
      "ce-traceparent": TRACEPARENT,
    });
    const res = await send("/v1/events", headers, completedBytes(orderId));
    assert.equal(res.status, 201, res.body);
    const { seq, msgId } = res.json();
    assert.match(
      msgId,
      /^[\w-]{43}\.ce-bin-1$/,
      "the CloudEvent id, scoped to the principal as an Idempotency-Key is",
    );
    const m = await stored(seq);
    assert.equal(m?.subject, "order.fulfillment.completed");
    assert.equal(m?.header.get("ce-type"), COMPLETED);
    assert.equal(m?.header.get("ce-id"), msgId);
    assert.equal(m?.header.get("ce-time"), "2026-03-04T04:06:07.123Z", "normalised to UTC");
    assert.equal(m?.header.get("ce-correlationid"), "corr-ce");
    assert.equal(m?.header.get("ce-causationid"), "cause-1");
    assert.equal(
      m?.header.get("traceparent").split("-")[1],
      TRACE,
      "the publish continues the client's trace",
    );
    assert.equal(
      m?.header.get("ce-source"),
      "/jetkit/gateway",
      "the gateway is the producer, as for every publish",
    );
    assert.equal((fromBinary(spec.schema, m!.data) as unknown as { orderId: string }).orderId, orderId);

    const again = await send("/v1/events", headers, completedBytes(orderId));
    assert.equal(again.status, 200, again.body);
    assert.deepEqual([again.json().duplicate, again.json().seq], [true, seq], "a retry is a duplicate");
  });

  test("binary mode with protobuf JSON data, percent-encoded header values, on the path subject", async () => {
    const res = await send(
      "/v1/events/order.fulfillment.completed",
      ceHeaders("ce-bin-2", {
        "content-type": "application/json; charset=utf-8",
        "ce-source": "/acme%20shop",
        "ce-correlationid": "corr%2D2",
      }),
      JSON.stringify(completedJson("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a02")),
    );
    assert.equal(res.status, 201, res.body);
    assert.equal((await stored(res.json().seq))?.header.get("ce-correlationid"), "corr-2");
  });

  test("structured mode: data as protobuf JSON, or data_base64 as protobuf binary", async () => {
    const base = { specversion: "1.0", source: "/acme/orders", type: COMPLETED };
    const json = await send(
      "/v1/events",
      { "content-type": "Application/CloudEvents+JSON; charset=UTF-8" },
      JSON.stringify({
        ...base,
        id: "ce-str-1",
        correlationid: "corr-s",
        traceparent: TRACEPARENT,
        data: completedJson("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a03"),
      }),
    );
    assert.equal(json.status, 201, json.body);
    const b64 = await send(
      "/v1/events/order.fulfillment.completed",
      { "content-type": "application/cloudevents+json" },
      JSON.stringify({
        ...base,
        id: "ce-str-2",
        datacontenttype: "application/protobuf",
        data_base64: completedBytes("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a04").toString("base64"),
      }),
    );
    assert.equal(b64.status, 201, b64.body);
    const [a, b] = [await stored(json.json().seq), await stored(b64.json().seq)];
    const orderIdOf = (data: Uint8Array) =>
      (fromBinary(spec.schema, data) as unknown as { orderId: string }).orderId;
    assert.equal(orderIdOf(a!.data), "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a03");
    assert.equal(a?.header.get("ce-correlationid"), "corr-s");
    assert.equal(a?.header.get("traceparent").split("-")[1], TRACE);
    assert.equal(orderIdOf(b!.data), "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a04");
    assert.match(b64.json().msgId, /\.ce-str-2$/);
  });

  test("RBAC decides on the subject of the CloudEvent's type: a denied type is 403, and the path subject must be the type's", async () => {
    const before = [await streamCount(nats.nc, "ORDER"), await streamCount(nats.nc, "PAYMENT")];
    // checkout may publish order.fulfillment.*, but is denied order.lifecycle.cancelled
    const cancelled = await send(
      "/v1/events",
      ceHeaders("ce-deny-1", { "content-type": "application/json" }, "shop.order.v1.OrderLifecycleCancelled"),
      "{}",
    );
    assert.equal(cancelled.status, 403, cancelled.body);
    assert.equal(cancelled.json().error.code, "JK_GATEWAY_FORBIDDEN");
    assert.match(cancelled.json().error.message, /order\.lifecycle\.cancelled/);
    // bob may publish nothing, whatever the event says
    const bob = await send("/v1/events", ceHeaders("ce-deny-2"), completedBytes(), pki.bob);
    assert.equal(bob.status, 403, bob.body);
    // the subject is the contract's: a type posted to another subject's path is refused
    const elsewhere = await send(
      "/v1/events/order.fulfillment.started",
      ceHeaders("ce-deny-3"),
      completedBytes(),
    );
    assert.equal(elsewhere.status, 400, elsewhere.body);
    assert.deepEqual(
      [elsewhere.json().error.code, elsewhere.json().error.field],
      ["JK_GATEWAY_BAD_CLOUDEVENT", "type"],
    );
    assert.match(elsewhere.json().error.message, /order\.fulfillment\.completed/);
    const payment = await send(
      "/v1/events",
      ceHeaders("ce-deny-4", {}, "shop.payment.v1.PaymentChargeAuthorized"),
      "",
    );
    assert.equal(payment.status, 403, payment.body);
    assert.deepEqual([await streamCount(nats.nc, "ORDER"), await streamCount(nats.nc, "PAYMENT")], before);
  });

  test("bad CloudEvents get a coded 400 naming the attribute, and nothing is published", async () => {
    const before = await streamCount(nats.nc, "ORDER");
    const structured = (event: Record<string, unknown>) =>
      JSON.stringify({
        specversion: "1.0",
        id: "x-1",
        source: "/s",
        type: COMPLETED,
        data: completedJson(),
        ...event,
      });
    const SJ = { "content-type": "application/cloudevents+json" };
    const cases: [string, Record<string, string>, string | Buffer, number, string, string | undefined][] = [
      [
        "binary, no id",
        { ...ceHeaders("x"), "ce-id": "" },
        completedBytes(),
        400,
        "JK_GATEWAY_BAD_CLOUDEVENT",
        "id",
      ],
      ["binary, id with a space", ceHeaders("a b"), completedBytes(), 400, "JK_GATEWAY_BAD_CLOUDEVENT", "id"],
      [
        "binary, specversion 0.3",
        ceHeaders("x", { "ce-specversion": "0.3" }),
        completedBytes(),
        400,
        "JK_GATEWAY_BAD_CLOUDEVENT",
        "specversion",
      ],
      [
        "binary, unknown type",
        ceHeaders("x", {}, "shop.order.v1.Nope"),
        completedBytes(),
        400,
        "JK_GATEWAY_BAD_CLOUDEVENT",
        "type",
      ],
      [
        "binary, no source",
        ceHeaders("x", { "ce-source": "" }),
        completedBytes(),
        400,
        "JK_GATEWAY_BAD_CLOUDEVENT",
        "source",
      ],
      [
        "binary, bad time",
        ceHeaders("x", { "ce-time": "yesterday" }),
        completedBytes(),
        400,
        "JK_GATEWAY_BAD_CLOUDEVENT",
        "time",
      ],
      [
        "binary, bad traceparent",
        ceHeaders("x", { "ce-traceparent": "00-xyz" }),
        completedBytes(),
        400,
        "JK_GATEWAY_BAD_CLOUDEVENT",
        "traceparent",
      ],
      [
        "binary, an extension jetkit does not carry",
        ceHeaders("x", { "ce-tenant": "a" }),
        completedBytes(),
        400,
        "JK_GATEWAY_BAD_CLOUDEVENT",
        "tenant",
      ],
      [
        "binary, a CloudEvents subject",
        ceHeaders("x", { "ce-subject": "order.lifecycle.cancelled" }),
        completedBytes(),
        400,
        "JK_GATEWAY_BAD_CLOUDEVENT",
        "subject",
      ],
      [
        "binary, escapes that are not UTF-8",
        ceHeaders("x", { "ce-source": "%C0%A0" }),
        completedBytes(),
        400,
        "JK_GATEWAY_BAD_CLOUDEVENT",
        "source",
      ],
      [
        "binary, partitionkey not the contract's",
        ceHeaders("x", { "ce-partitionkey": "other" }),
        completedBytes(),
        400,
        "JK_GATEWAY_BAD_CLOUDEVENT",
        "partitionkey",
      ],
      [
        "binary, undecodable protobuf",
        ceHeaders("x"),
        Buffer.from([0xff, 0xff, 0xff]),
        400,
        "JK_GATEWAY_BAD_BODY",
        undefined,
      ],
      [
        "binary, JSON data breaking the contract",
        ceHeaders("x", { "content-type": "application/json" }),
        JSON.stringify({ ...completedJson(), orderId: "nope" }),
        400,
        "JK_GATEWAY_CONTRACT_VIOLATION",
        "order_id",
      ],
      [
        "binary, Idempotency-Key other than the id",
        ceHeaders("x", { "idempotency-key": "y" }),
        completedBytes(),
        400,
        "JK_GATEWAY_BAD_HEADER",
        "idempotency-key",
      ],
      ["structured, not JSON", SJ, "{nope", 400, "JK_GATEWAY_BAD_CLOUDEVENT", "(event)"],
      ["structured, an array", SJ, "[]", 400, "JK_GATEWAY_BAD_CLOUDEVENT", "(event)"],
      [
        "structured, no specversion",
        SJ,
        structured({ specversion: null }),
        400,
        "JK_GATEWAY_BAD_CLOUDEVENT",
        "specversion",
      ],
      [
        "structured, type not a string",
        SJ,
        structured({ type: { a: 1 } }),
        400,
        "JK_GATEWAY_BAD_CLOUDEVENT",
        "type",
      ],
      [
        "structured, data and data_base64",
        SJ,
        structured({ data_base64: "AAAA" }),
        400,
        "JK_GATEWAY_BAD_CLOUDEVENT",
        "data",
      ],
      ["structured, no data", SJ, structured({ data: undefined }), 400, "JK_GATEWAY_BAD_CLOUDEVENT", "data"],
      [
        "structured, bad base64",
        SJ,
        structured({ data: undefined, data_base64: "not base64!" }),
        400,
        "JK_GATEWAY_BAD_CLOUDEVENT",
        "data_base64",
      ],
      [
        "structured, protobuf as data",
        SJ,
        structured({ datacontenttype: "application/protobuf" }),
        400,
        "JK_GATEWAY_BAD_CLOUDEVENT",
        "data",
      ],
      [
        "structured, text/xml data",
        SJ,
        structured({ datacontenttype: "text/xml" }),
        400,
        "JK_GATEWAY_BAD_CLOUDEVENT",
        "datacontenttype",
      ],
      [
        "structured, unknown JSON field",
        SJ,
        structured({ data: { ...completedJson(), sneaky: 1 } }),
        400,
        "JK_GATEWAY_BAD_BODY",
        "sneaky",
      ],
      [
        "a batch",
        { "content-type": "application/cloudevents-batch+json" },
        "[]",
        415,
        "JK_GATEWAY_UNSUPPORTED_MEDIA_TYPE",
        undefined,
      ],
      [
        "not a CloudEvent at /v1/events",
        { "content-type": "application/json" },
        JSON.stringify(completedJson()),
        400,
        "JK_GATEWAY_BAD_CLOUDEVENT",
        "specversion",
      ],
    ];
    for (const [what, headers, body, status, code, field] of cases) {
      const res = await send("/v1/events", headers, body);
      assert.equal(res.status, status, `${what}: ${res.body}`);
      const err = res.json().error;
      assert.equal(err.code, code, `${what}: ${res.body}`);
      assert.equal(err.field, field, `${what}: ${res.body}`);
      assert.ok(err.message.length > 20, "the message says what to do");
    }
    assert.equal(await streamCount(nats.nc, "ORDER"), before, "nothing was published");
  });

  test("pull shows events other CloudEvents publishers stored: structured mode, header names in any case, percent-encoded values", async () => {
    const js = jetstream(nats.nc);
    const structured = natsHeaders();
    structured.set("content-type", "application/cloudevents+json");
    structured.set("Nats-Msg-Id", "sdk-structured-1");
    const body = structuredEventBody(
      {
        id: "sdk-structured-1",
        type: COMPLETED,
        source: "/sdk-go",
        time: "2026-05-06T07:08:09.000Z",
        correlationId: "Zoë 100%",
      },
      completedBytes("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a05"),
    );
    await js.publish("order.fulfillment.completed", body, { headers: structured });
    const binary = natsHeaders();
    for (const [k, v] of Object.entries(
      ceHeaders("sdk-binary-1", { "CE-CorrelationId": "corr%20x", "ce-time": "2026-05-06T07:08:09Z" }),
    )) {
      if (k !== "content-type") binary.set(k.toUpperCase(), v);
    }
    binary.set("Nats-Msg-Id", "sdk-binary-1");
    await js.publish("order.fulfillment.completed", completedBytes("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a06"), {
      headers: binary,
    });

    const bob = (method: string, path: string, body?: string) =>
      https(gw.url, clientAgent(pki.paths.caCert, pki.bob), {
        method,
        path,
        ...(body ? { body, headers: { "content-type": "application/json" } } : {}),
      });
    const put = await bob(
      "PUT",
      "/v1/consumers/ce-pull",
      JSON.stringify({ pattern: "order.fulfillment.completed" }),
    );
    assert.equal(put.status, 201, put.body);
    const res = await bob("POST", "/v1/consumers/ce-pull/fetch?batch=100&wait_ms=1000");
    assert.equal(res.status, 200, res.body);
    const byId = new Map<string, { type: string; correlationId: string; event: { orderId: string } }>(
      res.json().messages.map((m: { id: string }) => [m.id, m]),
    );
    const s = byId.get("sdk-structured-1");
    assert.ok(s, `the structured event is shown: ${res.body.slice(0, 300)}`);
    assert.equal(s.type, COMPLETED);
    assert.equal(s.correlationId, "Zoë 100%");
    assert.equal(s.event.orderId, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a05", "data_base64 decoded");
    const b = byId.get("sdk-binary-1");
    assert.ok(b, "the upper-case binary event is shown");
    assert.equal(b.type, COMPLETED);
    assert.equal(b.correlationId, "corr x");
    assert.equal(b.event.orderId, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a06");
  });
});
