/**
 * Outbox relay benchmark (prints figures; not a test). For the SQLite outbox (`node:sqlite`, a
 * WAL file) and the Postgres outbox (a throw-away local server, `pg` pool), in the same run, on
 * the same nats-server and file-storage stream:
 * - throughput: `--rows` events (for `--keys` keys) committed in transactions of 100, then one
 *   relay started; rows/s until the last is acknowledged. Baseline: `producer.publishMany` of the
 *   same events (no outbox), window 64 like the relay's.
 * - latency commit -> stored: with the relay idle, one event committed at a time; the time from
 *   the COMMIT's return to the stream's ack of the relay's publish. The SQLite relay polls every
 *   `--idle-ms`; the Postgres relay also wakes on the NOTIFY its add sends at commit.
 * Sides take turns each round (the first rotating); figures are medians over rounds.
 *
 *   node producers/dist/bench/outbox.js [--rounds 5] [--rows 5000] [--keys 100] [--latency 50] [--idle-ms 100] [--batch 256]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { parseArgs } from "node:util";
import { getCatalog } from "@jetkit/contracts";
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { applyStreams } from "@jetkit/contracts/streams";
import { startPostgres, startServer } from "@jetkit/testing";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import pg from "pg";
import { pino } from "pino";
import {
  createProducer,
  type EncodedEvent,
  PgOutbox,
  type Producer,
  type PublishAck,
  SqliteOutbox,
  startOutboxRelay,
} from "../src/index.js";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "5" },
    rows: { type: "string", default: "5000" },
    keys: { type: "string", default: "100" },
    latency: { type: "string", default: "50" },
    "idle-ms": { type: "string", default: "100" },
    batch: { type: "string", default: "256" },
  },
});
const ROUNDS = Number(values.rounds);
const ROWS = Number(values.rows);
const KEYS = Number(values.keys);
const LATENCY = Number(values.latency);
const IDLE_MS = Number(values["idle-ms"]);
const BATCH = Number(values.batch);
const silent = pino({ level: "silent" });

const keys = Array.from({ length: KEYS }, () => crypto.randomUUID());
function event(i: number): OrderFulfillmentCompleted {
  return {
    orderId: keys[i % KEYS]!,
    checkoutId: crypto.randomUUID(),
    shipments: [{ shipmentId: "s-1", carrier: 1, trackingNumber: String(i), skus: ["SKU-1"] }],
    shippingCost: { currencyCode: "EUR", units: 4, nanos: 990_000_000 },
    completedAt: new Date(),
  };
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
};
const median = (xs: number[]) => pct(xs, 50);

/** The producer as the relay sees it, calling `onAck(msgId)` when the stream acknowledges. */
function watched(producer: Producer, onAck: (msgId: string) => void): Producer {
  return new Proxy(producer, {
    get(target, prop) {
      if (prop === "publishEncoded") {
        return async (e: EncodedEvent): Promise<PublishAck> => {
          const ack = await target.publishEncoded(e);
          onAck(ack.msgId);
          return ack;
        };
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

interface Side {
  name: string;
  /** Commits `events` in transactions of 100; resolves with their ids. */
  write(events: OrderFulfillmentCompleted[]): Promise<string[]>;
  relay(producer: Producer): { stop(): Promise<void> };
}

const server = await startServer();
const admin = await connect({ servers: server.url });
await applyStreams(await jetstreamManager(admin), getCatalog());
const producer = await createProducer({ servers: server.url, name: "outbox-bench", logger: silent });
const postgres = await startPostgres();
const pool = new pg.Pool({ connectionString: postgres.url, max: 4 });
const dir = mkdtempSync(join(tmpdir(), "jetkit-outbox-bench-"));
const db = new DatabaseSync(join(dir, "bench.db"));
db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
const sqlite = SqliteOutbox.open(db);
const pgOutbox = await PgOutbox.open(pool);

const sides: Side[] = [
  {
    name: "sqlite",
    async write(events) {
      const ids: string[] = [];
      for (let i = 0; i < events.length; i += 100) {
        db.exec("BEGIN IMMEDIATE");
        for (const e of events.slice(i, i + 100)) ids.push(sqlite.add(OrderFulfillmentCompleted, e));
        db.exec("COMMIT");
      }
      return ids;
    },
    relay: (p) => startOutboxRelay(sqlite, { producer: p, idleMs: IDLE_MS, batch: BATCH, logger: silent }),
  },
  {
    name: "postgres",
    async write(events) {
      const ids: string[] = [];
      const c = await pool.connect();
      try {
        for (let i = 0; i < events.length; i += 100) {
          await c.query("BEGIN");
          for (const e of events.slice(i, i + 100))
            ids.push(await pgOutbox.add(c, OrderFulfillmentCompleted, e));
          await c.query("COMMIT");
        }
      } finally {
        c.release();
      }
      return ids;
    },
    relay: (p) => startOutboxRelay(pgOutbox, { producer: p, idleMs: IDLE_MS, batch: BATCH, logger: silent }),
  },
];

/** Waits for each id of `ids` to be acknowledged through `acked`. */
function allAcked(ids: string[], acked: Map<string, () => void>): Promise<void> {
  return Promise.all(ids.map((id) => new Promise<void>((r) => acked.set(id, r)))).then(() => {});
}

async function throughput(side: Side): Promise<number> {
  const events = Array.from({ length: ROWS }, (_, i) => event(i));
  const ids = await side.write(events);
  const waiting = new Map<string, () => void>();
  const done = allAcked(ids, waiting);
  const t0 = performance.now();
  const relay = side.relay(watched(producer, (id) => waiting.get(id)?.()));
  await done;
  const rate = ROWS / ((performance.now() - t0) / 1000);
  await relay.stop();
  return rate;
}

async function direct(): Promise<number> {
  const events = Array.from({ length: ROWS }, (_, i) => event(i));
  const t0 = performance.now();
  await producer.publishMany(OrderFulfillmentCompleted, events, { window: 64 });
  return ROWS / ((performance.now() - t0) / 1000);
}

async function latency(side: Side): Promise<number[]> {
  const waiting = new Map<string, () => void>();
  const relay = side.relay(watched(producer, (id) => waiting.get(id)?.()));
  await new Promise((r) => setTimeout(r, 200)); // let it take the lease and go idle
  const out: number[] = [];
  for (let i = 0; i < LATENCY; i++) {
    const e = event(i);
    // The id is known once add returns, before COMMIT; the clock starts when COMMIT returns.
    let stored!: Promise<void>;
    let committedAt = 0;
    if (side.name === "sqlite") {
      db.exec("BEGIN IMMEDIATE");
      const id = sqlite.add(OrderFulfillmentCompleted, e);
      stored = new Promise((r) => waiting.set(id, r));
      db.exec("COMMIT");
      committedAt = performance.now();
    } else {
      const c = await pool.connect();
      await c.query("BEGIN");
      const id = await pgOutbox.add(c, OrderFulfillmentCompleted, e);
      stored = new Promise((r) => waiting.set(id, r));
      await c.query("COMMIT");
      committedAt = performance.now();
      c.release();
    }
    await stored;
    out.push(performance.now() - committedAt);
    // Commit at a random point of the relay's polling cycle (not just after its last round).
    await new Promise((r) => setTimeout(r, Math.random() * IDLE_MS));
  }
  await relay.stop();
  return out;
}

const tput: Record<string, number[]> = { sqlite: [], postgres: [], direct: [] };
const ratio: Record<string, number[]> = { sqlite: [], postgres: [] };
const lat: Record<string, { p50: number[]; p99: number[] }> = {
  sqlite: { p50: [], p99: [] },
  postgres: { p50: [], p99: [] },
};
// Warm-up (JIT, connections, table pages), not counted.
await direct();
for (const side of sides) await throughput(side);
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? sides : [...sides].reverse();
  const base = await direct();
  tput.direct!.push(base);
  for (const side of order) {
    const r = await throughput(side);
    tput[side.name]!.push(r);
    ratio[side.name]!.push(r / base);
  }
  for (const side of order) {
    const l = await latency(side);
    lat[side.name]!.p50.push(pct(l, 50));
    lat[side.name]!.p99.push(pct(l, 99));
  }
}

console.log(
  `${ROUNDS} rounds, ${ROWS} rows for ${KEYS} keys per throughput run (transactions of 100, relay batch ${BATCH}, window 64), ${LATENCY} single-event commits per latency run, relay idleMs ${IDLE_MS}, node ${process.version}`,
);
console.log(
  "| outbox | relay rows/s (median) | relay / direct publishMany (median of per-round ratios) | commit -> stored p50 ms | p99 ms |",
);
console.log("| --- | ---: | ---: | ---: | ---: |");
for (const name of ["sqlite", "postgres"]) {
  console.log(
    `| ${name} | ${Math.round(median(tput[name]!))} | ${median(ratio[name]!).toFixed(2)}x | ${median(lat[name]!.p50).toFixed(2)} | ${median(lat[name]!.p99).toFixed(2)} |`,
  );
}
console.log(`| (direct publishMany, no outbox) | ${Math.round(median(tput.direct!))} | 1.00x | | |`);

await producer.close();
await pool.end();
await postgres.dispose();
db.close();
rmSync(dir, { recursive: true, force: true });
await admin.close();
await server.dispose();
