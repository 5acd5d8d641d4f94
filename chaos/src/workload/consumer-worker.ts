/**
 * One workload consumer as its own process, so that a drill can kill it mid-batch (SIGKILL) and
 * a crash is real. It is the consumer SDK (`createConsumer` with the idempotency store when asked,
 * per-key ordering when asked, dead-lettering of poison) with a handler for the fulfillment
 * events whose effect is a line appended to this process's effect file (see effect-log.ts): a
 * re-run of the handler is a second line, never absorbed. It writes one JSON history line per
 * delivery, effect, skip and dead letter to stdout, and reads commands (a new handler delay, a
 * crash right after an effect) as JSON lines on stdin.
 */
import { createInterface } from "node:readline";
import { DatabaseSync } from "node:sqlite";
import { setTimeout as sleep } from "node:timers/promises";
import { type ConsumerOptions, createConsumer, type HandlerContext, SqliteInbox } from "@jetkit/consumers";
import {
  OrderFulfillmentCompleted,
  OrderFulfillmentStarted,
} from "@jetkit/contracts/gen/shop/order/v1/events";
import { connect } from "@nats-io/transport-node";
import { pino } from "pino";
import type { HistoryEvent } from "../history.js";
import type { ConsumerCommand, ConsumerConfig } from "./consumer-config.js";
import { EFFECT_TABLE, type EffectLine, EffectLog } from "./effect-log.js";
import { pseqOf } from "./events.js";
import { deliveryLogStream } from "./sdk-log.js";

const config = JSON.parse(process.env.JETKIT_CHAOS_CONSUMER ?? "{}") as ConsumerConfig;
let handlerDelayMs = config.handlerDelayMs;
/** Effects left before this process kills itself (the crash knob); undefined: no crash planned. */
let crashAfter: number | undefined;

// Pipes are written synchronously on Linux: a line written before a kill -9 reaches the parent.
const emit = (e: HistoryEvent) => process.stdout.write(`${JSON.stringify(e)}\n`);

createInterface({ input: process.stdin }).on("line", (line) => {
  try {
    const cmd = JSON.parse(line) as ConsumerCommand;
    if (typeof cmd.handlerDelayMs === "number") handlerDelayMs = cmd.handlerDelayMs;
    if (typeof cmd.crashAfterEffects === "number") crashAfter = Math.max(1, cmd.crashAfterEffects);
  } catch {}
});

/**
 * The SDK options that make the processes a group. Competing consumers need none: they share the
 * durable by name. A partitioned group spreads its partitions over the processes (elastic).
 */
function sdkGroupOptions(c: ConsumerConfig): Partial<ConsumerOptions> {
  switch (c.group) {
    case "competing":
      return {};
    case "partitioned":
      return { group: { partitions: c.groupPartitions, bucket: c.groupBucket } };
  }
}

const effects = new EffectLog(config.effectFile);

/**
 * The `sqlite` effect mode: the effect is a row of the shared database, inserted in one
 * transaction with the SDK's inbox record (a re-run finds the record and writes nothing).
 */
function sqliteEffects(path: string): (event: unknown, ctx: HandlerContext, line: EffectLine) => boolean {
  const db = new DatabaseSync(path);
  db.exec("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000;");
  db.exec(
    `CREATE TABLE IF NOT EXISTS ${EFFECT_TABLE} (t INTEGER, mono TEXT, id TEXT, key TEXT, pseq INTEGER, seq INTEGER, delivery INTEGER, consumer TEXT, pid INTEGER)`,
  );
  const insert = db.prepare(`INSERT INTO ${EFFECT_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  const inbox = SqliteInbox.open(db, { consumer: config.durable });
  let wrote = false;
  const handler = inbox.handler((_e, _ctx, _db) => {
    const l = current!;
    insert.run(l.t, l.mono, l.id, l.key, l.pseq, l.seq, l.delivery, l.consumer, l.pid);
    wrote = true;
  });
  let current: EffectLine | undefined;
  return (event, ctx, line) => {
    current = line;
    wrote = false;
    void handler(event, ctx);
    return wrote;
  };
}
const dbEffect = config.effect === "sqlite" ? sqliteEffects(config.effectDb) : undefined;

const nc = await connect({
  servers: config.servers,
  name: config.name,
  // The cluster's advertised addresses bypass the fault proxies: stay on the URLs given.
  ignoreClusterUpdates: true,
  maxReconnectAttempts: -1,
  reconnectTimeWait: 250,
  pingInterval: 5000,
  timeout: 5000,
});

// Keys are not in the SDK's log lines: the parent fills them in from the publish history.
const logger = pino(
  { level: "debug" },
  deliveryLogStream((n, line) => {
    if (n === undefined) {
      // Anything else the SDK says at warn or above goes to stderr: the exit line and debugging.
      if (Number(line.level) >= (process.env.JETKIT_CHAOS_DEBUG ? 30 : 40))
        process.stderr.write(`${JSON.stringify(line).slice(0, 500)}\n`);
      return;
    }
    const t = Date.now();
    const base = { t, id: n.msgId, key: "", seq: n.seq };
    if (n.kind === "dead_lettered") {
      emit({ ...base, kind: "dlq", failureClass: n.failureClass });
      return;
    }
    if (n.kind === "store_unavailable" || n.kind === "record_failed") {
      emit({ ...base, kind: "sdk", note: n.kind, delivery: n.delivery, consumer: config.name });
      return;
    }
    emit({ ...base, kind: "delivery", delivery: n.delivery, consumer: config.name });
    if (n.kind === "duplicate") emit({ ...base, kind: "skip", reason: "idempotent" });
  }),
);

const consumer = await createConsumer({
  connection: nc,
  durable: config.durable,
  events: [OrderFulfillmentStarted, OrderFulfillmentCompleted],
  concurrency: config.concurrency,
  batch: config.batch,
  maxDeliver: config.maxDeliver,
  ackWaitMs: config.ackWaitMs,
  maxAckPending: config.maxAckPending,
  deliverPolicy: "new",
  backoff: { initialMs: 200, maxMs: 2000 },
  idempotency: config.idempotency ? { bucket: config.bucket } : false,
  ...(config.ordering === "per-key" ? { ordering: "per-key" as const } : {}),
  ...sdkGroupOptions(config),
  logger,
});

async function handle(_event: unknown, ctx: HandlerContext): Promise<void> {
  const base = { id: ctx.eventId, key: ctx.partitionKey ?? "", seq: ctx.seq };
  emit({ t: Date.now(), kind: "delivery", ...base, delivery: ctx.delivery, consumer: config.name });
  if (handlerDelayMs > 0) await sleep(handlerDelayMs);
  const t = Date.now();
  const pseq = pseqOf(ctx.eventId);
  const line: EffectLine = {
    t,
    mono: process.hrtime.bigint().toString(),
    id: ctx.eventId,
    key: base.key,
    pseq: pseq ?? null,
    seq: ctx.seq,
    delivery: ctx.delivery,
    consumer: config.name,
    pid: process.pid,
  };
  if (dbEffect) {
    // The effect: a row committed with the inbox record, before the SDK records or acks.
    if (!dbEffect(_event, ctx, line)) {
      emit({ t: Date.now(), kind: "skip", ...base, reason: "idempotent" });
      return;
    }
  } else {
    // The effect: one line, appended before the handler returns (before the SDK records or acks).
    effects.append(line);
  }
  emit({
    t,
    kind: "effect",
    ...base,
    consumer: config.name,
    delivery: ctx.delivery,
    pid: process.pid,
    ...(pseq !== undefined ? { pseq } : {}),
  });
  if (crashAfter !== undefined && --crashAfter === 0) {
    emit({
      t: Date.now(),
      kind: "process",
      name: config.name,
      event: "crash",
      pid: process.pid,
      detail: `SIGKILL right after the effect of ${ctx.eventId} (seq ${ctx.seq}, delivery ${ctx.delivery}), before the SDK recorded or acked it`,
    });
    process.kill(process.pid, "SIGKILL");
  }
}
consumer.on(OrderFulfillmentStarted, handle).on(OrderFulfillmentCompleted, handle);
await consumer.start();

process.once("SIGTERM", () => {
  void consumer
    .stop({ timeoutMs: 3000 })
    .catch(() => {})
    .then(() => nc.drain().catch(() => {}))
    .then(() => effects.close())
    .then(() => process.exit(0));
});
