import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { getCatalog } from "@jetkit/contracts";
import { createProducer, type Producer } from "@jetkit/producers";
import { type NatsServer, startServer } from "@jetkit/testing";
import { AckPolicy, jetstream, jetstreamManager, StorageType } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { FastifyInstance } from "fastify";
import { createContext } from "../src/gateway.js";
import { buildApp } from "../src/http/app.js";
import { DEFAULT_LIMITS, type GatewayContext } from "../src/http/context.js";
import { Metrics } from "../src/metrics.js";
import { type IssuedCert, issueClientCert } from "../src/pki/pki.js";
import { natsAuthorization } from "../src/policy/nats-config.js";
import { parsePolicy } from "../src/policy/policy.js";
import { PolicyStore } from "../src/policy/store.js";
import {
  ADMIN,
  AGREE_POLICY,
  BOB,
  CHECKOUT,
  fakeAuth,
  gatewayAllows,
  MATRIX,
  natsAllows,
  natsClient,
  TEAM_A,
} from "./agreement.js";

import { makePki, natsWithStreams, silent, type TestPki, tempDir, writePolicy } from "./helpers.js";

const catalog = getCatalog();

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

  for (const [principal, action, subject] of MATRIX) {
    test(`${principal} ${action} ${subject}`, async () => {
      const gw = await gatewayAllows(app, principal, action, subject);
      const [nats, why] = await natsAllows(clients.get(principal)!, action, subject);
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
