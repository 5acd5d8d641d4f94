import assert from "node:assert/strict";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { copyFile, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { connect as connectTls } from "node:tls";
import type { NatsServer } from "@jetkit/testing";
import type { NatsConnection } from "@nats-io/transport-node";
import { type Gateway, startGateway } from "../src/gateway.js";
import { initPki, issueClientCert, issueServerCert, revokeClientCert } from "../src/pki/pki.js";
import {
  clientAgent,
  eventually,
  forgeClientCert,
  https,
  LEAF_EXT,
  makePki,
  natsWithStreams,
  silent,
  type TestPki,
  tempDir,
  writePolicy,
} from "./helpers.js";

describe("transport and identity (real TLS)", () => {
  let dir: { dir: string; remove: () => Promise<void> };
  let pki: TestPki;
  let nats: { server: NatsServer; nc: NatsConnection };
  let gw: Gateway;
  let caBundle2: string;
  let crl2: string;
  const certs: Record<string, Awaited<ReturnType<typeof issueClientCert>>> = {};

  before(async () => {
    dir = await tempDir("transport");
    pki = await makePki(join(dir.dir, "pki"));
    const d = pki.paths.dir;
    const day = 86_400_000;
    certs.expired = await issueClientCert(
      d,
      { name: "expired", spiffeId: "spiffe://jetkit.dev/expired" },
      { notBefore: new Date(Date.now() - 10 * day), notAfter: new Date(Date.now() - day) },
    );
    certs.notYet = await issueClientCert(
      d,
      { name: "notyet", spiffeId: "spiffe://jetkit.dev/notyet" },
      { notBefore: new Date(Date.now() + 5 * day), days: 10 },
    );
    certs.wrongUsage = await issueClientCert(
      d,
      { name: "wrongusage", spiffeId: "spiffe://jetkit.dev/wrongusage" },
      { extendedKeyUsage: "serverAuth" },
    );
    certs.revoked = await issueClientCert(d, { name: "revoked", spiffeId: "spiffe://jetkit.dev/revoked" });
    await revokeClientCert(d, "revoked");
    certs.late = await issueClientCert(d, { name: "late", spiffeId: "spiffe://jetkit.dev/late" });
    certs.twoUris = await issueClientCert(d, {
      name: "twouris",
      spiffeId: "spiffe://jetkit.dev/a",
      extraUris: ["spiffe://jetkit.dev/b"],
    });
    certs.notSpiffe = await issueClientCert(d, { name: "notspiffe", extraUris: ["https://example.com/x"] });
    certs.emptySubject = await forgeClientCert(pki.paths, "empty", "/", [
      ...LEAF_EXT,
      "subjectAltName = DNS:client.example",
    ]);
    certs.caLeaf = await forgeClientCert(pki.paths, "caleaf", "/O=X/CN=ca-leaf", [
      "basicConstraints = critical, CA:true",
      ...LEAF_EXT.slice(1),
    ]);
    certs.noEku = await forgeClientCert(pki.paths, "noeku", "/O=X/CN=no-eku", LEAF_EXT.slice(0, 2));
    const other = await initPki(join(dir.dir, "other"), { caName: "someone else" });
    certs.unknownCa = await issueClientCert(other.dir, {
      name: "stranger",
      spiffeId: "spiffe://jetkit.dev/checkout",
    });
    // Second CA bundle slot, filled later with a new CA (rotation); starts as a copy of the first.
    caBundle2 = join(dir.dir, "ca2.pem");
    await copyFile(pki.paths.caCert, caBundle2);
    crl2 = join(dir.dir, "crl2.pem");
    await copyFile(pki.paths.crl, crl2);
    nats = await natsWithStreams();
    gw = await startGateway({
      admin: { port: 0 },
      listen: { port: 0 },
      tls: {
        cert: pki.paths.serverCert,
        key: pki.paths.serverKey,
        ca: [pki.paths.caCert, caBundle2],
        crl: [pki.paths.crl, crl2],
      },
      policy: { file: await writePolicy(dir.dir) },
      nats: { servers: nats.server.url },
      logger: silent,
      reloadDebounceMs: 50,
    });
  });

  after(async () => {
    await gw?.close();
    await nats?.nc.close();
    await nats?.server.stop();
    await dir?.remove();
  });

  const whoami = (cert?: Awaited<ReturnType<typeof issueClientCert>>) =>
    https(gw.url, clientAgent(pki.paths.caCert, cert), { path: "/v1/whoami" });

  test("a SPIFFE certificate maps to its SPIFFE ID", async () => {
    const res = await whoami(pki.checkout);
    assert.equal(res.status, 200);
    assert.deepEqual(
      { ...res.json(), serial: undefined },
      {
        principal: "spiffe://jetkit.dev/checkout",
        kind: "spiffe",
        serial: undefined,
      },
    );
  });

  test("a certificate without URI SAN maps to its subject DN (RFC 4514 order)", async () => {
    const res = await whoami(pki.bob);
    assert.equal(res.status, 200);
    assert.equal(res.json().principal, "CN=bob,OU=ops,O=jetkit");
    assert.equal(res.json().kind, "dn");
  });

  for (const [name, why] of [
    ["missing", "no certificate"],
    ["unknownCa", "unknown CA"],
    ["expired", "expired"],
    ["notYet", "not yet valid"],
    ["revoked", "revoked (CRL)"],
    ["wrongUsage", "extendedKeyUsage serverAuth only"],
  ] as const) {
    test(`a connection with a ${why} certificate never reaches a handler`, async () => {
      const before = await gw.metrics.value("jetkit.gateway.requests");
      await assert.rejects(whoami(name === "missing" ? undefined : certs[name]));
      assert.equal(
        await gw.metrics.value("jetkit.gateway.requests"),
        before,
        "no request was counted: nothing reached Fastify",
      );
    });
  }

  test("certificates the TLS stack accepts but that name no valid principal are 401 with a JSON code, never 500", async () => {
    // several URI SANs, a non-SPIFFE URI, an empty subject, a CA:TRUE leaf, no extendedKeyUsage
    for (const c of [certs.twoUris, certs.notSpiffe, certs.emptySubject, certs.caLeaf, certs.noEku]) {
      const res = await whoami(c);
      assert.equal(res.status, 401);
      assert.equal(res.json().error.code, "JK_GATEWAY_UNAUTHENTICATED");
    }
  });

  test("an over-large request head gets 431 as coded JSON with Connection: close, and the connection is ended cleanly", async () => {
    const socket = connectTls({
      host: "127.0.0.1",
      port: gw.port,
      ca: readFileSync(pki.paths.caCert),
      cert: readFileSync(pki.checkout.cert),
      key: readFileSync(pki.checkout.key),
      servername: "localhost",
    });
    const chunks: Buffer[] = [];
    const ended = new Promise<"end" | Error>((resolve) => {
      socket.on("data", (c: Buffer) => chunks.push(c));
      socket.on("end", () => resolve("end"));
      socket.on("error", (err) => resolve(err));
    });
    await once(socket, "secureConnect");
    socket.write(`GET /v1/whoami HTTP/1.1\r\nHost: x\r\nX-Pad: ${"a".repeat(20_000)}\r\n\r\n`);
    assert.equal(await ended, "end", "the server ends the connection (no reset)");
    socket.destroy();
    const text = Buffer.concat(chunks).toString("utf8");
    const [head, body] = text.split("\r\n\r\n");
    assert.match(head!, /^HTTP\/1\.1 431 /);
    assert.match(head!, /\r\nConnection: close/i);
    assert.match(head!, /\r\nContent-Type: application\/json/i);
    assert.equal(JSON.parse(body!).error.code, "JK_GATEWAY_HEADERS_TOO_LARGE");
  });

  test("a certificate revoked while running is refused once the CRL file changes", async () => {
    assert.equal((await whoami(certs.late)).status, 200);
    const reloads = gw.tls.reloads;
    await revokeClientCert(pki.paths.dir, "late");
    await eventually(() => gw.tls.reloads > reloads, 5000, "CRL reload");
    await eventually(
      () =>
        whoami(certs.late).then(
          () => false,
          () => true,
        ),
      5000,
      "revoked certificate refused",
    );
    assert.equal((await whoami(pki.checkout)).status, 200, "other certificates still work");
  });

  test("server certificate rotation: new connections see the new one, an open keep-alive connection survives", async () => {
    const kept = clientAgent(pki.paths.caCert, pki.checkout, { keepAlive: true });
    const first = await https(gw.url, kept, { path: "/v1/whoami" });
    assert.equal(first.status, 200);
    const oldSerial = first.serial;
    const reloads = gw.tls.reloads;
    const next = await issueServerCert(pki.paths.dir);
    await eventually(() => gw.tls.reloads > reloads, 5000, "TLS reload");
    let fresh = await whoami(pki.checkout);
    await eventually(
      async () => {
        fresh = await whoami(pki.checkout);
        return fresh.serial?.toUpperCase() === next.serial.toUpperCase();
      },
      5000,
      "new connections present the new server certificate",
    );
    const again = await https(gw.url, kept, { path: "/v1/whoami" });
    assert.equal(again.status, 200, "the keep-alive connection opened before rotation still works");
    assert.equal(again.serial, oldSerial, "...and is the same connection (old certificate)");
    kept.destroy();
  });

  test("CA rotation: a client of a new CA is accepted once the CA bundle lists it, without restart", async () => {
    const next = await initPki(join(dir.dir, "next-ca"), { caName: "next CA" });
    const client = await issueClientCert(next.dir, {
      name: "newcomer",
      spiffeId: "spiffe://jetkit.dev/newcomer",
    });
    await assert.rejects(whoami(client));
    // With CRLs configured, OpenSSL wants a CRL from every CA of the chain: ship the new CA's too.
    await writeFile(crl2, await readFile(next.crl));
    await writeFile(caBundle2, await readFile(next.caCert));
    await eventually(
      () =>
        whoami(client).then(
          (r) => r.status === 200,
          () => false,
        ),
      5000,
      "client of the new CA accepted",
    );
    assert.equal((await whoami(pki.checkout)).status, 200, "clients of the first CA still accepted");
  });
});
