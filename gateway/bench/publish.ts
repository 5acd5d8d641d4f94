// Gateway publish throughput over mTLS (keep-alive, concurrent clients) against, in the same run,
// a bare Fastify mTLS endpoint that does nothing, and the producer SDK publishing directly.
// The HTTPS clients run in a child process (as real clients would: not in the server's process),
// so each side's CPU per request is measured apart: the server process (gateway or bare Fastify),
// the client process, and nats-server. `--in-process` runs the clients in the server's process
// (the harness of the earlier figures). Not a test: prints medians of several runs, per-round
// ratios and CPU per request. Run:
//   cd gateway && tsc -b && node dist/bench/publish.js [--runs 5] [--requests 2000] [--clients 16] [--in-process]
import { fork } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:https";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fromJson, toBinary } from "@bufbuild/protobuf";
import { getCatalog } from "@jetkit/contracts";
import { createProducer } from "@jetkit/producers";
import { startServer } from "@jetkit/testing";
import { jetstreamManager, StorageType } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import Fastify from "fastify";
import { pino } from "pino";
import { initPki, issueClientCert, startGateway } from "../src/index.js";
import { completedJson, tempDir } from "../test/helpers.js";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    requests: { type: "string", default: "2000" },
    clients: { type: "string", default: "16" },
    "in-process": { type: "boolean", default: false },
    driver: { type: "boolean", default: false },
    // profile one side alone: node --cpu-prof dist/bench/publish.js --only gateway
    only: { type: "string" },
  },
});
const RUNS = Number(values.runs);
const REQUESTS = Number(values.requests);
const CLIENTS = Number(values.clients);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** CPU of this process so far, µs (user + system). */
function cpuNow(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** CPU of another process so far, µs, from /proc (Linux); undefined elsewhere. */
function cpuOf(pid: number | undefined): number | undefined {
  if (!pid) return undefined;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = f.slice(f.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100; // utime + stime, USER_HZ 100
  } catch {
    return undefined;
  }
}

interface DriveJob {
  url: string;
  body: string;
  idPrefix: string;
  ca: string;
  cert: string;
  key: string;
}

/** Sends REQUESTS POSTs from CLIENTS keep-alive connections; returns requests/second. */
async function drive(url: string, agent: Agent, body: string, idPrefix: string): Promise<number> {
  let next = 0;
  const one = (i: number) =>
    new Promise<void>((resolve, reject) => {
      const req = request(
        url,
        {
          method: "POST",
          agent,
          headers: { "content-type": "application/json", "idempotency-key": `${idPrefix}-${i}` },
        },
        (res) => {
          res.resume();
          res.on("end", () =>
            res.statusCode! < 300 ? resolve() : reject(new Error(`status ${res.statusCode}`)),
          );
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (next < REQUESTS) await one(next++);
    }),
  );
  return REQUESTS / ((performance.now() - started) / 1000);
}

/** Driver mode (the child process): runs one drive per message, answers rate and its CPU. */
async function driver(): Promise<void> {
  process.on("message", async (job: DriveJob) => {
    const agent = new Agent({
      keepAlive: true,
      maxSockets: CLIENTS,
      ca: readFileSync(job.ca),
      cert: readFileSync(job.cert),
      key: readFileSync(job.key),
    });
    const c0 = cpuNow();
    try {
      const rps = await drive(job.url, agent, job.body, job.idPrefix);
      process.send!({ rps, cpuUs: cpuNow() - c0 });
    } catch (err) {
      process.send!({ error: (err as Error).message });
    } finally {
      agent.destroy();
    }
  });
}

interface Measured {
  rps: number;
  /** CPU µs per request of the server process (with the clients in it when --in-process). */
  server: number;
  /** CPU µs per request of the client process; undefined when --in-process. */
  client: number | undefined;
  /** CPU µs per request of nats-server. */
  nats: number | undefined;
}

async function main(): Promise<void> {
  const dir = await tempDir("bench");
  const server = await startServer();
  const nc = await connect({ servers: server.url });
  const jsm = await jetstreamManager(nc);
  for (const s of getCatalog().streams) {
    await jsm.streams.add({ name: s.name, subjects: [...s.subjects], storage: StorageType.File });
  }
  const pki = await initPki(join(dir.dir, "pki"));
  const client = await issueClientCert(pki.dir, { name: "bench", spiffeId: "spiffe://jetkit.dev/bench" });
  const policyFile = join(dir.dir, "policy.yaml");
  writeFileSync(
    policyFile,
    "roles:\n  w:\n    publish: [order.>]\nbindings:\n  - principal: spiffe://jetkit.dev/bench\n    roles: [w]\n",
  );
  const logger = pino({ level: "warn" });
  const gateway = await startGateway({
    admin: { port: 0 },
    listen: { port: 0 },
    tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.caCert, crl: pki.crl },
    policy: { file: policyFile },
    nats: { servers: server.url },
    limits: { ratePerSecond: 0 },
    logger,
  });
  const bare = Fastify({
    https: {
      minVersion: "TLSv1.3",
      cert: readFileSync(pki.serverCert),
      key: readFileSync(pki.serverKey),
      ca: readFileSync(pki.caCert),
      requestCert: true,
      rejectUnauthorized: true,
    },
  });
  bare.post("/v1/events/:subject", async () => ({ ok: true }));
  await bare.listen({ host: "127.0.0.1", port: 0 });
  const bareUrl = `https://127.0.0.1:${(bare.server.address() as { port: number }).port}`;
  const producer = await createProducer({ servers: server.url, name: "bench-direct", logger });
  const body = JSON.stringify(completedJson());
  const spec = getCatalog().bySubject("order.fulfillment.completed");
  const payload = toBinary(
    spec.schema,
    fromJson(spec.schema, completedJson() as never, { registry: getCatalog().registry }),
  );
  const child = values["in-process"]
    ? undefined
    : fork(
        new URL(import.meta.url).pathname,
        ["--driver", "--requests", String(REQUESTS), "--clients", String(CLIENTS)],
        {
          execArgv: [],
        },
      );
  const job = (url: string, idPrefix: string): Promise<{ rps: number; cpuUs: number }> =>
    new Promise((resolve, reject) => {
      child!.once("message", (m: { rps: number; cpuUs: number; error?: string }) =>
        m.error ? reject(new Error(m.error)) : resolve(m),
      );
      child!.send({
        url,
        body,
        idPrefix,
        ca: pki.caCert,
        cert: client.cert,
        key: client.key,
      } satisfies DriveJob);
    });
  const perReq = (us: number | undefined) => (us === undefined ? undefined : us / REQUESTS);
  const measure = async (url: string, idPrefix: string): Promise<Measured> => {
    const s0 = cpuNow();
    const n0 = cpuOf(server.pid);
    let rps: number;
    let clientUs: number | undefined;
    if (child) {
      const r = await job(url, idPrefix);
      rps = r.rps;
      clientUs = r.cpuUs;
    } else {
      const a = new Agent({
        keepAlive: true,
        maxSockets: CLIENTS,
        ca: readFileSync(pki.caCert),
        cert: readFileSync(client.cert),
        key: readFileSync(client.key),
      });
      rps = await drive(url, a, body, idPrefix);
      a.destroy();
    }
    const n1 = cpuOf(server.pid);
    return {
      rps,
      server: (cpuNow() - s0) / REQUESTS,
      client: perReq(clientUs),
      nats: n0 !== undefined && n1 !== undefined ? (n1 - n0) / REQUESTS : undefined,
    };
  };

  // Warm-up (JIT, TLS session setup, consumer of the first publishes), not measured.
  await measure(`${bareUrl}/v1/events/order.fulfillment.completed`, "warm-b");
  await measure(`${gateway.url}/v1/events/order.fulfillment.completed`, `warm-g-${Date.now()}`);
  const results = { bare: [] as Measured[], gateway: [] as Measured[], sdk: [] as Measured[] };
  for (let run = 0; run < RUNS; run++) {
    if (values.only === "gateway") {
      results.gateway.push(
        await measure(`${gateway.url}/v1/events/order.fulfillment.completed`, `g${run}-${Date.now()}`),
      );
      continue;
    }
    results.bare.push(await measure(`${bareUrl}/v1/events/order.fulfillment.completed`, `b${run}`));
    results.gateway.push(
      await measure(`${gateway.url}/v1/events/order.fulfillment.completed`, `g${run}-${Date.now()}`),
    );
    let next = 0;
    const s0 = cpuNow();
    const n0 = cpuOf(server.pid);
    const started = performance.now();
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        while (next < REQUESTS) {
          const i = next++;
          await producer.publishEncoded({
            subject: spec.subject,
            payload,
            msgId: `d${run}-${Date.now()}-${i}`,
          });
        }
      }),
    );
    const n1 = cpuOf(server.pid);
    results.sdk.push({
      rps: REQUESTS / ((performance.now() - started) / 1000),
      server: (cpuNow() - s0) / REQUESTS,
      client: undefined,
      nats: n0 !== undefined && n1 !== undefined ? (n1 - n0) / REQUESTS : undefined,
    });
  }
  const rate = (xs: Measured[]) => (xs.length ? median(xs.map((x) => x.rps)) : Number.NaN);
  const cpu = (xs: Measured[], k: "server" | "client" | "nats") => {
    const v = xs.map((x) => x[k]).filter((x): x is number => x !== undefined);
    return v.length ? `${Math.round(median(v))} µs` : "-";
  };
  const m = { bare: rate(results.bare), gateway: rate(results.gateway), sdk: rate(results.sdk) };
  const fmt = (x: number) => `${Math.round(x)}/s`;
  console.log(
    `gateway publish benchmark: ${RUNS} runs x ${REQUESTS} events, ${CLIENTS} concurrent clients, mTLS keep-alive, clients ${child ? "in a child process" : "in the server's process"}`,
  );
  const row = (name: string, xs: Measured[]) =>
    console.log(
      `  ${name.padEnd(38)} median ${fmt(rate(xs)).padStart(8)}   runs ${xs.map((x) => fmt(x.rps)).join(" ")}   CPU/request: server ${cpu(xs, "server")}, clients ${cpu(xs, "client")}, nats-server ${cpu(xs, "nats")}`,
    );
  row("bare Fastify mTLS (no-op)", results.bare);
  row("gateway (validate+RBAC+audit+publish)", results.gateway);
  row("producer SDK direct", results.sdk);
  console.log(
    `  gateway / bare = ${(m.gateway / m.bare).toFixed(2)} (per round ${results.gateway.map((g, i) => (g.rps / (results.bare[i]?.rps ?? Number.NaN)).toFixed(2)).join(" ")})   gateway / SDK direct = ${(m.gateway / m.sdk).toFixed(2)}`,
  );
  child?.kill();
  await producer.close();
  await bare.close();
  await gateway.close();
  await nc.close();
  await server.stop();
  await dir.remove();
}

if (values.driver) await driver();
else await main();
