/**
 * Consume+ack throughput (prints figures; not a test): the SDK against raw `@nats-io/jetstream`
 * `consume()` + `ack()` on the same stream, in the same run. Every mode reads the same 1 KiB events
 * (OrderFulfillmentCompleted with ce-* headers, as the producer SDK writes them) from the start of
 * the same stream through a fresh durable with explicit acks and the same `max_messages`, on a
 * fresh connection with the same options. Rounds interleave the modes (the order rotates each
 * round) and the figures are medians; the ratio is against the raw median of the same run. Two
 * more columns help read a noisy machine: the median of per-round ratios (each mode against the
 * raw run of its own round, so load that drifts across rounds cancels out) and the client's CPU
 * time per event (this process: user + system, which includes the raw client's own work).
 *
 * A run ends when the handler saw every event and the server reports no message pending and none
 * waiting for its ack, so acks still in a client buffer are not counted as done.
 *
 *   cd consumers && tsc -b && node dist/bench/consume.js [events=20000] [rounds=5]
 *   BENCH_MODES=raw,sdk,store[,group][,groupnostore][,group2p][,group2pnostore][,novalidate][,rawdecode]
 *                                           modes to run (group: a partitioned consumer group of 2
 *                                           members in this process, 16 partitions, idempotency on
 *                                           as by default; groupnostore: the same without it;
 *                                           group2p / group2pnostore: the same with the 2 members in
 *                                           2 processes (their CPU is not in the client CPU column);
 *                                           novalidate: SDK with
 *                                           validate:false; rawdecode: raw that also decodes each
 *                                           payload with ts-proto. Both for reference only: the
 *                                           ratios are against plain raw)
 *   BENCH_CONCURRENCY=16                    SDK handler concurrency (the SDK default)
 *   BENCH_BATCH=<SDK default>               max_messages of both raw and SDK
 */
import { fork } from "node:child_process";
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { eventHeaders, getCatalog, uuidv7 } from "@jetkit/contracts";
import { Carrier, OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { applyStreams } from "@jetkit/contracts/streams";
import { startServer } from "@jetkit/testing";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { headers } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { pino } from "pino";
import { createConsumer } from "../src/index.js";
import { resolveOptions } from "../src/options.js";

const N = Number(process.argv[2] ?? 20_000);
const ROUNDS = Number(process.argv[3] ?? 5);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
// Raw consume() pulls as many messages ahead as the SDK does with its defaults.
const BATCH = Number(
  process.env.BENCH_BATCH ?? resolveOptions({ durable: "bench", concurrency: CONCURRENCY }).batch,
);
const MODES = (process.env.BENCH_MODES ?? "raw,sdk,store").split(",");
const PAYLOAD_BYTES = 1024;

const server = await startServer();
const admin = await connect({ servers: server.url });
const js = jetstream(admin);
const jsm = await jetstreamManager(admin);
await applyStreams(jsm, getCatalog());
const spec = getCatalog().byType(OrderFulfillmentCompleted.$type);

/**
 * A realistic order with three shipments, padded to exactly 1 KiB encoded. (Encoded only: a
 * decode here, with ts-proto's own reader, would make the generated decode functions see two
 * reader classes before the SDK's first message, which a consumer process does not.)
 */
function event(i: number): { data: Uint8Array; orderId: string } {
  const e: OrderFulfillmentCompleted = {
    orderId: uuidv7(),
    checkoutId: uuidv7(),
    shipments: [0, 1, 2].map((s) => ({
      shipmentId: `shp-${i}-${s}`,
      carrier: Carrier.CARRIER_UPS,
      trackingNumber: `1Z${String(i).padStart(10, "0")}${s}`,
      skus: Array.from({ length: 8 }, (_, k) => `sku-${(i * 7 + s * 13 + k) % 9973}-blue-m`),
    })),
    shippingCost: { currencyCode: "EUR", units: 4, nanos: 990_000_000 },
    completedAt: new Date(),
  };
  const size = OrderFulfillmentCompleted.encode(e).finish().length;
  const pad = PAYLOAD_BYTES - size;
  if (pad < 0) throw new Error(`event is ${size} bytes, more than ${PAYLOAD_BYTES}`);
  e.shipments[0]!.trackingNumber += "X".repeat(pad);
  const bytes = OrderFulfillmentCompleted.encode(e).finish();
  // A length prefix may grow by a byte when padded: trim the tracking number to land on the size.
  if (bytes.length !== PAYLOAD_BYTES) {
    e.shipments[0]!.trackingNumber = e.shipments[0]!.trackingNumber.slice(0, -(bytes.length - PAYLOAD_BYTES));
    return { data: OrderFulfillmentCompleted.encode(e).finish(), orderId: e.orderId };
  }
  return { data: bytes, orderId: e.orderId };
}

for (let i = 0; i < N; i += 500) {
  const pubs: Promise<unknown>[] = [];
  for (let j = i; j < Math.min(N, i + 500); j++) {
    const h = headers();
    const { data, orderId } = event(j);
    for (const [k, v] of eventHeaders({
      id: uuidv7(),
      type: spec.type,
      source: "/bench/checkout",
      time: new Date(),
      partitionKey: orderId,
      correlationId: uuidv7(),
    }))
      h.set(k, v);
    pubs.push(js.publish(spec.subject, data, { headers: h }));
  }
  await Promise.all(pubs);
}

/** The same connection options for every mode (the SDK's own connection sets these too). */
const open = () => connect({ servers: server.url, noAsyncTraces: true });

/** Waits until the durable has nothing left to deliver and nothing waiting for an ack. */
async function settled(durable: string): Promise<void> {
  for (;;) {
    const ci = await jsm.consumers.info("ORDER", durable);
    if (ci.num_pending === 0 && ci.num_ack_pending === 0 && ci.delivered.stream_seq >= N) return;
    await sleep(2);
  }
}

let run = 0;
/**
 * Raw `consume()` + `ack()`; with `decode`, each payload is also decoded with ts-proto's own
 * `decode` (a reference: the least a hand-written consumer of these contracts does per event).
 */
async function raw(decode = false): Promise<number> {
  const durable = `raw-${run++}`;
  const nc = await open();
  const t0 = performance.now();
  await jsm.consumers.add("ORDER", {
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subjects: [spec.subject],
  });
  const c = await jetstream(nc).consumers.get("ORDER", durable);
  const iter = await c.consume({ max_messages: BATCH });
  let n = 0;
  for await (const m of iter) {
    if (decode && OrderFulfillmentCompleted.decode(m.data).orderId === "") throw new Error("no order id");
    m.ack();
    if (++n === N) break;
  }
  await settled(durable);
  const secs = (performance.now() - t0) / 1000;
  await nc.drain();
  return N / secs;
}

async function sdk(opts: { idempotency: boolean; validate: boolean }): Promise<number> {
  const durable = `sdk-${run++}`;
  const nc = await open();
  let n = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => {
    done = r;
  });
  const consumer = await createConsumer({
    connection: nc,
    durable,
    events: [OrderFulfillmentCompleted],
    concurrency: CONCURRENCY,
    batch: BATCH,
    idempotency: opts.idempotency ? { bucket: `bench-${durable}` } : false,
    deadLetter: { advisories: false },
    validate: opts.validate,
    logger: pino({ level: "silent" }),
  });
  consumer.on(OrderFulfillmentCompleted, () => {
    if (++n === N) done();
  });
  const t0 = performance.now();
  await consumer.start();
  await finished;
  await settled(durable);
  const secs = (performance.now() - t0) / 1000;
  await consumer.stop({ timeoutMs: 2000 });
  await nc.drain();
  return N / secs;
}

/**
 * A partitioned consumer group of 2 members (in this one process, each on its own connection), 16
 * partitions, per-key order: done when the handlers saw every event (a group acks nothing on the
 * server; its progress is the partitions' checkpoints).
 */
async function group(opts: { idempotency: boolean }): Promise<number> {
  const durable = `group-${run++}`;
  let n = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => {
    done = r;
  });
  const conns = [await open(), await open()];
  const members = await Promise.all(
    conns.map((nc) =>
      createConsumer({
        connection: nc,
        durable,
        events: [OrderFulfillmentCompleted],
        concurrency: CONCURRENCY,
        batch: BATCH,
        group: { partitions: 16, bucket: `bench-${durable}` },
        idempotency: opts.idempotency ? { bucket: `bench-${durable}-idem` } : false,
        deadLetter: { advisories: false },
        logger: pino({ level: "silent" }),
      }),
    ),
  );
  for (const c of members) {
    c.on(OrderFulfillmentCompleted, () => {
      if (++n === N) done();
    });
  }
  const t0 = performance.now();
  await Promise.all(members.map((c) => c.start()));
  await finished;
  const secs = (performance.now() - t0) / 1000;
  for (const c of members) await c.stop({ timeoutMs: 2000 });
  for (const nc of conns) await nc.drain();
  return N / secs;
}

/**
 * The same group with its 2 members in 2 processes (`group-member.ts`, forked), as a deployment
 * runs it: timed from the start signal until the members' handlers saw every event between them.
 */
async function groupProcesses(opts: { idempotency: boolean }): Promise<number> {
  const durable = `group2p-${run++}`;
  const script = fileURLToPath(new URL("./group-member.js", import.meta.url));
  const args = [server.url, durable, opts.idempotency ? "1" : "0", String(CONCURRENCY), String(BATCH)];
  const members = [fork(script, args), fork(script, args)];
  let n = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => {
    done = r;
  });
  const ready = members.map(
    (child) =>
      new Promise<void>((resolve, reject) => {
        child.once("exit", (code) => reject(new Error(`group member exited with ${code} before the end`)));
        child.on("message", (m: { ready?: true; handled?: number }) => {
          if (m.ready) resolve();
          if (m.handled === undefined) return;
          n += m.handled;
          if (n >= N) done();
        });
      }),
  );
  await Promise.all(ready);
  const t0 = performance.now();
  for (const child of members) child.send({ cmd: "start" });
  await finished;
  const secs = (performance.now() - t0) / 1000;
  await Promise.all(
    members.map((child) => {
      child.removeAllListeners("exit");
      const exited = once(child, "exit");
      child.send({ cmd: "stop" });
      return exited;
    }),
  );
  return N / secs;
}

const runners: Record<string, () => Promise<number>> = {
  group: () => group({ idempotency: true }),
  group2p: () => groupProcesses({ idempotency: true }),
  group2pnostore: () => groupProcesses({ idempotency: false }),
  groupnostore: () => group({ idempotency: false }),
  raw: () => raw(),
  rawdecode: () => raw(true),
  sdk: () => sdk({ idempotency: false, validate: true }),
  store: () => sdk({ idempotency: true, validate: true }),
  novalidate: () => sdk({ idempotency: false, validate: false }),
};
const labels: Record<string, string> = {
  raw: "raw consume() + ack()",
  rawdecode: "raw + ts-proto decode",
  sdk: "SDK (defaults: validation on)",
  store: "SDK + idempotency KV",
  novalidate: "SDK, validate: false",
  group: "group: 2 members, 16 parts",
  groupnostore: "group, idempotency: false",
  group2p: "group: 2 processes, 16 parts",
  group2pnostore: "group 2 procs, idempotency off",
};
const modes = MODES.filter((m) => runners[m]);
const results = new Map<string, number[]>(modes.map((m) => [m, []]));
/** Client CPU microseconds per event, per mode and round. */
const cpu = new Map<string, number[]>(modes.map((m) => [m, []]));
await raw(); // warm-up (JIT, page cache)
await sdk({ idempotency: false, validate: true });
for (let r = 0; r < ROUNDS; r++) {
  // Rotate the order so no mode always runs first or last in a round.
  for (let i = 0; i < modes.length; i++) {
    const mode = modes[(i + r) % modes.length]!;
    const c0 = process.cpuUsage();
    results.get(mode)!.push(await runners[mode]!());
    const c = process.cpuUsage(c0);
    cpu.get(mode)!.push((c.user + c.system) / N);
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const fmt = (x: number) => `${Math.round(x).toLocaleString("en-US")} msg/s`.padStart(14);
const raws = results.get("raw") ?? [];
const base = median(raws.length > 0 ? raws : [Number.NaN]);
console.log(
  `consume+ack of ${N} events of ${PAYLOAD_BYTES} B, median of ${ROUNDS} interleaved rounds ` +
    `(max_messages ${BATCH}, SDK concurrency ${CONCURRENCY}, explicit acks)`,
);
for (const m of modes) {
  const xs = results.get(m)!;
  const all = xs.map((x) => Math.round(x)).join(", ");
  const perRound = raws.length === xs.length ? median(xs.map((x, i) => x / raws[i]!)).toFixed(2) : "-";
  console.log(
    `  ${labels[m]!.padEnd(30)} ${fmt(median(xs))}  ${(median(xs) / base).toFixed(2)}x raw ` +
      `(per round ${perRound}x)  client CPU ${median(cpu.get(m)!).toFixed(1)} us/event   [${all}]`,
  );
}
const decoded = results.get("rawdecode");
const sdkRuns = results.get("sdk");
if (decoded && sdkRuns && decoded.length === sdkRuns.length) {
  const ratio = median(sdkRuns.map((x, i) => x / decoded[i]!)).toFixed(2);
  console.log(
    `  SDK against raw + ts-proto decode: per round ${ratio}x (a reference; the target is against plain raw)`,
  );
}
await admin.close();
await server.dispose();
