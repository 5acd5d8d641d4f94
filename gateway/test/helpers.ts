import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { Agent, request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { getCatalog } from "@jetkit/contracts";
import { type NatsServer, startServer } from "@jetkit/testing";
import { jetstreamManager, StorageType } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { pino } from "pino";
import { openssl } from "../src/pki/openssl.js";
import { type IssuedCert, initPki, issueClientCert, type PkiPaths } from "../src/pki/pki.js";

export const silent = pino({ level: process.env.JETKIT_TEST_LOG ?? "silent" });

/** A fresh temp dir, removed by the returned function. */
export async function tempDir(prefix: string): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `jetkit-gw-${prefix}-`));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** A dev PKI with the principals the tests use. */
export interface TestPki {
  paths: PkiPaths;
  checkout: IssuedCert; // spiffe://jetkit.dev/checkout
  bob: IssuedCert; // DN CN=bob,OU=ops,O=jetkit
}

export async function makePki(dir: string): Promise<TestPki> {
  const paths = await initPki(dir);
  const checkout = await issueClientCert(dir, { name: "checkout", spiffeId: "spiffe://jetkit.dev/checkout" });
  const bob = await issueClientCert(dir, { name: "bob", dn: { O: "jetkit", OU: "ops", CN: "bob" } });
  return { paths, checkout, bob };
}

/**
 * A client certificate made by hand with openssl, signed by the dev CA: `subj` as `openssl -subj`
 * takes it (`/` for an empty subject, `+` for a multi-valued RDN), `ext` the extension lines as
 * written (nothing else is added). For adversarial certificates the dev PKI refuses to issue.
 */
export async function forgeClientCert(
  paths: PkiPaths,
  name: string,
  subj: string,
  ext: readonly string[],
): Promise<IssuedCert> {
  const base = join(paths.dir, "clients", name);
  await openssl(
    ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", `${base}.key`],
    paths.dir,
  );
  await openssl(
    ["req", "-new", "-utf8", "-multivalue-rdn", "-key", `${base}.key`, "-subj", subj, "-out", `${base}.csr`],
    paths.dir,
  );
  await writeFile(`${base}.ext`, `[ ext ]\n${ext.join("\n")}\n`);
  const serial = Array.from({ length: 8 }, () =>
    Math.floor(Math.random() * 256)
      .toString(16)
      .padStart(2, "0"),
  ).join("");
  await openssl(
    [
      "x509",
      "-req",
      "-in",
      `${base}.csr`,
      "-CA",
      paths.caCert,
      "-CAkey",
      paths.caKey,
      "-set_serial",
      `0x7${serial}`,
      "-days",
      "2",
      "-extfile",
      `${base}.ext`,
      "-extensions",
      "ext",
      "-out",
      `${base}.crt`,
    ],
    paths.dir,
  );
  return { name, cert: `${base}.crt`, key: `${base}.key`, serial: `7${serial}`.toUpperCase() };
}

/** Leaf extensions of a well-formed client certificate, to build adversarial variants from. */
export const LEAF_EXT = [
  "basicConstraints = critical, CA:false",
  "keyUsage = critical, digitalSignature",
  "extendedKeyUsage = clientAuth",
] as const;

/** A nats-server with JetStream and every catalog stream (memory storage: fast, nothing left behind). */
export async function natsWithStreams(config?: string): Promise<{ server: NatsServer; nc: NatsConnection }> {
  const server = await startServer(config ? { config } : {});
  const nc = await connect({ servers: server.url });
  const jsm = await jetstreamManager(nc);
  for (const s of getCatalog().streams) {
    await jsm.streams.add({
      name: s.name,
      subjects: [...s.subjects],
      storage: StorageType.Memory,
      duplicate_window: s.duplicateWindowMs * 1_000_000,
    });
  }
  return { server, nc };
}

/** Messages in `stream` now. */
export async function streamCount(nc: NatsConnection, stream: string): Promise<number> {
  const jsm = await jetstreamManager(nc);
  return (await jsm.streams.info(stream)).state.messages;
}

/** Polls `check` until it returns true or `ms` elapse. */
export async function eventually(
  check: () => Promise<boolean> | boolean,
  ms = 5000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await delay(25);
  }
  throw new Error(`${what} not met within ${ms} ms`);
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  // biome-ignore lint/suspicious/noExplicitAny: tests read response bodies loosely
  json: () => any;
  serial?: string;
}

/** A keep-alive https agent presenting `cert` (or no certificate). */
export function clientAgent(ca: string, cert?: IssuedCert, opts: { keepAlive?: boolean } = {}): Agent {
  return new Agent({
    ca: readFileSync(ca),
    ...(cert ? { cert: readFileSync(cert.cert), key: readFileSync(cert.key) } : {}),
    keepAlive: opts.keepAlive ?? false,
    maxSockets: 1,
  });
}

/** One HTTPS request over a real TLS socket. */
export function https(
  url: string,
  agent: Agent,
  opts: { method?: string; path: string; body?: string | Buffer; headers?: Record<string, string> },
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}${opts.path}`,
      { method: opts.method ?? "GET", agent, headers: opts.headers ?? {}, timeout: 10_000 },
      (res) => {
        const serial = (res.socket as import("node:tls").TLSSocket).getPeerCertificate?.()?.serialNumber;
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const body = Buffer.concat(chunks).toString("utf8");
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            json: () => JSON.parse(body),
            serial,
          });
        });
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("request timed out")));
    req.on("error", reject);
    req.end(opts.body);
  });
}

export const POLICY = `
version: 1
roles:
  checkout-writer:
    publish: [customer.checkout.initiated, customer.account.*]
    subscribe: [customer.>]
  order-reader:
    subscribe: [order.>]
  fulfillment:
    publish: [order.fulfillment.*, order.lifecycle.cancelled]
    subscribe: [order.fulfillment.*]
bindings:
  - principal: spiffe://jetkit.dev/checkout
    roles: [checkout-writer, fulfillment]
  - principal: "CN=bob,OU=ops,O=jetkit"
    roles: [order-reader]
  - principals: ["spiffe://jetkit.dev/team-a/*"]
    roles: [order-reader]
deny:
  - principal: spiffe://jetkit.dev/checkout
    publish: [order.lifecycle.cancelled]
    subscribe: [customer.checkout.>]
    reason: checkout never cancels orders and must not read other checkouts
`;

export async function writePolicy(dir: string, text = POLICY, name = "policy.yaml"): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, text);
  return file;
}

/** A valid OrderFulfillmentCompleted in protobuf JSON. */
export function completedJson(orderId = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"): Record<string, unknown> {
  return {
    orderId,
    checkoutId: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c",
    shipments: [{ shipmentId: "s1", carrier: "CARRIER_DHL", trackingNumber: "T1", skus: ["sku-1"] }],
    completedAt: "2025-01-02T03:04:05Z",
  };
}
