/**
 * The workload consumer as its own process, so that a drill can kill it mid-batch (SIGKILL) and
 * a crash is real. It is the consumer SDK (`createConsumer` with the idempotency store, per-key
 * ordering when asked, dead-lettering of poison) with a handler for the fulfillment events. It
 * writes one JSON history line per delivery, effect, skip and dead letter to stdout, and reads
 * commands (e.g. a new handler delay) as JSON lines on stdin.
 */
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { createConsumer, type HandlerContext } from "@jetkit/consumers";
import {
  OrderFulfillmentCompleted,
  OrderFulfillmentStarted,
} from "@jetkit/contracts/gen/shop/order/v1/events";
import { jetstream } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { pino } from "pino";
import type { HistoryEvent } from "../history.js";
import type { ConsumerCommand, ConsumerConfig } from "./consumer-config.js";
import { deliveryLogStream } from "./sdk-log.js";

const config = JSON.parse(process.env.JETKIT_CHAOS_CONSUMER ?? "{}") as ConsumerConfig;
let handlerDelayMs = config.handlerDelayMs;

// Pipes are written synchronously on Linux: a line written before a kill -9 reaches the parent.
const emit = (e: HistoryEvent) => process.stdout.write(`${JSON.stringify(e)}\n`);

createInterface({ input: process.stdin }).on("line", (line) => {
  try {
    const cmd = JSON.parse(line) as ConsumerCommand;
    if (typeof cmd.handlerDelayMs === "number") handlerDelayMs = cmd.handlerDelayMs;
  } catch {}
});

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
const effects: KV | undefined = config.idempotency
  ? await new Kvm(jetstream(nc, { timeout: 5000 })).open(config.effectsBucket)
  : undefined;

// Keys are not in the SDK's log lines: the parent fills them in from the publish history.
const logger = pino(
  { level: "debug" },
  deliveryLogStream((n, line) => {
    if (n === undefined) {
      // Anything else the SDK says at warn or above goes to stderr: the exit line and debugging.
      if (Number(line.level) >= 40) process.stderr.write(`${JSON.stringify(line).slice(0, 500)}\n`);
      return;
    }
    const t = Date.now();
    const base = { t, id: n.msgId, key: "", seq: n.seq };
    if (n.kind === "dead_lettered") {
      emit({ ...base, kind: "dlq", failureClass: n.failureClass });
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
  ...(config.idempotency ? { idempotency: { bucket: config.bucket } } : {}),
  ...(config.ordering === "per-key" ? { ordering: "per-key" as const } : {}),
  logger,
});

async function handle(_event: unknown, ctx: HandlerContext): Promise<void> {
  const base = { id: ctx.eventId, key: ctx.partitionKey ?? "", seq: ctx.seq };
  emit({ t: Date.now(), kind: "delivery", ...base, delivery: ctx.delivery, consumer: config.name });
  if (handlerDelayMs > 0) await sleep(handlerDelayMs);
  if (effects) {
    try {
      await effects.create(ctx.eventId, JSON.stringify({ seq: ctx.seq, at: Date.now() }));
    } catch (err) {
      // The effect is already there: the handler ran again (a crash between the effect and the
      // SDK's idempotency record). The idempotent effect absorbs it; the history shows it.
      if (!/exist|wrong last sequence/i.test((err as Error).message)) throw err;
      emit({ t: Date.now(), kind: "skip", ...base, reason: "effect_exists" });
      return;
    }
  }
  emit({ t: Date.now(), kind: "effect", ...base, consumer: config.name });
}
consumer.on(OrderFulfillmentStarted, handle).on(OrderFulfillmentCompleted, handle);
await consumer.start();

process.once("SIGTERM", () => {
  void consumer
    .stop({ timeoutMs: 3000 })
    .catch(() => {})
    .then(() => nc.drain().catch(() => {}))
    .then(() => process.exit(0));
});
