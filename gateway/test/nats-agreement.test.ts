import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { getCatalog } from "@jetkit/contracts";
import { createProducer, type Producer } from "@jetkit/producers";
import { type NatsServer, startServer } from "@jetkit/testing";
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

/** Principal, action, subject: both enforcement points must agree on each. */
const MATRIX: [string, "publish" | "subscribe", string][] = [
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
];

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
    const conf = natsAuthorization(parsePolicy(POLICY, "policy.yaml"), {
      catalog,
      principals: [TEAM_A],
      tls: { certFile: pki.paths.serverCert, keyFile: pki.paths.serverKey, caFile: pki.paths.caCert },
    });
    direct = await startServer({ jetstream: false, config: conf });
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
      file: await writePolicy(dir.dir),
      catalog,
      logger: silent,
      watch: false,
      sighup: false,
    });
    const made = await createContext(
      { tls: { cert: "", key: "", ca: "" }, policy: { file: "" }, nats: { servers: backing.server.url } },
      producer,
      store,
      new Metrics(),
      silent,
      catalog,
      { ...DEFAULT_LIMITS, ratePerSecond: 0 },
    );
    app = buildApp({ ...made.ctx, authenticate: fakeAuth as GatewayContext["authenticate"] });
  });

  after(async () => {
    for (const c of clients.values()) await c.nc.close();
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

  for (const [principal, action, subject] of MATRIX) {
    test(`${principal} ${action} ${subject}`, async () => {
      let gatewayAllows: boolean;
      if (action === "publish") {
        const res = await app.inject({
          method: "POST",
          url: `/v1/events/${subject}`,
          headers: { "x-test-principal": principal, "content-type": "application/json" },
          payload: JSON.stringify(subject === "order.fulfillment.completed" ? completedJson() : {}),
        });
        gatewayAllows = res.statusCode !== 403;
      } else {
        const res = await app.inject({
          method: "PUT",
          url: `/v1/consumers/agree-${Math.random().toString(36).slice(2, 8)}`,
          headers: { "x-test-principal": principal, "content-type": "application/json" },
          payload: JSON.stringify({ pattern: subject }),
        });
        gatewayAllows = res.statusCode !== 403;
      }
      const c = clients.get(principal)!;
      const seen = c.violations.length;
      if (action === "publish") c.nc.publish(subject, "x");
      else c.nc.subscribe(subject).unsubscribe(1);
      await c.nc.flush();
      // The server's -ERR comes before the PONG, but the client dispatches it asynchronously:
      // give it a bounded moment, looking for this very subject.
      const quote = `${action === "publish" ? "Publish" : "Subscription"} to "${subject}"`;
      const denied = await waitFor(() => c.violations.slice(seen).some((v) => v.includes(quote)), 300);
      const natsAllows = !denied;
      assert.equal(
        natsAllows,
        gatewayAllows,
        `gateway ${gatewayAllows}, nats ${natsAllows}: ${c.violations.at(-1) ?? ""}`,
      );
    });
  }
});
