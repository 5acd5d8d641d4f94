/**
 * One outbox relay of a drill (a child process, supervised by {@link RelayProcess}): relays the
 * workload's SQLite outbox with the producer SDK's `startOutboxRelay`, and prints one JSON line per
 * acknowledged publish (`ack` for the history). Configured by JETKIT_CHAOS_RELAY.
 */
import { DatabaseSync } from "node:sqlite";
import { createProducer, type Producer, SqliteOutbox, startOutboxRelay } from "@jetkit/producers";
import { pino } from "pino";
import type { RelayConfig } from "./relay-process.js";

const config = JSON.parse(process.env.JETKIT_CHAOS_RELAY ?? "{}") as RelayConfig;
const db = new DatabaseSync(config.file);
db.exec("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000;");
const outbox = SqliteOutbox.open(db);
const producer = await createProducer({
  servers: config.servers,
  name: config.name,
  logger: pino({ level: "silent" }),
  // The cluster's advertised addresses bypass the fault proxies: stay on the URLs given.
  connection: { ignoreClusterUpdates: true, reconnectTimeWait: 250, timeout: 5000 },
});
// What the relay publishes, observed: each ack is a line for the drill's history.
const observed = new Proxy(producer, {
  get(target, prop) {
    if (prop === "publishEncoded") {
      return async (input: Parameters<Producer["publishEncoded"]>[0]) => {
        const ack = await target.publishEncoded(input);
        process.stdout.write(
          `${JSON.stringify({ kind: "ack", id: ack.msgId, key: input.key ?? "", seq: ack.seq, stream: ack.stream, duplicate: ack.duplicate })}\n`,
        );
        return ack;
      };
    }
    const v = Reflect.get(target, prop, target) as unknown;
    return typeof v === "function" ? v.bind(target) : v;
  },
});
const relay = startOutboxRelay(outbox, {
  producer: observed,
  idleMs: 20,
  leaseMs: config.leaseMs,
  logger: pino({ level: process.env.JETKIT_CHAOS_DEBUG ? "info" : "warn" }, process.stderr),
});
process.on("SIGTERM", () => {
  void (async () => {
    await relay.stop();
    await producer.close({ timeoutMs: 2000 }).catch(() => {});
    db.close();
    process.exit(0);
  })();
});
