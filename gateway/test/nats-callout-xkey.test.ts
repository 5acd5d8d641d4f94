import assert from "node:assert/strict";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { getCatalog, isJetkitError } from "@jetkit/contracts";
import { type NatsServer, startServer } from "@jetkit/testing";
import { type AuthorizationResponse, decode } from "@nats-io/jwt";
import { createAccount, createCurve, type KeyPair } from "@nats-io/nkeys";
import { connect, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { pino } from "pino";
import { type Gateway, startGateway } from "../src/gateway.js";
import { type AuthCallout, SERVER_XKEY_HEADER, startAuthCallout } from "../src/nats-auth/callout.js";
import { issueClientCert } from "../src/pki/pki.js";
import { parsePolicy } from "../src/policy/policy.js";
import { AGREE_POLICY, BOB, natsAllows, natsClient } from "./agreement.js";
import { makePki, natsWithStreams, silent, type TestPki, tempDir, writePolicy } from "./helpers.js";

const catalog = getCatalog();
const policy = parsePolicy(AGREE_POLICY);
const seedOf = (kp: KeyPair) => new TextDecoder().decode(kp.getSeed());

/** nats-server with auth callout; `xkey` turns on encrypted requests. */
function calloutConfig(pki: TestPki, issuer: KeyPair, xkey?: KeyPair, authTimeout = 3): string {
  return `
tls { cert_file: "${pki.paths.serverCert}", key_file: "${pki.paths.serverKey}", ca_file: "${pki.paths.caCert}", verify: true, timeout: 2 }
accounts {
  AUTH { users: [ { user: auth, password: auth-secret } ] }
  APP { jetstream: enabled }
  SYS {}
}
system_account: SYS
authorization {
  timeout: ${authTimeout}
  auth_callout {
    issuer: ${issuer.getPublicKey()}
    users: [ auth ]
    account: AUTH
    ${xkey ? `xkey: ${xkey.getPublicKey()}` : ""}
  }
}
`;
}

/** A pino logger whose lines the test can await. */
function recordingLogger() {
  const lines: Record<string, unknown>[] = [];
  const waiters: {
    match: (l: Record<string, unknown>) => boolean;
    resolve: (l: Record<string, unknown>) => void;
  }[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const text of String(chunk).split("\n").filter(Boolean)) {
        const line = JSON.parse(text) as Record<string, unknown>;
        lines.push(line);
        for (const w of [...waiters])
          if (w.match(line)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(line);
          }
      }
      done();
    },
  });
  return {
    logger: pino({ level: "info" }, stream),
    lines,
    next(match: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
      const seen = lines.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve) => waiters.push({ match, resolve }));
    },
  };
}

describe("NATS auth callout with xkey: requests and answers encrypted with curve keys", () => {
  let dir: { dir: string; remove: () => Promise<void> };
  let pki: TestPki;
  const issuer = createAccount();
  const xkey = createCurve();
  let encrypted: NatsServer;
  let wrongKey: NatsServer;
  let backing: Awaited<ReturnType<typeof natsWithStreams>>;
  let gw: Gateway;
  let spy: NatsConnection;
  const seen: { request?: Msg; answer?: Msg } = {};
  const auth = { user: "auth", pass: "auth-secret" };
  let tls: { caFile: string; certFile: string; keyFile: string };

  before(async () => {
    dir = await tempDir("xkey");
    pki = await makePki(join(dir.dir, "pki"));
    encrypted = await startServer({ config: calloutConfig(pki, issuer, xkey) });
    // a server configured with another curve key than the gateway's
    wrongKey = await startServer({ config: calloutConfig(pki, issuer, createCurve(), 1) });
    backing = await natsWithStreams();
    // the server requires a certificate of every client, its auth users included
    const own = await issueClientCert(pki.paths.dir, { name: "callout", dn: { O: "jetkit", CN: "callout" } });
    tls = { caFile: pki.paths.caCert, certFile: own.cert, keyFile: own.key };
    // what travels on the wire: a second auth user sees the request and, on the server's
    // reply inbox, the answer
    spy = await connect({ servers: encrypted.url, ...auth, tls });
    spy.subscribe("$SYS.REQ.USER.AUTH", {
      callback: (_e, m) => {
        seen.request ??= m;
      },
    });
    spy.subscribe("$SYS._INBOX.>", {
      callback: (_e, m) => {
        seen.answer ??= m;
      },
    });
    await spy.flush();
    gw = await startGateway({
      listen: { port: 0 },
      admin: false,
      tls: { cert: pki.paths.serverCert, key: pki.paths.serverKey, ca: pki.paths.caCert, watch: false },
      policy: { file: await writePolicy(dir.dir, AGREE_POLICY), watch: false },
      nats: { servers: backing.server.url },
      authCallout: {
        nats: { servers: encrypted.url, ...auth, tls },
        issuerSeed: seedOf(issuer),
        xkeySeed: seedOf(xkey),
        account: "APP",
      },
      logger: silent,
    });
  });

  after(async () => {
    await gw?.close();
    await spy?.close();
    await backing?.nc.close();
    await backing?.server.stop();
    await encrypted?.stop();
    await wrongKey?.stop();
    await dir?.remove();
  });

  test("a client connects through the encrypted callout and gets exactly its policy's permissions", async () => {
    const bob = await natsClient(encrypted, pki, pki.bob);
    try {
      assert.equal((await natsAllows(bob, "subscribe", "order.>"))[0], true);
      assert.equal((await natsAllows(bob, "publish", "customer.checkout.initiated"))[0], false);
      assert.equal((await natsAllows(bob, "subscribe", "payment.>"))[0], false);
    } finally {
      await bob.nc.close();
    }
    assert.equal(gw.authCallout?.decided.allowed, 1);
    // the request was sealed to the gateway's xkey: not a readable JWT on the wire
    const req = seen.request!;
    const serverXkey = req.headers?.get(SERVER_XKEY_HEADER) ?? "";
    assert.match(serverXkey, /^X[A-Z2-7]{55}$/);
    assert.ok(!req.string().startsWith("eyJ"), "the request is encrypted");
    const opened = xkey.open(req.data, serverXkey);
    assert.ok(opened, "the request opens with the gateway's xkey");
    const claims = decode<{ server_id: { xkey: string } }>(new TextDecoder().decode(opened!));
    assert.equal(claims.nats.server_id?.xkey, serverXkey);
    // the answer was sealed to the server's key: opened with the same shared key
    const ans = seen.answer!;
    assert.ok(!ans.string().startsWith("eyJ"), "the answer is encrypted");
    const answer = decode<AuthorizationResponse>(new TextDecoder().decode(xkey.open(ans.data, serverXkey)!));
    assert.ok(answer.nats.jwt, "the answer carries the user JWT");
    assert.equal(decode<unknown>(answer.nats.jwt!).name, BOB);
  });

  test("wrong xkey: no client can connect, and the gateway logs JK_GATEWAY_AUTH_CALLOUT", async () => {
    const rec = recordingLogger();
    const nc = await connect({ servers: wrongKey.url, ...auth, tls });
    let callout: AuthCallout | undefined;
    try {
      callout = startAuthCallout({
        nc,
        issuerSeed: seedOf(issuer),
        xkeySeed: seedOf(xkey),
        account: "APP",
        policy: () => policy,
        catalog: catalog,
        identity: { source: "spiffe-or-dn" },
        logger: rec.logger,
      });
      await nc.flush();
      const logged = rec.next((l) => l.code === "JK_GATEWAY_AUTH_CALLOUT");
      for (const cert of [pki.bob, pki.checkout]) {
        await assert.rejects(
          connect({
            servers: wrongKey.url,
            tls: { caFile: pki.paths.caCert, certFile: cert.cert, keyFile: cert.key },
            reconnect: false,
          }),
          /authorization|timeout/i,
        );
      }
      const line = await logged;
      assert.equal(line.level, 50, "logged at error level");
      assert.match(String(line.msg), /cannot decrypt an auth callout request/);
      assert.match(String(line.msg), new RegExp(xkey.getPublicKey()), "names the key the gateway expects");
      assert.equal(callout.decided.allowed, 0);
      assert.equal(callout.decided.unreadable, 2);
      await callout.stop();

      // the server encrypts but the gateway has no xkeySeed: told what to configure
      const rec2 = recordingLogger();
      callout = startAuthCallout({
        nc,
        issuerSeed: seedOf(issuer),
        account: "APP",
        policy: () => policy,
        catalog: catalog,
        identity: { source: "spiffe-or-dn" },
        logger: rec2.logger,
      });
      await nc.flush();
      const noSeed = rec2.next((l) => l.code === "JK_GATEWAY_AUTH_CALLOUT");
      await assert.rejects(
        connect({
          servers: wrongKey.url,
          tls: { caFile: pki.paths.caCert, certFile: pki.bob.cert, keyFile: pki.bob.key },
          reconnect: false,
        }),
        /authorization|timeout/i,
      );
      assert.match(String((await noSeed).msg), /authCallout\.xkeySeed is not set/);
    } finally {
      await callout?.stop();
      await nc.close();
    }
  });

  test("a malformed seed is refused at start with JK_GATEWAY_CONFIG", async () => {
    const nc = await connect({ servers: wrongKey.url, ...auth, tls });
    try {
      const base = {
        nc,
        account: "APP",
        policy: () => policy,
        catalog: catalog,
        identity: { source: "spiffe-or-dn" as const },
        logger: silent,
      };
      for (const [issuerSeed, xkeySeed, key] of [
        [seedOf(issuer), seedOf(issuer), "xkeySeed"], // an account seed where a curve seed belongs
        [seedOf(issuer), "SXnot-a-seed", "xkeySeed"],
        [seedOf(xkey), seedOf(xkey), "issuerSeed"],
      ] as const) {
        assert.throws(
          () => startAuthCallout({ ...base, issuerSeed, xkeySeed }),
          (err: unknown) =>
            isJetkitError(err, "JK_GATEWAY_CONFIG") && (err as Error).message.includes(`authCallout.${key}`),
          key,
        );
      }
    } finally {
      await nc.close();
    }
  });
});
