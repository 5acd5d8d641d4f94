// Gateway publish throughput over mTLS (keep-alive, concurrent clients) against, in the same run,
// a bare Fastify mTLS endpoint that does nothing, and the producer SDK publishing directly.
// Not a test: prints medians of several runs and ratios. Run:
//   cd gateway && tsc -b && node dist/bench/publish.js [--runs 5] [--requests 2000] [--clients 16]
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
  },
});
const RUNS = Number(values.runs);
const REQUESTS = Number(values.requests);
const CLIENTS = Number(values.clients);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
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
  const agent = () =>
    new Agent({
      keepAlive: true,
      maxSockets: CLIENTS,
      ca: readFileSync(pki.caCert),
      cert: readFileSync(client.cert),
      key: readFileSync(client.key),
    });
  const body = JSON.stringify(completedJson());
  const spec = getCatalog().bySubject("order.fulfillment.completed");
  const payload = toBinary(
    spec.schema,
    fromJson(spec.schema, completedJson() as never, { registry: getCatalog().registry }),
  );

  // Warm-up (JIT, TLS session setup, consumer of the first publishes), not measured.
  {
    const a = agent();
    await drive(`${bareUrl}/v1/events/order.fulfillment.completed`, a, body, "warm-b");
    await drive(`${gateway.url}/v1/events/order.fulfillment.completed`, a, body, `warm-g-${Date.now()}`);
    a.destroy();
  }
  const results = { bare: [] as number[], gateway: [] as number[], sdk: [] as number[] };
  for (let run = 0; run < RUNS; run++) {
    const a = agent();
    results.bare.push(await drive(`${bareUrl}/v1/events/order.fulfillment.completed`, a, body, `b${run}`));
    results.gateway.push(
      await drive(`${gateway.url}/v1/events/order.fulfillment.completed`, a, body, `g${run}-${Date.now()}`),
    );
    a.destroy();
    let next = 0;
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
    results.sdk.push(REQUESTS / ((performance.now() - started) / 1000));
  }
  const m = { bare: median(results.bare), gateway: median(results.gateway), sdk: median(results.sdk) };
  const fmt = (x: number) => `${Math.round(x)}/s`;
  console.log(
    `gateway publish benchmark: ${RUNS} runs x ${REQUESTS} events, ${CLIENTS} concurrent clients, mTLS keep-alive`,
  );
  console.log(
    `  bare Fastify mTLS (no-op)   median ${fmt(m.bare)}   runs ${results.bare.map(fmt).join(" ")}`,
  );
  console.log(
    `  gateway (validate+RBAC+audit+publish) median ${fmt(m.gateway)}   runs ${results.gateway.map(fmt).join(" ")}`,
  );
  console.log(`  producer SDK direct         median ${fmt(m.sdk)}   runs ${results.sdk.map(fmt).join(" ")}`);
  console.log(
    `  gateway / bare = ${(m.gateway / m.bare).toFixed(2)}   gateway / SDK direct = ${(m.gateway / m.sdk).toFixed(2)}`,
  );
  await producer.close();
  await bare.close();
  await gateway.close();
  await nc.close();
  await server.stop();
  await dir.remove();
}

await main();
