// Consume+ack throughput: the SDK against raw @nats-io/jetstream consume() on the same stream in
// the same run, with and without the idempotency store. Prints medians and ratios; never asserts.
// Run: cd consumers && tsc -b && node dist/bench/consume.js [events] [rounds]
import { eventHeaders, getCatalog, uuidv7 } from "@jetkit/contracts";
import { Carrier, OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { applyStreams } from "@jetkit/contracts/streams";
import { startServer } from "@jetkit/testing";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { headers } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { pino } from "pino";
import { createConsumer } from "../src/index.js";

const N = Number(process.argv[2] ?? 20_000);
const ROUNDS = Number(process.argv[3] ?? 5);
const BATCH = 64;
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);

const server = await startServer();
const nc = await connect({ servers: server.url });
const js = jetstream(nc);
const jsm = await jetstreamManager(nc);
await applyStreams(jsm, getCatalog());
const spec = getCatalog().byType(OrderFulfillmentCompleted.$type);

for (let i = 0; i < N; i += 500) {
  const pubs: Promise<unknown>[] = [];
  for (let j = i; j < Math.min(N, i + 500); j++) {
    const e: OrderFulfillmentCompleted = {
      orderId: uuidv7(),
      checkoutId: uuidv7(),
      shipments: [
        { shipmentId: "s-1", carrier: Carrier.CARRIER_UPS, trackingNumber: `T${j}`, skus: ["sku-1"] },
      ],
      completedAt: new Date(),
    };
    const h = headers();
    const id = uuidv7();
    for (const [k, v] of eventHeaders({
      id,
      type: spec.type,
      source: "/bench",
      time: new Date(),
      partitionKey: e.orderId,
    }))
      h.set(k, v);
    pubs.push(js.publish(spec.subject, OrderFulfillmentCompleted.encode(e).finish(), { headers: h }));
  }
  await Promise.all(pubs);
}

let run = 0;
async function raw(): Promise<number> {
  const durable = `raw-${run++}`;
  await jsm.consumers.add("ORDER", {
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subjects: [spec.subject],
  });
  const conn = await connect({ servers: server.url });
  const c = await jetstream(conn).consumers.get("ORDER", durable);
  const t0 = performance.now();
  const iter = await c.consume({ max_messages: BATCH });
  let n = 0;
  for await (const m of iter) {
    m.ack();
    if (++n === N) break;
  }
  const secs = (performance.now() - t0) / 1000;
  await conn.drain();
  return N / secs;
}

async function sdk(idempotency: boolean): Promise<number> {
  const durable = `sdk-${run++}`;
  let n = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => {
    done = r;
  });
  const consumer = await createConsumer({
    servers: server.url,
    durable,
    events: [OrderFulfillmentCompleted],
    concurrency: CONCURRENCY,
    batch: BATCH,
    idempotency: idempotency ? { bucket: `bench-${durable}` } : false,
    deadLetter: { advisories: false },
    validate: process.env.BENCH_VALIDATE !== "0",
    logger: pino({ level: "silent" }),
  });
  consumer.on(OrderFulfillmentCompleted, () => {
    if (++n === N) done();
  });
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  await consumer.start();
  await finished;
  const secs = (performance.now() - t0) / 1000;
  if (process.env.BENCH_CPU) {
    const cpu = process.cpuUsage(cpu0);
    console.log(
      `  (sdk${idempotency ? "+store" : ""}: wall ${secs.toFixed(2)} s, cpu ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s)`,
    );
  }
  await consumer.stop({ timeoutMs: 2000 });
  return N / secs;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const results = { raw: [] as number[], sdk: [] as number[], sdkStore: [] as number[] };
await raw(); // warm-up
// BENCH_MODES=raw,sdk limits the modes (for profiling one of them).
const modes = (process.env.BENCH_MODES ?? "raw,sdk,store").split(",");
for (let r = 0; r < ROUNDS; r++) {
  if (modes.includes("raw")) results.raw.push(await raw());
  if (modes.includes("sdk")) results.sdk.push(await sdk(false));
  if (modes.includes("store")) results.sdkStore.push(await sdk(true));
}
const fmt = (x: number) => `${Math.round(x).toLocaleString("en-US")} msg/s`;
const mRaw = median(results.raw);
console.log(
  `consume+ack of ${N} events, median of ${ROUNDS} rounds (batch ${BATCH}, SDK concurrency ${CONCURRENCY})`,
);
console.log(`  raw consume()          ${fmt(mRaw)}`);
console.log(
  `  SDK                    ${fmt(median(results.sdk))}  (${(median(results.sdk) / mRaw).toFixed(2)}x raw)`,
);
console.log(
  `  SDK + idempotency KV   ${fmt(median(results.sdkStore))}  (${(median(results.sdkStore) / mRaw).toFixed(2)}x raw)`,
);
await nc.close();
await server.dispose();
