import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { fromJson, toBinary } from "@bufbuild/protobuf";
import { getCatalog } from "@jetkit/contracts";
import { createProducer, type Producer } from "@jetkit/producers";
import type { NatsServer } from "@jetkit/testing";
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { FastifyInstance } from "fastify";
import { GatewayErrorCodes, gatewayError } from "../src/errors.js";
import { createContext } from "../src/gateway.js";
import { buildApp } from "../src/http/app.js";
import { DEFAULT_LIMITS, type GatewayContext } from "../src/http/context.js";
import { buildAdminApp } from "../src/http/health.js";
import type { Identity } from "../src/identity.js";
import { Metrics } from "../src/metrics.js";
import { PolicyStore } from "../src/policy/store.js";
import { RateLimiter } from "../src/rate-limit.js";
import {
  completedJson,
  eventually,
  natsWithStreams,
  POLICY,
  silent,
  streamCount,
  tempDir,
  writePolicy,
} from "./helpers.js";

const catalog = getCatalog();
const CHECKOUT = "spiffe://jetkit.dev/checkout";
const BOB = "CN=bob,OU=ops,O=jetkit";

/** In-process app: `x-test-principal` stands in for the client certificate (the TLS path is tested in transport.test). */
function fakeAuth(req: { headers: Record<string, unknown> }): Identity {
  const p = req.headers["x-test-principal"];
  if (typeof p !== "string") throw gatewayError(GatewayErrorCodes.UNAUTHENTICATED, "no certificate");
  return { principal: p, kind: p.startsWith("spiffe://") ? "spiffe" : "dn", serial: "01" };
}

describe("HTTP API (in-process, real nats-server)", () => {
  let dir: { dir: string; remove: () => Promise<void> };
  let nats: { server: NatsServer; nc: NatsConnection };
  let producer: Producer;
  let policy: PolicyStore;
  let ctx: GatewayContext;
  let app: FastifyInstance;
  let dryApp: FastifyInstance;
  let limitedApp: FastifyInstance;
  let openApp: FastifyInstance;

  before(async () => {
    dir = await tempDir("api");
    nats = await natsWithStreams();
    producer = await createProducer({
      servers: nats.server.url,
      name: "gateway",
      logger: silent,
      validate: false,
    });
    policy = new PolicyStore({
      file: await writePolicy(dir.dir),
      catalog,
      logger: silent,
      watch: false,
      sighup: false,
    });
    const made = await createContext(
      { tls: { cert: "", key: "", ca: "" }, policy: { file: "" }, nats: { servers: nats.server.url } },
      producer,
      policy,
      new Metrics({ global: false }),
      silent,
      catalog,
      { ...DEFAULT_LIMITS, bodyBytes: 4096 },
    );
    ctx = { ...made.ctx, authenticate: fakeAuth as GatewayContext["authenticate"] };
    app = buildApp(ctx);
    dryApp = buildApp({ ...ctx, dryRun: true });
    // a second policy where team-b may publish the same events as checkout
    const openPolicy = new PolicyStore({
      file: await writePolicy(
        dir.dir,
        `${POLICY}\n`.replace(
          "bindings:",
          "bindings:\n  - principal: spiffe://jetkit.dev/team-b\n    roles: [fulfillment]",
        ),
        "policy-open.yaml",
      ),
      catalog,
      logger: silent,
      watch: false,
      sighup: false,
    });
    openApp = buildApp({ ...ctx, decide: (p, a, subj) => openPolicy.decide(p, a, subj) });
    limitedApp = buildApp({
      ...ctx,
      limits: { ...ctx.limits, ratePerSecond: 1, rateBurst: 2 },
      rateLimiter: new RateLimiter({ perSecond: 1, burst: 2 }),
    });
  });

  after(async () => {
    await app?.close();
    await dryApp?.close();
    await limitedApp?.close();
    await openApp?.close();
    policy?.close();
    await producer?.close();
    await nats?.nc.close();
    await nats?.server.stop();
    await dir?.remove();
  });

  const post = (
    subject: string,
    body: unknown,
    headers: Record<string, string> = {},
    principal = CHECKOUT,
    target = app,
  ) =>
    target.inject({
      method: "POST",
      url: `/v1/events/${subject}`,
      headers: { "x-test-principal": principal, "content-type": "application/json", ...headers },
      payload: typeof body === "string" || Buffer.isBuffer(body) ? body : JSON.stringify(body),
    });

  test("publishes protobuf JSON, maps Idempotency-Key to the message id, dedups a retry", async () => {
    const before = await streamCount(nats.nc, "ORDER");
    const res = await post("order.fulfillment.completed", completedJson(), {
      "idempotency-key": "gw-test-1",
    });
    assert.equal(res.statusCode, 201, res.body);
    const body = res.json();
    assert.equal(body.stream, "ORDER");
    assert.match(body.msgId, /^[\w-]{43}\.gw-test-1$/, "the key, scoped to the principal");
    assert.equal(body.duplicate, false);
    const again = await post("order.fulfillment.completed", completedJson(), {
      "idempotency-key": "gw-test-1",
    });
    assert.equal(again.statusCode, 200);
    assert.equal(again.json().duplicate, true);
    assert.equal(again.json().seq, body.seq);
    assert.equal(await streamCount(nats.nc, "ORDER"), before + 1);
    const stored = await jetstream(nats.nc)
      .streams.get("ORDER")
      .then((s) => s.getMessage({ seq: body.seq }));
    assert.equal(stored?.header.get("ce-type"), "shop.order.v1.OrderFulfillmentCompleted");
    assert.equal(stored?.header.get("Nats-Msg-Id"), body.msgId);
  });

  test("publishes binary protobuf (application/protobuf)", async () => {
    const spec = catalog.bySubject("order.fulfillment.completed");
    const bytes = toBinary(
      spec.schema,
      fromJson(spec.schema, completedJson() as never, { registry: catalog.registry }),
    );
    const res = await post("order.fulfillment.completed", Buffer.from(bytes), {
      "content-type": "application/protobuf",
    });
    assert.equal(res.statusCode, 201, res.body);
  });

  test("bad input is refused with the right code and field, and nothing is published", async () => {
    const before = await streamCount(nats.nc, "ORDER");
    const cases: [string, unknown, Record<string, string>, number, string, string?][] = [
      ["order.fulfillment.completed", "{not json", {}, 400, "JK_GATEWAY_BAD_BODY"],
      [
        "order.fulfillment.completed",
        { ...completedJson(), orderId: 42 },
        {},
        400,
        "JK_GATEWAY_BAD_BODY",
        "order_id",
      ],
      [
        "order.fulfillment.completed",
        { ...completedJson(), sneaky: 1 },
        {},
        400,
        "JK_GATEWAY_BAD_BODY",
        "sneaky",
      ],
      [
        "order.fulfillment.completed",
        {
          ...completedJson(),
          shipments: [{ shipmentId: "s", carrier: "CARRIER_UNSPECIFIED", trackingNumber: "t", skus: ["x"] }],
        },
        {},
        400,
        "JK_GATEWAY_CONTRACT_VIOLATION",
        "shipments[0].carrier",
      ],
      [
        "order.fulfillment.completed",
        { ...completedJson(), orderId: "not-a-uuid" },
        {},
        400,
        "JK_GATEWAY_CONTRACT_VIOLATION",
        "order_id",
      ],
      ["order.fulfillment.*", completedJson(), {}, 400, "JK_GATEWAY_BAD_SUBJECT", "subject"],
      ["order.>", completedJson(), {}, 400, "JK_GATEWAY_BAD_SUBJECT", "subject"],
      ["order..completed", completedJson(), {}, 400, "JK_GATEWAY_BAD_SUBJECT", "subject"],
      ["order.fulfillment.compl%20eted", completedJson(), {}, 400, "JK_GATEWAY_BAD_SUBJECT", "subject"],
      [`order.${"x".repeat(200)}.completed`, completedJson(), {}, 400, "JK_GATEWAY_BAD_SUBJECT", "subject"],
      ["order.fulfillment.unknown", completedJson(), {}, 404, "JK_GATEWAY_UNKNOWN_SUBJECT", "subject"],
      [
        "order.fulfillment.completed",
        { ...completedJson(), pad: "x".repeat(5000) },
        {},
        413,
        "JK_GATEWAY_BODY_TOO_LARGE",
      ],
      [
        "order.fulfillment.completed",
        completedJson(),
        { "content-type": "text/plain" },
        415,
        "JK_GATEWAY_UNSUPPORTED_MEDIA_TYPE",
      ],
      [
        "order.fulfillment.completed",
        Buffer.from([0xff, 0xff, 0xff]),
        { "content-type": "application/protobuf" },
        400,
        "JK_GATEWAY_BAD_BODY",
      ],
      [
        "order.fulfillment.completed",
        completedJson(),
        { "idempotency-key": "has space" },
        400,
        "JK_GATEWAY_BAD_HEADER",
        "idempotency-key",
      ],
      [
        "order.fulfillment.completed",
        completedJson(),
        { "x-correlation-id": "a\u0001b" },
        400,
        "JK_GATEWAY_BAD_HEADER",
        "x-correlation-id",
      ],
      ["order.lifecycle.cancelled", {}, {}, 403, "JK_GATEWAY_FORBIDDEN"],
      ["payment.charge.authorized", {}, {}, 403, "JK_GATEWAY_FORBIDDEN"],
    ];
    for (const [subject, body, headers, status, code, field] of cases) {
      const res = await post(subject, body, headers);
      assert.equal(res.statusCode, status, `${subject} ${JSON.stringify(headers)}: ${res.body}`);
      const err = res.json().error;
      assert.equal(err.code, code, res.body);
      assert.ok(err.message.length > 20, "the message says what to do");
      if (field) assert.equal(err.field, field, res.body);
    }
    assert.equal(await streamCount(nats.nc, "ORDER"), before, "nothing was published");
    assert.equal(await streamCount(nats.nc, "PAYMENT"), 0);
  });

  test("client-sent CloudEvents / NATS headers are not passed through", async () => {
    const res = await post("order.fulfillment.completed", completedJson(), {
      "ce-type": "evil.Type",
      "nats-msg-id": "forced",
      "ce-source": "/evil",
    });
    assert.equal(res.statusCode, 201);
    const stored = await jetstream(nats.nc)
      .streams.get("ORDER")
      .then((s) => s.getMessage({ seq: res.json().seq }));
    assert.equal(stored?.header.get("ce-type"), "shop.order.v1.OrderFulfillmentCompleted");
    assert.notEqual(stored?.header.get("Nats-Msg-Id"), "forced");
    assert.notEqual(stored?.header.get("ce-source"), "/evil");
  });

  test("403 names action and subject; every decision is audited to the AUDIT stream", async () => {
    const before = await streamCount(nats.nc, "AUDIT");
    const res = await post("order.lifecycle.cancelled", {}, {}, CHECKOUT);
    assert.equal(res.statusCode, 403);
    const err = res.json().error;
    assert.match(err.message, /may not publish "order\.lifecycle\.cancelled"/);
    assert.match(err.message, /deny\[0\]/);
    await eventually(async () => (await streamCount(nats.nc, "AUDIT")) > before, 5000, "audit event stored");
    const s = await jetstream(nats.nc).streams.get("AUDIT");
    const last = await s.getMessage({ last_by_subj: "audit.gateway.decision" });
    const decoded = catalog.decode(
      catalog.bySubject("audit.gateway.decision"),
      last!.data,
    ) as unknown as Record<string, unknown>;
    assert.equal(decoded.principal, CHECKOUT);
    assert.equal(decoded.subject, "order.lifecycle.cancelled");
    assert.equal(decoded.decision, 2);
    assert.equal(decoded.action, 1);
    assert.equal(decoded.rule, 'deny[0].publish[0] "order.lifecycle.cancelled"');
    assert.equal(decoded.requestId, res.headers["x-request-id"]);
    assert.equal(decoded.dryRun, false);
  });

  test("default deny: a principal without bindings can do nothing", async () => {
    const res = await post("customer.checkout.initiated", {}, {}, "spiffe://jetkit.dev/nobody");
    assert.equal(res.statusCode, 403);
    assert.match(res.json().error.message, /default-deny/);
  });

  test("dry-run allows what would be denied and audits it as a dry-run deny", async () => {
    const before = await streamCount(nats.nc, "ORDER");
    const res = await post(
      "order.fulfillment.completed",
      completedJson(),
      {},
      "spiffe://jetkit.dev/nobody",
      dryApp,
    );
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(await streamCount(nats.nc, "ORDER"), before + 1);
    const s = await jetstream(nats.nc).streams.get("AUDIT");
    await eventually(async () => {
      const last = await s.getMessage({ last_by_subj: "audit.gateway.decision" });
      const d = catalog.decode(catalog.bySubject("audit.gateway.decision"), last!.data) as unknown as Record<
        string,
        unknown
      >;
      return d.requestId === res.headers["x-request-id"] && d.dryRun === true && d.decision === 2;
    });
  });

  test("rate limit per principal: 429 with Retry-After, other principals unaffected", async () => {
    const statuses: number[] = [];
    let retryAfter: string | undefined;
    for (let i = 0; i < 4; i++) {
      const r = await limitedApp.inject({
        url: "/v1/events/order.>/stream?from_seq=x",
        headers: { "x-test-principal": BOB },
      });
      statuses.push(r.statusCode);
      if (r.statusCode === 429) {
        retryAfter = String(r.headers["retry-after"]);
        assert.equal(r.json().error.code, "JK_GATEWAY_RATE_LIMITED");
      }
    }
    assert.deepEqual(statuses.slice(0, 2), [400, 400]);
    assert.equal(statuses[3], 429);
    assert.match(retryAfter ?? "", /^\d+$/);
    const other = await limitedApp.inject({ url: "/v1/whoami", headers: { "x-test-principal": CHECKOUT } });
    assert.equal(other.statusCode, 200);
  });

  test("401 without a certificate, 404 on unknown routes, JSON errors", async () => {
    const r = await app.inject({
      method: "POST",
      url: "/v1/events/order.fulfillment.completed",
      payload: "{}",
    });
    assert.equal(r.statusCode, 401);
    assert.equal(r.json().error.code, "JK_GATEWAY_UNAUTHENTICATED");
    const nf = await app.inject({ url: "/v2/nothing" });
    assert.equal(nf.statusCode, 404);
    assert.equal(nf.json().error.code, "JK_GATEWAY_NOT_FOUND");
  });

  test("the admin app: healthz, readyz and OpenTelemetry metrics in Prometheus text", async () => {
    const admin = buildAdminApp(ctx);
    try {
      assert.equal((await admin.inject({ url: "/healthz" })).statusCode, 200);
      assert.equal((await admin.inject({ url: "/readyz" })).statusCode, 200);
      const m = (await admin.inject({ url: "/metrics" })).body;
      assert.match(m, /jetkit_gateway_decisions_total\{action="publish",decision="deny"[^}]*\} \d+/);
      assert.match(m, /jetkit_gateway_published_total\{subject="order.fulfillment.completed"[^}]*\} \d+/);
      assert.match(
        m,
        /jetkit_gateway_request_duration_bucket\{route="\/v1\/events\/:subject",outcome="JK_GATEWAY_FORBIDDEN"[^}]*le="[\d.]+"[^}]*\} \d+/,
      );
      assert.match(
        m,
        /jetkit_gateway_requests_total\{route="\/v1\/events\/:subject",method="POST",status="201",outcome="ok"[^}]*\} \d+/,
      );
      const nf = await admin.inject({ url: "/nope" });
      assert.equal(nf.json().error.code, "JK_GATEWAY_NOT_FOUND");
      assert.equal((await app.inject({ url: "/metrics" })).statusCode, 404, "not on the mTLS listener");
    } finally {
      await admin.close();
    }
  });

  test("durable pull API: fetch with ack tokens, nak redelivers, ack settles, tokens are bound to the principal", async () => {
    const put = await app.inject({
      method: "PUT",
      url: "/v1/consumers/bob-orders",
      headers: { "x-test-principal": BOB, "content-type": "application/json" },
      payload: JSON.stringify({ pattern: "order.fulfillment.*", ack_wait_ms: 60000 }),
    });
    assert.equal(put.statusCode, 201, put.body);
    const denied = await app.inject({
      method: "PUT",
      url: "/v1/consumers/bob-pay",
      headers: { "x-test-principal": BOB, "content-type": "application/json" },
      payload: JSON.stringify({ pattern: "payment.>" }),
    });
    assert.equal(denied.statusCode, 403);
    const fetch = async () => {
      const r = await app.inject({
        method: "POST",
        url: "/v1/consumers/bob-orders/fetch?batch=100&wait_ms=1000",
        headers: { "x-test-principal": BOB },
      });
      assert.equal(r.statusCode, 200, r.body);
      return r.json().messages as {
        seq: number;
        token: string;
        delivery: number;
        event: { orderId: string };
      }[];
    };
    const first = await fetch();
    assert.ok(first.length >= 3, `the fulfillment events published above: ${first.length}`);
    assert.equal(first[0]!.event.orderId, completedJson().orderId);
    const ack = (token: string, action: string, principal = BOB) =>
      app.inject({
        method: "POST",
        url: `/v1/acks/${token}?action=${action}`,
        headers: { "x-test-principal": principal },
      });
    const stolen = await ack(first[0]!.token, "ack", CHECKOUT);
    assert.equal(stolen.statusCode, 400);
    assert.equal(stolen.json().error.code, "JK_GATEWAY_BAD_ACK_TOKEN");
    const forged = await ack(`${first[0]!.token.split(".")[0]}.AAAA`, "ack");
    assert.equal(forged.json().error.code, "JK_GATEWAY_BAD_ACK_TOKEN");
    assert.equal((await ack(first[0]!.token, "nak")).statusCode, 200);
    for (const m of first.slice(1)) assert.equal((await ack(m.token, "ack")).statusCode, 200);
    const second = await fetch();
    assert.equal(second.length, 1, "only the nak'ed message comes back");
    assert.equal(second[0]!.seq, first[0]!.seq);
    assert.equal(second[0]!.delivery, 2);
    assert.equal((await ack(second[0]!.token, "ack")).statusCode, 200);
    const del = await app.inject({
      method: "DELETE",
      url: "/v1/consumers/bob-orders",
      headers: { "x-test-principal": BOB },
    });
    assert.equal(del.statusCode, 204);
  });

  test("Idempotency-Key is scoped per principal: another principal's key neither suppresses an event nor reveals its sequence", async () => {
    const before = await streamCount(nats.nc, "ORDER");
    const key = { "idempotency-key": "shared-key-1" };
    const a = await post("order.fulfillment.completed", completedJson(), key, CHECKOUT);
    assert.equal(a.statusCode, 201, a.body);
    const b = await post(
      "order.fulfillment.completed",
      completedJson(),
      key,
      "spiffe://jetkit.dev/team-b",
      openApp,
    );
    assert.equal(b.statusCode, 201, `B's event is stored, not a duplicate of A's: ${b.body}`);
    assert.notEqual(b.json().seq, a.json().seq);
    assert.notEqual(b.json().msgId, a.json().msgId);
    const again = await post("order.fulfillment.completed", completedJson(), key, CHECKOUT);
    assert.equal(again.statusCode, 200, "A's own retry is still a duplicate");
    assert.equal(again.json().seq, a.json().seq);
    assert.equal(await streamCount(nats.nc, "ORDER"), before + 2);
  });

  test("pull API edge cases: a JSON body that is not an object, ack actions named like Object.prototype members, acking after the consumer is gone", async () => {
    const put = (payload: string) =>
      app.inject({
        method: "PUT",
        url: "/v1/consumers/edge",
        headers: { "x-test-principal": BOB, "content-type": "application/json" },
        payload,
      });
    for (const body of ["null", "[]", '"order.>"', "1", "true"]) {
      const r = await put(body);
      assert.equal(r.statusCode, 400, `${body}: ${r.body}`);
      assert.equal(r.json().error.code, "JK_GATEWAY_BAD_BODY");
    }
    assert.equal((await put(JSON.stringify({ pattern: "order.fulfillment.*" }))).statusCode, 201);
    const published = await post("order.fulfillment.completed", completedJson());
    assert.equal(published.statusCode, 201);
    const fetched = await app.inject({
      method: "POST",
      url: "/v1/consumers/edge/fetch?batch=1&wait_ms=1000",
      headers: { "x-test-principal": BOB },
    });
    const token = fetched.json().messages[0].token as string;
    const ack = (query: string) =>
      app.inject({ method: "POST", url: `/v1/acks/${token}${query}`, headers: { "x-test-principal": BOB } });
    for (const q of [
      "?action=constructor",
      "?action=__proto__",
      "?action=toString",
      "?action=hasOwnProperty",
      "?action=ack&action=nak",
    ]) {
      const r = await ack(q);
      assert.equal(r.statusCode, 400, `${q}: ${r.body}`);
      assert.equal(r.json().error.code, "JK_GATEWAY_BAD_REQUEST");
      assert.equal(r.json().error.field, "action");
    }
    const del = await app.inject({
      method: "DELETE",
      url: "/v1/consumers/edge",
      headers: { "x-test-principal": BOB },
    });
    assert.equal(del.statusCode, 204);
    const late = await ack("?action=ack");
    assert.equal(late.statusCode, 410, late.body);
    assert.equal(late.json().error.code, "JK_GATEWAY_DELIVERY_GONE");
    assert.doesNotMatch(late.json().error.message, /Retry;/);
  });

  test("router errors are coded JSON and never echo the URL", async () => {
    const bad = await app.inject({
      url: "/v1/events/order.%zz.x/stream",
      headers: { "x-test-principal": BOB },
    });
    assert.equal(bad.statusCode, 400, bad.body);
    assert.equal(bad.json().error.code, "JK_GATEWAY_BAD_REQUEST");
    const long = `order.${"a".repeat(5000)}`;
    const tooLong = await app.inject({
      method: "POST",
      url: `/v1/events/${long}`,
      headers: { "x-test-principal": BOB },
    });
    assert.equal(tooLong.statusCode, 414, tooLong.body);
    assert.equal(tooLong.json().error.code, "JK_GATEWAY_URL_TOO_LONG");
    assert.ok(!tooLong.body.includes("aaaaaaaaaa"), "the URL is not echoed");
  });

  test("503 and nothing published while NATS is down; /readyz follows", async () => {
    const admin = buildAdminApp(ctx);
    after(() => admin.close());
    await nats.server.stop();
    try {
      await eventually(
        async () => (await admin.inject({ url: "/readyz" })).statusCode === 503,
        10_000,
        "readyz 503",
      );
      const res = await post("order.fulfillment.completed", completedJson());
      assert.equal(res.statusCode, 503);
      assert.equal(res.json().error.code, "JK_GATEWAY_UNAVAILABLE");
    } finally {
      await nats.server.start();
    }
    await eventually(
      async () => (await admin.inject({ url: "/readyz" })).statusCode === 200,
      15_000,
      "readyz 200",
    );
  });
});
