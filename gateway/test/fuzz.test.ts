import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Agent, request } from "node:https";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { connect as connectTls } from "node:tls";
import { getCatalog } from "@jetkit/contracts";
import type { NatsServer } from "@jetkit/testing";
import type { NatsConnection } from "@nats-io/transport-node";
import { type Gateway, startGateway } from "../src/gateway.js";
import {
  completedJson,
  makePki,
  natsWithStreams,
  silent,
  streamCount,
  type TestPki,
  tempDir,
  writePolicy,
} from "./helpers.js";

// Thousands of malformed requests over real mTLS, from a seeded generator (JETKIT_FUZZ_SEED
// replays a run, JETKIT_FUZZ_REQUESTS sizes it). Bounded: a few seconds on 2 cores.
const SEED = Number(process.env.JETKIT_FUZZ_SEED ?? Date.now() % 1_000_000);
const REQUESTS = Number(process.env.JETKIT_FUZZ_REQUESTS ?? 3000);
const CONNECTIONS = 8;

/** mulberry32: small, seedable, good enough to pick cases. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const catalog = getCatalog();

interface FuzzRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string | Buffer | undefined;
  kind: "publish" | "other";
}

function generator(rand: () => number) {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const chars = (alphabet: string, n: number) =>
    Array.from({ length: n }, () => alphabet[Math.floor(rand() * alphabet.length)]).join("");
  const subjects = catalog.events.map((e) => e.subject);
  const token = () =>
    pick([
      () => pick(subjects).split(".")[Math.floor(rand() * 3)]!,
      () => chars("abcxyz019_-", 1 + Math.floor(rand() * 8)),
      () => pick(["*", ">", "", " ", "%2A", "%3E", "%2e", "..", "\u00e9", "%00", "%zz", "%", "%C3%28", "A"]),
      () => chars("abc", 300),
      () => encodeURIComponent(chars("\u0000\u0001 !\"#$&'()+,/:;<=>?@[\\]^`{|}~\u00ff\u4e2d", 4)),
    ])();
  const subject = () =>
    pick([
      () => pick(subjects),
      () => pick(subjects).replace(/[^.]+$/, token()),
      () => Array.from({ length: Math.floor(rand() * 6) }, token).join("."),
      () => `${pick(subjects)}.${token()}`,
      () => `${"x.".repeat(Math.floor(rand() * 40))}y`,
      () => chars("a.", 4097),
    ])();
  const contentType = () =>
    pick([
      "application/json",
      "application/protobuf",
      "application/x-protobuf",
      "application/json; charset=utf-8",
      "application/json; charset=latin1",
      "APPLICATION/JSON",
      "text/plain",
      "multipart/form-data; boundary=x",
      "application/x-www-form-urlencoded",
      "",
      "application/json\u00ff",
      chars("a/b;=", 20),
    ]);
  const json = () => {
    const e: Record<string, unknown> = completedJson();
    const mutate = pick([
      () => e,
      () => ({ ...e, orderId: pick([42, null, "", "not-a-uuid", [], {}, true, chars("a", 10_000)]) }),
      () => ({ ...e, [chars("abc", 5)]: 1 }),
      () => ({
        ...e,
        shipments: pick([null, "x", [null], [{}], [{ carrier: "NOPE" }], Array(200).fill({})]),
      }),
      () => ({ ...e, completedAt: pick(["yesterday", "2025-13-45T00:00:00Z", 0, "9999-12-31T23:59:59Z"]) }),
      () => pick([null, [], "string", 1, true, {}]),
      () => JSON.parse(`${"[".repeat(500)}${"]".repeat(500)}`),
    ]);
    return JSON.stringify(mutate());
  };
  const body = (): string | Buffer | undefined =>
    pick([
      () => undefined,
      json,
      json,
      () => "",
      () => "{",
      () => "\u0000\u0001\u0002",
      () => Buffer.from(Array.from({ length: Math.floor(rand() * 64) }, () => Math.floor(rand() * 256))),
      () => `{"pattern": ${JSON.stringify(subject())}}`,
      () => "null",
      () => "x".repeat(5000),
    ])();
  const headerValue = () =>
    pick([
      "ok-1",
      chars("abc-_.:", 20),
      "has space",
      "\u0001x",
      chars("a", 300),
      "",
      "\u00e9\u00e9",
      "1",
      "-1",
      "99999999999999999999",
    ]);
  return (): FuzzRequest => {
    const headers: Record<string, string> = {};
    if (rand() < 0.8) headers["content-type"] = contentType();
    for (const h of ["idempotency-key", "x-correlation-id", "x-causation-id", "last-event-id"]) {
      if (rand() < 0.25) headers[h] = headerValue();
    }
    if (rand() < 0.05) headers["accept"] = "text/event-stream";
    if (rand() < 0.05) headers["x-forwarded-for"] = "10.0.0.1";
    const shape = Math.floor(rand() * 10);
    if (shape === 0) {
      // close to valid: the one event the test policy lets checkout publish, its body mutated
      return {
        method: "POST",
        path: "/v1/events/order.fulfillment.completed",
        headers: {
          ...headers,
          "content-type": pick(["application/json", "application/json; charset=utf-8"]),
        },
        body: json(),
        kind: "publish",
      };
    }
    if (shape <= 3) {
      return {
        method: pick(["POST", "POST", "POST", "PUT", "GET"]),
        path: `/v1/events/${subject()}`,
        headers,
        body: body(),
        kind: "publish",
      };
    }
    const path = pick([
      () =>
        `/v1/events/${subject()}/stream?from_seq=${pick(["x", "-1", "0", "1.5", "", "%zz", chars("9", 20)])}`,
      () => `/v1/consumers/${pick(["c1", token(), chars("a", 40), "%2F", ""])}`,
      () =>
        `/v1/consumers/${pick(["c1", token()])}/fetch?batch=${pick(["0", "1", "x", "-5", "100000", "1e3"])}&wait_ms=${pick(["0", "999", "x", "99999999"])}`,
      () =>
        `/v1/acks/${pick([chars("abcXYZ019-_.", 40), "a.b", ".", "..", token(), "eyJ4IjoxfQ.AAAA"])}?action=${pick(["ack", "nak", "term", "constructor", "__proto__", "toString", "valueOf", "", "ACK"])}`,
      () => `/${token()}/${token()}`,
      () =>
        pick([
          "/",
          "/v1",
          "/v1/",
          "/v1/whoami?x=%zz",
          "/healthz",
          "/readyz",
          "/metrics",
          "//v1/whoami",
          "/v1/events",
          "/v1/events/",
        ]),
      () => `/v1/events/${subject()}?${chars("a=&%", 30)}`,
    ])();
    const method = pick(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]);
    return {
      method,
      path,
      headers,
      body: method === "GET" || method === "HEAD" ? undefined : body(),
      kind: "other",
    };
  };
}

interface Answer {
  status: number;
  contentType: string;
  body: string;
}

function send(url: string, agent: Agent, r: FuzzRequest): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let req: ReturnType<typeof request>;
    try {
      req = request(
        `${url}${r.path}`,
        { method: r.method, agent, headers: r.headers, timeout: 15_000 },
        (res) => {
          const ct = String(res.headers["content-type"] ?? "");
          if (ct.startsWith("text/event-stream")) {
            // an allowed subscription: it stays open by design
            res.destroy();
            resolve({ status: res.statusCode ?? 0, contentType: ct, body: "" });
            return;
          }
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              contentType: ct,
              body: Buffer.concat(chunks).toString("utf8"),
            }),
          );
          res.on("error", reject);
        },
      );
    } catch (err) {
      // Node's client refuses some generated values itself (e.g. control characters in a header)
      resolve({ status: -1, contentType: "", body: String(err) });
      return;
    }
    req.on("timeout", () => req.destroy(new Error(`timed out: ${r.method} ${r.path.slice(0, 100)}`)));
    req.on("error", reject);
    req.end(r.body);
  });
}

/** One raw request over TLS; everything the server sends until it closes or answers. */
async function raw(port: number, pki: TestPki, bytes: string): Promise<string> {
  const socket = connectTls({
    host: "127.0.0.1",
    port,
    ca: readFileSync(pki.paths.caCert),
    cert: readFileSync(pki.checkout.cert),
    key: readFileSync(pki.checkout.key),
    servername: "localhost",
  });
  const chunks: Buffer[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(Buffer.concat(chunks).toString("utf8"));
    }, 3000);
    socket.on("secureConnect", () => socket.write(bytes));
    socket.on("data", (c: Buffer) => {
      chunks.push(c);
      // one complete answer is enough (keep-alive would otherwise hold the socket)
      const text = Buffer.concat(chunks).toString("utf8");
      const head = text.indexOf("\r\n\r\n");
      const len = /content-length: (\d+)/i.exec(text)?.[1];
      if (head >= 0 && len !== undefined && text.length >= head + 4 + Number(len)) {
        clearTimeout(timer);
        socket.destroy();
        resolve(text);
      }
    });
    socket.on("end", () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString("utf8"));
    });
    socket.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

function assertCoded(a: Answer, what: string, head = false): void {
  assert.ok(a.status < 500, `${what}: ${a.status} ${a.body.slice(0, 300)}`);
  if (a.status >= 400) {
    assert.match(a.contentType, /^application\/json/, `${what}: ${a.status} is JSON`);
    if (head) return; // a HEAD answer has no body by definition
    const code = (JSON.parse(a.body) as { error?: { code?: unknown } }).error?.code;
    assert.match(String(code), /^JK_GATEWAY_[A-Z_]+$/, `${what}: ${a.body.slice(0, 300)}`);
  }
}

describe(`fuzz: ${REQUESTS} malformed requests over mTLS (seed ${SEED})`, () => {
  let dir: { dir: string; remove: () => Promise<void> };
  let pki: TestPki;
  let nats: { server: NatsServer; nc: NatsConnection };
  let gw: Gateway;

  before(async () => {
    dir = await tempDir("fuzz");
    pki = await makePki(join(dir.dir, "pki"));
    nats = await natsWithStreams();
    gw = await startGateway({
      admin: { port: 0 },
      listen: { port: 0 },
      tls: { cert: pki.paths.serverCert, key: pki.paths.serverKey, ca: pki.paths.caCert },
      policy: { file: await writePolicy(dir.dir), watch: false },
      nats: { servers: nats.server.url },
      limits: { ratePerSecond: 0, bodyBytes: 4096 },
      logger: silent,
    });
  });

  after(async () => {
    await gw?.close();
    await nats?.nc.close();
    await nats?.server.stop();
    await dir?.remove();
  });

  const eventStreams = () => catalog.streams.map((s) => s.name).filter((n) => n !== "AUDIT");
  const stored = async () => {
    let n = 0;
    for (const s of eventStreams()) n += await streamCount(nats.nc, s);
    return n;
  };

  test("no 5xx, every error is coded JSON, the process stays healthy, and every 201 is one stored event", async () => {
    const next = generator(prng(SEED));
    const before = await stored();
    let created = 0;
    let sent = 0;
    const statuses = new Map<number, number>();
    const agents = [pki.checkout, pki.bob].flatMap((cert) =>
      Array.from({ length: CONNECTIONS / 2 }, () => {
        const a = new Agent({
          ca: readFileSync(pki.paths.caCert),
          cert: readFileSync(cert.cert),
          key: readFileSync(cert.key),
          keepAlive: true,
          maxSockets: 1,
        });
        return a;
      }),
    );
    const headAgent = new Agent({
      ca: readFileSync(pki.paths.caCert),
      cert: readFileSync(pki.checkout.cert),
      key: readFileSync(pki.checkout.key),
      keepAlive: false,
    });
    try {
      await Promise.all(
        agents.map(async (agent) => {
          let previous = "";
          while (sent < REQUESTS) {
            sent++;
            const r = next();
            const what = `${r.method} ${r.path.slice(0, 200)} ${JSON.stringify(r.headers)} (seed ${SEED})`;
            // Node's own client misparses a HEAD answer on a reused keep-alive socket ("Data
            // after Connection: close" with no such header sent): HEAD gets a connection of its own.
            const a = await send(gw.url, r.method === "HEAD" ? headAgent : agent, r).catch((err: Error) => {
              throw new Error(`${what}: ${err.message} (previous on this connection: ${previous})`, {
                cause: err,
              });
            });
            previous = `${what} -> ${a.status}`;
            statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
            if (a.status === -1) continue;
            assertCoded(a, what, r.method === "HEAD");
            if (r.kind === "publish" && r.method === "POST" && a.status === 201) created++;
          }
        }),
      );
    } finally {
      for (const a of agents) a.destroy();
      headAgent.destroy();
    }
    silent.info({ statuses: Object.fromEntries(statuses) }, "fuzz statuses");
    assert.ok(created > 0, "some generated events were valid and published");
    assert.equal(await stored(), before + created, "stream message counts equal the 201 answers");
    const ready = await fetch(`${gw.adminUrl}/readyz`);
    assert.equal(ready.status, 200, "the gateway is still ready");
    assert.equal((await fetch(`${gw.adminUrl}/healthz`)).status, 200);
  });

  test("malformed HTTP heads get coded JSON answers (or a clean close), never a 5xx", async () => {
    const heads = [
      `GET /v1/whoami HTTP/1.1\r\nHost: x\r\nX-Pad: ${"a".repeat(20_000)}\r\n\r\n`,
      "GET /v1/whoami HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
      "NOPE\r\n\r\n",
      "GET /v1/whoami HTTP/9.9\r\nHost: x\r\n\r\n",
      "POST /v1/events/order.fulfillment.completed HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "POST /v1/events/order.fulfillment.completed HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
      "POST /v1/events/order.fulfillment.completed HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "GET /v1/whoami HTTP/1.1\nHost: x\n\n",
      "GET http://evil.example/v1/whoami HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /v1/whoami HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
      "GET /v1/\u0000whoami HTTP/1.1\r\nHost: x\r\n\r\n",
      `GET /${"a".repeat(70_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
    ];
    for (const h of heads) {
      const text = await raw(gw.port, pki, h);
      if (text === "") continue; // closed without an answer: nothing to parse, nothing leaked
      const [head, ...rest] = text.split("\r\n\r\n");
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head!)?.[1]);
      const ct = /\r\ncontent-type: ([^\r\n]+)/i.exec(head!)?.[1] ?? "";
      assertCoded({ status, contentType: ct, body: rest.join("\r\n\r\n") }, JSON.stringify(h.slice(0, 80)));
    }
  });
});
