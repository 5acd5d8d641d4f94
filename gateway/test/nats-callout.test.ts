import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { getCatalog, isJetkitError } from "@jetkit/contracts";
import { createProducer, type Producer } from "@jetkit/producers";
import { type NatsServer, startServer } from "@jetkit/testing";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, StorageType } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { createAccount } from "@nats-io/nkeys";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { FastifyInstance } from "fastify";
import { createContext, type Gateway, startGateway } from "../src/gateway.js";
import { buildApp } from "../src/http/app.js";
import { DEFAULT_LIMITS, type GatewayContext } from "../src/http/context.js";
import { identityOf } from "../src/identity.js";
import { Metrics } from "../src/metrics.js";
import type { AuthCallout } from "../src/nats-auth/callout.js";
import { type IssuedCert, issueClientCert } from "../src/pki/pki.js";
import { PolicyStore } from "../src/policy/store.js";
import {
  ADMIN,
  AGREE_POLICY,
  BOB,
  CHECKOUT,
  fakeAuth,
  gatewayAllows,
  MATRIX,
  type NatsClient,
  natsAllows,
  natsClient,
  TEAM_A,
} from "./agreement.js";
import {
  forgeClientCert,
  LEAF_EXT,
  makePki,
  natsWithStreams,
  silent,
  type TestPki,
  tempDir,
  writePolicy,
} from "./helpers.js";

const catalog = getCatalog();

describe("NATS auth callout: the gateway's identity and policy code decides inside nats-server", () => {
  let dir: { dir: string; remove: () => Promise<void> };
  let pki: TestPki;
  let admin: IssuedCert;
  let direct: NatsServer;
  let gw: Gateway;
  let adminNc: NatsConnection;
  let callout: AuthCallout;
  let backing: { server: NatsServer; nc: NatsConnection };
  let producer: Producer;
  let store: PolicyStore;
  let app: FastifyInstance;
  const clients = new Map<string, NatsClient>();
  const adversarial = new Map<string, IssuedCert>();

  before(async () => {
    dir = await tempDir("callout");
    pki = await makePki(join(dir.dir, "pki"));
    const teamA = await issueClientCert(pki.paths.dir, { name: "team-a", spiffeId: TEAM_A });
    admin = await issueClientCert(pki.paths.dir, { name: "admin", dn: { O: "jetkit", CN: "admin" } });
    const [bc, ku, eku] = LEAF_EXT;
    // certificates the gateway refuses, or that spell another principal
    for (const [name, subj, ext] of [
      [
        "email-spoof",
        "/O=X/CN=mallory",
        [bc, ku, eku, "subjectAltName = @alt", "[ alt ]", `email.1 = ${BOB}`],
      ],
      ["two-uris", "/CN=t", [bc, ku, eku, `subjectAltName = URI:${CHECKOUT}, URI:spiffe://jetkit.dev/x`]],
      ["upper-scheme", "/CN=u", [bc, ku, eku, "subjectAltName = URI:SPIFFE://jetkit.dev/checkout"]],
      ["ca-leaf", "/O=jetkit/OU=ops/CN=bob", ["basicConstraints = critical, CA:true", ku, eku]],
      ["no-eku", "/O=jetkit/OU=ops/CN=bob", [bc, ku]],
      ["no-path", "/CN=np", [bc, ku, eku, "subjectAltName = URI:spiffe://jetkit.dev"]],
    ] as const) {
      adversarial.set(name, await forgeClientCert(pki.paths, name, subj, [...ext]));
    }
    const issuer = createAccount();
    const seed = new TextDecoder().decode(issuer.getSeed());
    direct = await startServer({
      config: `
tls { cert_file: "${pki.paths.serverCert}", key_file: "${pki.paths.serverKey}", ca_file: "${pki.paths.caCert}", verify: true, timeout: 2 }
accounts {
  AUTH { users: [ { user: auth, password: auth-secret } ] }
  APP { jetstream: enabled }
  SYS {}
}
system_account: SYS
authorization {
  auth_callout {
    issuer: ${issuer.getPublicKey()}
    users: [ auth ]
    account: AUTH
  }
}
`,
    });
    const tls = { caFile: pki.paths.caCert, certFile: admin.cert, keyFile: admin.key };
    const policyFile = await writePolicy(dir.dir, AGREE_POLICY);
    store = new PolicyStore({ file: policyFile, catalog, logger: silent, watch: false, sighup: false });
    backing = await natsWithStreams();
    // the gateway process serves the callout with its own policy store
    gw = await startGateway({
      listen: { port: 0 },
      admin: false,
      tls: { cert: pki.paths.serverCert, key: pki.paths.serverKey, ca: pki.paths.caCert, watch: false },
      policy: { file: policyFile, watch: false },
      nats: { servers: backing.server.url },
      authCallout: {
        nats: { servers: direct.url, user: "auth", pass: "auth-secret", tls },
        issuerSeed: seed,
        account: "APP",
        trusted: [ADMIN],
        durables: {
          ...Object.fromEntries([CHECKOUT, BOB, TEAM_A].map((p) => [p, ["agree", "flow"]])),
          [BOB]: ["agree", "flow", "shipping"],
        },
      },
      logger: silent,
    });
    callout = gw.authCallout!;
    adminNc = await connect({ servers: direct.url, tls });
    const adminJsm = await jetstreamManager(adminNc);
    for (const st of catalog.streams) {
      await adminJsm.streams.add({ name: st.name, subjects: [...st.subjects], storage: StorageType.Memory });
    }
    for (const [p, c] of [
      [CHECKOUT, pki.checkout],
      [BOB, pki.bob],
      [TEAM_A, teamA],
    ] as const) {
      clients.set(p, await natsClient(direct, pki, c));
    }
    producer = await createProducer({
      servers: backing.server.url,
      name: "gateway",
      logger: silent,
      validate: false,
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
    await gw?.close();
    await app?.close();
    store?.close();
    await producer?.close();
    await backing?.nc.close();
    await backing?.server.stop();
    await direct?.stop();
    await dir?.remove();
  });

  for (const [principal, action, subject] of MATRIX) {
    test(`${principal} ${action} ${subject}`, async () => {
      const gw = await gatewayAllows(app, principal, action, subject);
      const [nats, why] = await natsAllows(clients.get(principal)!, action, subject);
      assert.equal(nats, gw, `gateway ${gw}, nats ${nats}: ${why}`);
    });
  }

  test("a glob-bound principal needs no listing: the callout knows the certificate at connect time", async () => {
    const other = await issueClientCert(pki.paths.dir, {
      name: "team-a-2",
      spiffeId: "spiffe://jetkit.dev/team-a/billing",
    });
    const c = await natsClient(direct, pki, other);
    try {
      const [allowed] = await natsAllows(c, "subscribe", "order.>");
      assert.equal(allowed, true);
      assert.equal(
        await gatewayAllows(app, "spiffe://jetkit.dev/team-a/billing", "subscribe", "order.>"),
        true,
      );
    } finally {
      await c.nc.close();
    }
  });

  test("adversarial certificates: the gateway refuses each (401) and nats-server refuses the connection", async () => {
    const before = callout.decided.refused;
    for (const [name, cert] of adversarial) {
      const gatewayRefuses = (() => {
        try {
          identityOf(new X509Certificate(readFileSync(cert.cert)), { source: "spiffe-or-dn" });
          return false;
        } catch (err) {
          return isJetkitError(err, "JK_GATEWAY_UNAUTHENTICATED");
        }
      })();
      // the email SAN spoof is a valid certificate of CN=mallory, who has no role: denied everything
      assert.equal(gatewayRefuses, name !== "email-spoof", name);
      await assert.rejects(
        connect({
          servers: direct.url,
          tls: { caFile: pki.paths.caCert, certFile: cert.cert, keyFile: cert.key },
          reconnect: false,
        }),
        /authorization/i,
        name,
      );
    }
    assert.equal(callout.decided.refused - before, adversarial.size);
  });

  test("a client pulls from its durable and acks through the callout's permissions; another durable stays closed", async () => {
    const c = clients.get(BOB)!;
    const jsm = await jetstreamManager(c.nc);
    await jsm.consumers.add("ORDER", {
      durable_name: "flow",
      filter_subject: "order.>",
      ack_policy: AckPolicy.Explicit,
    });
    await jetstream(adminNc).publish("order.fulfillment.completed", "event-1");
    const m = await (await jetstream(c.nc).consumers.get("ORDER", "flow")).next({ expires: 5000 });
    assert.equal(m?.subject, "order.fulfillment.completed");
    assert.equal(await m!.ackAck(), true);
    await (await jetstreamManager(adminNc)).consumers.add("ORDER", {
      durable_name: "someone-else",
      filter_subject: "order.>",
      ack_policy: AckPolicy.Explicit,
    });
    await assert.rejects(
      jetstream(c.nc)
        .consumers.get("ORDER", "someone-else")
        .then((x) => x.info()),
      /permission/i,
    );
  });

  test("a principal granted a durable keeps idempotency records in KV and dead-letters through its callout user; one without the grant is refused by NATS", async () => {
    const bob = clients.get(BOB)!.nc;
    const jsm = await jetstreamManager(bob);
    await jsm.consumers.add("ORDER", {
      durable_name: "shipping",
      filter_subject: "order.>",
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.New,
    });
    await jetstream(adminNc).publish("order.fulfillment.completed", "event-kv", { msgID: "kv-1" });
    const m = await (await jetstream(bob).consumers.get("ORDER", "shipping")).next({ expires: 5000 });
    assert.equal(m?.headers?.get("Nats-Msg-Id"), "kv-1");
    // the consumers SDK's idempotency store: the bucket (created by the user), a claim by
    // compare-and-set under the durable's prefix, the record, a direct get
    const kv = await new Kvm(bob).create("jetkit-idempotency", { history: 1 });
    const key = `shipping.${Buffer.from("kv-1").toString("base64url")}`;
    const rev = await kv.create(key, "claimed");
    await assert.rejects(
      kv.create(key, "claimed again"),
      /wrong last sequence|exists/i,
      "the claim is exclusive",
    );
    await kv.update(key, "done", rev);
    assert.equal((await kv.get(key))?.string(), "done");
    await assert.rejects(
      kv.put(`someone-else.${key}`, "x"),
      /permission/i,
      "another durable's records stay closed",
    );
    // a dead letter: the SDK checks the DLQ stream, then stores dlq.<subject>
    assert.equal((await jsm.streams.info("DLQ")).config.name, "DLQ");
    const dl = await jetstream(bob).publish("dlq.order.fulfillment.completed", "dead", {
      msgID: "dlq:ORDER:1:shipping",
    });
    assert.equal(dl.stream, "DLQ");
    assert.equal(await m!.ackAck(), true);
    const stored = await (await jetstreamManager(adminNc)).streams.getMessage("DLQ", { seq: dl.seq });
    assert.equal(stored?.subject, "dlq.order.fulfillment.completed");

    // a principal bound by the policy (it may subscribe order.>) but granted no durable
    const plain = await natsClient(
      direct,
      pki,
      await issueClientCert(pki.paths.dir, { name: "team-a-kv", spiffeId: "spiffe://jetkit.dev/team-a/kv" }),
    );
    try {
      assert.equal((await natsAllows(plain, "subscribe", "order.>"))[0], true, "it connects with its policy");
      await assert.rejects(
        async () => (await new Kvm(plain.nc).open("jetkit-idempotency")).get(key),
        /permission/i,
      );
      await assert.rejects(
        async () => (await new Kvm(plain.nc).open("jetkit-idempotency")).put(key, "forged"),
        /permission/i,
      );
      await assert.rejects(
        plain.nc.request(`$KV.jetkit-idempotency.${key}`, "forged", { timeout: 5000 }),
        /permission/i,
      );
      await assert.rejects(
        plain.nc.request(`$JS.API.DIRECT.GET.KV_jetkit-idempotency.$KV.jetkit-idempotency.${key}`, "", {
          timeout: 5000,
        }),
        /permission/i,
      );
      await assert.rejects(
        jetstream(plain.nc).publish("dlq.order.fulfillment.completed", "x"),
        /permission/i,
      );
      await assert.rejects(
        (await jetstreamManager(plain.nc, { checkAPI: false })).consumers.add("ORDER", {
          durable_name: "shipping",
          filter_subject: "order.>",
          ack_policy: AckPolicy.Explicit,
        }),
        /permission/i,
      );
    } finally {
      await plain.nc.close();
    }
  });

  test("a policy change applies to the next connection", async () => {
    const before = await natsAllows(clients.get(BOB)!, "subscribe", "payment.>");
    assert.equal(before[0], false);
    await writePolicy(
      dir.dir,
      AGREE_POLICY.replace("subscribe: [order.>]", "subscribe: [order.>, payment.>]"),
    );
    assert.equal(store.reload(), true);
    assert.equal(gw.reloadPolicy(), true, "the gateway serving the callout reloads too");
    const fresh = await natsClient(direct, pki, pki.bob);
    try {
      assert.equal((await natsAllows(fresh, "subscribe", "payment.>"))[0], true);
      assert.equal(await gatewayAllows(app, BOB, "subscribe", "payment.>"), true);
    } finally {
      await fresh.nc.close();
      await writePolicy(dir.dir, AGREE_POLICY);
      store.reload();
      gw.reloadPolicy();
    }
  });
});
