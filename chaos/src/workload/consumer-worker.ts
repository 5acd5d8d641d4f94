/**
 * The workload consumer as its own process, so that a drill can kill it mid-batch (SIGKILL) and
 * a crash is real. It writes one JSON history line per delivery, effect, skip and dead letter to
 * stdout, and reads commands (e.g. a new handler delay) as JSON lines on stdin.
 */
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import {
  ContractValidator,
  deadLetterHeaders,
  deadLetterSubject,
  EventHeaders,
  type FailureClass,
  getCatalog,
  isJetkitError,
} from "@jetkit/contracts";
import { type JsMsg, jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { headers as natsHeaders } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import type { HistoryEvent } from "../history.js";
import type { ConsumerCommand, ConsumerConfig } from "./consumer-config.js";

const config = JSON.parse(process.env.JETKIT_CHAOS_CONSUMER ?? "{}") as ConsumerConfig;
let handlerDelayMs = config.handlerDelayMs;
let stopping = false;

const emit = (e: HistoryEvent) => process.stdout.write(`${JSON.stringify(e)}\n`);

createInterface({ input: process.stdin }).on("line", (line) => {
  try {
    const cmd = JSON.parse(line) as ConsumerCommand;
    if (typeof cmd.handlerDelayMs === "number") handlerDelayMs = cmd.handlerDelayMs;
  } catch {}
});

const catalog = getCatalog();
const validator = new ContractValidator(catalog);
const nc = await connect({
  servers: config.servers,
  name: config.name,
  ignoreClusterUpdates: true,
  maxReconnectAttempts: -1,
  reconnectTimeWait: 250,
  timeout: 5000,
});
const js = jetstream(nc, { timeout: 5000 });
const kv = config.idempotency ? await new Kvm(js).open(config.bucket) : undefined;
const consumer = await js.consumers.get(config.stream, config.durable);

async function handle(m: JsMsg): Promise<void> {
  const id = m.headers?.get(EventHeaders.ID) ?? "";
  const key = m.headers?.get(EventHeaders.PARTITION_KEY) ?? "";
  const seq = m.seq;
  emit({
    t: Date.now(),
    kind: "delivery",
    id,
    key,
    seq,
    delivery: m.info.deliveryCount,
    consumer: config.name,
  });
  const spec = catalog.findBySubject(m.subject);
  let failure: { cls: FailureClass; reason: string } | undefined;
  if (!spec) failure = { cls: "unknown_type", reason: `no event for subject ${m.subject}` };
  else {
    try {
      validator.check(spec, m.data);
    } catch (err) {
      failure = {
        cls: isJetkitError(err, "JK_CONTRACT_UNDECODABLE") ? "undecodable" : "contract_violation",
        reason: (err as Error).message,
      };
    }
  }
  if (failure) {
    const original: [string, string][] = [];
    for (const k of m.headers?.keys() ?? []) original.push([k, m.headers?.get(k) ?? ""]);
    const now = new Date();
    const h = natsHeaders();
    for (const [k, v] of deadLetterHeaders(original, {
      stream: config.stream,
      sequence: seq,
      subject: m.subject,
      consumer: config.durable,
      deliveries: m.info.deliveryCount,
      failureClass: failure.cls,
      reason: failure.reason,
      firstFailure: now,
      lastFailure: now,
    }))
      h.set(k, v);
    await js.publish(deadLetterSubject(m.subject), m.data, { headers: h, msgID: h.get(EventHeaders.MSG_ID) });
    emit({ t: Date.now(), kind: "dlq", id, key, seq, failureClass: failure.cls });
    await m.ackAck({ timeout: 5000 }).catch(() => m.ack());
    return;
  }
  if (handlerDelayMs > 0) await sleep(handlerDelayMs);
  let first = true;
  if (kv) {
    try {
      await kv.create(id, "1");
    } catch (err) {
      // Already recorded by an earlier delivery: the effect must not happen twice.
      if (!/exist|wrong last sequence/i.test((err as Error).message)) throw err;
      first = false;
    }
  }
  if (first) emit({ t: Date.now(), kind: "effect", id, key, seq, consumer: config.name });
  else emit({ t: Date.now(), kind: "skip", id, key, seq, reason: "idempotent" });
  await m.ackAck({ timeout: 5000 }).catch(() => m.ack());
}

// Short pulls: after a leader change or a reconnect the next pull goes to the new leader within seconds.
const messages = await consumer.consume({ max_messages: config.batch, expires: 4000 });
process.once("SIGTERM", () => {
  stopping = true;
  void messages.close();
});
for await (const m of messages) {
  try {
    await handle(m);
  } catch {
    // Leave the message un-acked: it is redelivered after ack_wait.
    m.nak(250);
  }
  if (stopping) break;
}
await nc.drain().catch(() => {});
process.exit(0);
