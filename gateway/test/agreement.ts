// The agreement matrix shared by the static-config and auth-callout tests: the same policy, the
// same cases, decided by the gateway (in-process, real NATS behind it) and by a real nats-server.
import assert from "node:assert/strict";
import { setTimeout as delay } from "node:timers/promises";
import { getCatalog } from "@jetkit/contracts";
import type { NatsServer } from "@jetkit/testing";
import { AckPolicy, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import type { FastifyInstance } from "fastify";
import { GatewayErrorCodes, gatewayError } from "../src/errors.js";
import type { Identity } from "../src/identity.js";
import type { IssuedCert } from "../src/pki/pki.js";
import { patternCovers } from "../src/policy/patterns.js";
import { completedJson, POLICY, type TestPki } from "./helpers.js";

const catalog = getCatalog();
export const CHECKOUT = "spiffe://jetkit.dev/checkout";
export const BOB = "CN=bob,OU=ops,O=jetkit";
export const TEAM_A = "spiffe://jetkit.dev/team-a/reporting";

/** The shared test policy plus a `*` deny, for the `*`-versus-`>` cases. */
export const AGREE_POLICY = `${POLICY}  - principal: ${TEAM_A}
    subscribe: [order.lifecycle.*]
`;

export type Case = [string, "publish" | "subscribe" | "consume", string];

/** Principal, action, subject: both enforcement points must agree on each. */
export const MATRIX: Case[] = [
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

export const ADMIN = "CN=admin,O=jetkit";

export async function waitFor(check: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (check()) return true;
    await delay(10);
  }
  return check();
}

export function fakeAuth(req: { headers: Record<string, unknown> }): Identity {
  const p = req.headers["x-test-principal"];
  if (typeof p !== "string") throw gatewayError(GatewayErrorCodes.UNAUTHENTICATED, "no certificate");
  return { principal: p, kind: "spiffe", serial: "01" };
}

/** A TLS client of the direct NATS server that records permission violations. */
export async function natsClient(server: NatsServer, pki: TestPki, cert: IssuedCert) {
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

export type NatsClient = Awaited<ReturnType<typeof natsClient>>;

/** The gateway's answer: publish an event, open an SSE subscription, create a durable. */
export async function gatewayAllows(
  app: FastifyInstance,
  principal: string,
  action: Case[1],
  subject: string,
): Promise<boolean> {
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

export async function natsAllows(
  c: NatsClient,
  action: Case[1],
  subject: string,
): Promise<[boolean, string]> {
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
