import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { getCatalog } from "@jetkit/contracts";
import { createProducer, type Producer } from "@jetkit/producers";
import { type NatsServer, startServer } from "@jetkit/testing";
import { AckPolicy, jetstream, jetstreamManager, StorageType } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { FastifyInstance } from "fastify";
import { GatewayErrorCodes, gatewayError } from "../src/errors.js";
import { createContext } from "../src/gateway.js";
import { buildApp } from "../src/http/app.js";
import { DEFAULT_LIMITS, type GatewayContext } from "../src/http/context.js";
import type { Identity } from "../src/identity.js";
import { Metrics } from "../src/metrics.js";
import { type IssuedCert, issueClientCert } from "../src/pki/pki.js";
import { natsAuthorization } from "../src/policy/nats-config.js";
import { patternCovers } from "../src/policy/patterns.js";
import { parsePolicy } from "../src/policy/policy.js";
import { PolicyStore } from "../src/policy/store.js";
import {
  completedJson,
  makePki,
  natsWithStreams,
  POLICY,
  silent,
  type TestPki,
  tempDir,
  writePolicy,
} from "./helpers.js";

const catalog = getCatalog();
const CHECKOUT = "spiffe://jetkit.dev/checkout";
const BOB = "CN=bob,OU=ops,O=jetkit";
const TEAM_A = "spiffe://jetkit.dev/team-a/reporting";

/** The shared test policy plus a `*` deny, for the `*`-versus-`>` cases. */
const AGREE_POLICY = `${POLICY}  - principal: ${TEAM_A}
    subscribe: [order.lifecycle.*]
`;

type Case = [string, "publish" | "subscribe" | "consume", string];

/** Principal, action, subject: both enforcement points must agree on each. */
const MATRIX: Case[] = [
  [CHECKOUT, "publish", "customer.checkout.initiated"],
  [CHECKOUT, "publish", "customer.account.registered"],
  [CHECKOUT, "publish", "order.fulfillment.completed"],
  [CHECKOUT, "publish", "order.lifecycle.cancelled"],
  [CHECKOUT, "publish", "payment.charge.authorized"],
  [CHECKOUT, "subscribe", "customer.account.registered"],
  [CHECKOUT, "subscribe", "customer.checkout.>"],
  [CHECKOUT, "subscribe", "customer.checkout.initiated"],
  [CHECKOUT, "subscribe", "order.fulfillment.*"],
  [CHECKOUT, "subscribe", "order.>"],
  [BOB, "publish", "order.fulfillment.completed"],
  [BOB, "subscribe", "order.>"],
  [BOB, "subscribe", "order.fulfillment.*"],
  [BOB, "subscribe", "customer.>"],
  [BOB, "subscribe", "payment.charge.declined"],
  [TEAM_A, "subscribe", "order.lifecycle.cancelled"],
  [TEAM_A, "publish", "order.lifecycle.cancelled"],
  // nats-server's "*" matches a literal ">" token: the gateway decides alike
  [CHECKOUT, "subscribe", "order.fulfillment.>"],
  [TEAM_A, "subscribe", "order.lifecycle.>"],
  [TEAM_A, "subscribe", "order.>"],
  [TEAM_A, "subscribe", "order.lifecycle.*"],
  // durable pull consumers created directly (filter bound by the create subject) or via the gateway
  [BOB, "consume", "order.>"],
  [BOB, "consume", "order.fulfillment.*"],
  [BOB, "consume", "customer.>"],
  [CHECKOUT, "consume", "order.fulfillment.*"],
  [CHECKOUT, "consume", "order.fulfillment.>"],
  [CHECKOUT, "consume", "customer.account.*"],
  [CHECKOUT, "consume", "customer.checkout.>"],
  [TEAM_A, "consume", "order.lifecycle.>"],
  [TEAM_A, "consume", "order.fulfillment.*"],
];

const ADMIN = "CN=admin,O=jetkit";

async function waitFor(check: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (check()) return true;
    await delay(10);
  }
  return check();
}

function fakeAuth(req: { headers: Record<string, unknown> }): Identity {
  const p = req.headers["x-test-principal"];
  if (typeof p !== "string") throw gatewayError(GatewayErrorCodes.UNAUTHENTICATED, "no certificate");
  return { principal: p, kind: "spiffe", serial: "01" };
}

/** A TLS client of the direct NATS server that records permission violations. */
async function natsClient(server: NatsServer, pki: TestPki, cert: IssuedCert) {
  const nc = await connect({
    servers: server.url,
    tls: { caFile: pki.paths.caCert, certFile: cert.cert, keyFile: cert.key },
  });
  const violations: string[] = [];
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "error" && /Permissions Violation/i.test(String(s.error?.message))) {
        violations.push(String(s.error.message));
      }
    }
  })();
  return { nc, violations };
}

describe("the generated nats-server authorization agrees with the gateway", () => {
  let dir: { dir: string; remove: () => Promise<void> };
  let pki: TestPki;
  let teamA: IssuedCert;
  let admin: IssuedCert;
  let adminNc: NatsConnection;
  let direct: NatsServer;
  let backing: { server: NatsServer; nc: NatsConnection };
  let producer: Producer;
  let store: PolicyStore;
  let app: FastifyInstance;
  const clients = new Map<string, Awaited<ReturnType<typeof natsClient>>>();

  before(async () => {
    dir = await tempDir("agree");
    pki = await makePki(join(dir.dir, "pki"));
    teamA = await issueClientCert(pki.paths.dir, { name: "team-a", spiffeId: TEAM_A });
    admin = await issueClientCert(pki.paths.dir, { name: "admin", dn: { O: "jetkit", CN: "admin" } });
    const conf = natsAuthorization(parsePolicy(AGREE_POLICY, "policy.yaml"), {
      catalog,
      principals: [TEAM_A],
      durables: { [CHECKOUT]: ["agree"], [BOB]: ["agree", "flow"], [TEAM_A]: ["agree"] },
      tls: { certFile: pki.paths.serverCert, keyFile: pki.paths.serverKey, caFile: pki.paths.caCert },
    });
    // an unrestricted user of the test itself, to provision streams and publish events
    direct = await startServer({ config: conf.replace("users = [", `users = [\n    { user: "${ADMIN}" }`) });
    adminNc = await connect({
      servers: direct.url,
      tls: { caFile: pki.paths.caCert, certFile: admin.cert, keyFile: admin.key },
    });
    const adminJsm = await jetstreamManager(adminNc);
    for (const st of catalog.streams) {
      await adminJsm.streams.add({ name: st.name, subjects: [...st.subjects], storage: StorageType.Memory });
    }
    await new Kvm(adminNc).create("jetkit-idempotency", { history: 1 });
    for (const [p, c] of [
      [CHECKOUT, pki.checkout],
      [BOB, pki.bob],
      [TEAM_A, teamA],
    ] as const) {
      clients.set(p, await natsClient(direct, pki, c));
    }
    backing = await natsWithStreams();
    producer = await createProducer({
      servers: backing.server.url,
      name: "gateway",
      logger: silent,
      validate: false,
    });
    store = new PolicyStore({
      file: await writePolicy(dir.dir, AGREE_POLICY),
      catalog,
      logger: silent,
      watch: false,
      sighup: false,
    });
    const made = await createContext(
      { tls: { cert: "", key: "", ca: "" }, policy: { file: "" }, nats: { servers: backing.server.url } },
      producer,
      store,
      new Metrics({ global: false }),
      silent,
      catalog,
      { ...DEFAULT_LIMITS, ratePerSecond: 0 },
    );
    app = buildApp({ ...made.ctx, authenticate: fakeAuth as GatewayContext["authenticate"] });
  });

  after(async () => {
    for (const c of clients.values()) await c.nc.close();
    await adminNc?.close();
    await app?.close();
    store?.close();
    await producer?.close();
    await backing?.nc.close();
    await backing?.server.stop();
    await direct?.stop();
    await dir?.remove();
  });

  test("a certificate of an unmapped principal cannot connect to NATS (default deny)", async () => {
    const stranger = await issueClientCert(pki.paths.dir, {
      name: "stranger",
      spiffeId: "spiffe://jetkit.dev/stranger",
    });
    await assert.rejects(
      connect({
        servers: direct.url,
        tls: { caFile: pki.paths.caCert, certFile: stranger.cert, keyFile: stranger.key },
        reconnect: false,
      }),
    );
  });

  /** The gateway's answer: publish an event, open an SSE subscription, create a durable. */
  async function gatewayAllows(principal: string, action: Case[1], subject: string): Promise<boolean> {
    const headers = { "x-test-principal": principal, "content-type": "application/json" };
    let res: Awaited<ReturnType<FastifyInstance["inject"]>>;
    if (action === "publish") {
      res = await app.inject({
        method: "POST",
        url: `/v1/events/${subject}`,
        headers,
        payload: JSON.stringify(subject === "order.fulfillment.completed" ? completedJson() : {}),
      });
    } else if (action === "subscribe") {
      // a malformed from_seq is refused after the decision: 403 denied, 400 allowed
      res = await app.inject({ url: `/v1/events/${subject}/stream?from_seq=x`, headers });
    } else {
      res = await app.inject({
        method: "PUT",
        url: `/v1/consumers/agree-${Math.random().toString(36).slice(2, 8)}`,
        headers,
        payload: JSON.stringify({ pattern: subject }),
      });
    }
    assert.ok([201, 400, 403].includes(res.statusCode), res.body);
    return res.statusCode !== 403;
  }

  async function natsAllows(principal: string, action: Case[1], subject: string): Promise<[boolean, string]> {
    const c = clients.get(principal)!;
    if (action === "consume") {
      const stream = catalog.streams.find((st) => st.subjects.some((p) => patternCovers(p, subject)))!;
      const jsm = await jetstreamManager(c.nc);
      try {
        await jsm.consumers.add(stream.name, {
          durable_name: "agree",
          filter_subject: subject,
          ack_policy: AckPolicy.Explicit,
        });
      } catch (err) {
        if (/permission/i.test(String((err as Error).message))) return [false, String(err)];
        throw err;
      }
      await jsm.consumers.delete(stream.name, "agree");
      return [true, ""];
    }
    const seen = c.violations.length;
    if (action === "publish") c.nc.publish(subject, "x");
    else c.nc.subscribe(subject).unsubscribe(1);
    await c.nc.flush();
    // The server's -ERR comes before the PONG, but the client dispatches it asynchronously:
    // give it a bounded moment, looking for this very subject.
    const quote = `${action === "publish" ? "Publish" : "Subscription"} to "${subject}"`;
    const denied = await waitFor(() => c.violations.slice(seen).some((v) => v.includes(quote)), 300);
    return [!denied, c.violations.at(-1) ?? ""];
  }

  for (const [principal, action, subject] of MATRIX) {
    test(`${principal} ${action} ${subject}`, async () => {
      const gw = await gatewayAllows(principal, action, subject);
      const [nats, why] = await natsAllows(principal, action, subject);
      assert.equal(nats, gw, `gateway ${gw}, nats ${nats}: ${why}`);
    });
  }

  test("a direct client pulls from its durable, acks, keeps idempotency records and dead-letters; other durables stay closed", async () => {
    const c = clients.get(BOB)!;
    const jsm = await jetstreamManager(c.nc);
    await jsm.consumers.add("ORDER", {
      durable_name: "flow",
      filter_subject: "order.>",
      ack_policy: AckPolicy.Explicit,
    });
    await jetstream(adminNc).publish("order.fulfillment.completed", "event-1");
    const consumer = await jetstream(c.nc).consumers.get("ORDER", "flow");
    const m = await consumer.next({ expires: 5000 });
    assert.equal(m?.subject, "order.fulfillment.completed");
    assert.equal(await m!.ackAck(), true, "the ack is confirmed");
    // the consumers SDK's idempotency records: direct put and get under the durable's prefix
    const put = await c.nc.request("$KV.jetkit-idempotency.flow.ZXZlbnQtMQ", "claimed", { timeout: 5000 });
    assert.equal(JSON.parse(put.string()).stream, "KV_jetkit-idempotency");
    const got = await c.nc.request(
      "$JS.API.DIRECT.GET.KV_jetkit-idempotency.$KV.jetkit-idempotency.flow.ZXZlbnQtMQ",
      "",
      { timeout: 5000 },
    );
    assert.equal(got.string(), "claimed");
    await assert.rejects(
      c.nc.request("$KV.jetkit-idempotency.someone-else.x", "no", { timeout: 5000 }),
      /permission/i,
    );
    const dl = await jetstream(c.nc).publish("dlq.order.fulfillment.completed", "dead");
    assert.equal(dl.stream, "DLQ");
    await adminJsm().then((a) =>
      a.consumers.add("ORDER", {
        durable_name: "someone-else",
        filter_subject: "order.>",
        ack_policy: AckPolicy.Explicit,
      }),
    );
    await assert.rejects(
      jetstream(c.nc)
        .consumers.get("ORDER", "someone-else")
        .then((x) => x.info()),
      /permission/i,
    );
  });

  const adminJsm = () => jetstreamManager(adminNc);
});
