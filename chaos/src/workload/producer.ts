import { eventHeaders, uuidv7 } from "@jetkit/contracts";
import { type JetStreamClient, jetstream } from "@nats-io/jetstream";
import { type NatsConnection, headers as natsHeaders } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import type { History, PoisonKind } from "../history.js";
import type { Rng } from "../prng.js";
import { encodeEvent, encodePoison, WORKLOAD_SUBJECT, WORKLOAD_TYPE } from "./events.js";

/** Options of the workload producer. */
export interface ProducerOptions {
  /** Client URLs (the fault proxies). */
  servers: string[];
  /** Messages per second. */
  ratePerSec: number;
  /** Partition keys (order ids) to publish under. */
  keys: string[];
  /** `uniform`, or `hot`: half of the traffic goes to the first tenth of the keys. */
  keyDistribution: "uniform" | "hot";
  /** Most publishes awaiting an ack at once; beyond it ticks are skipped (backpressure). */
  maxInFlight: number;
  /** Publish attempts per message (same message id on every attempt). */
  attempts: number;
  /** Ack timeout per attempt, ms. */
  timeoutMs: number;
  /** Probability that an acked message is published once more with the same id. */
  duplicateRate: number;
  rng: Rng;
  history: History;
}

/** Live counters for progress lines and abort conditions. */
export interface ProducerStats {
  attempted: number;
  acked: number;
  errors: number;
  failed: number;
  throttled: number;
  inFlight: number;
}

/** Publishes the workload at a fixed rate through its own connection, recording every attempt and ack. */
export class WorkloadProducer {
  readonly stats: ProducerStats = { attempted: 0, acked: 0, errors: 0, failed: 0, throttled: 0, inFlight: 0 };
  #opts: ProducerOptions;
  #nc: NatsConnection | undefined;
  #js: JetStreamClient | undefined;
  #timer: NodeJS.Timeout | undefined;
  #pending = new Set<Promise<void>>();
  #poisonRate = 0;
  #duplicateRate: number;

  constructor(opts: ProducerOptions) {
    this.#opts = opts;
    this.#duplicateRate = opts.duplicateRate;
  }

  async connect(): Promise<void> {
    this.#nc = await connect({
      servers: this.#opts.servers,
      name: "jetkit-chaos-producer",
      ignoreClusterUpdates: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      timeout: 5000,
    });
    this.#js = jetstream(this.#nc, { timeout: this.#opts.timeoutMs });
  }

  /** Extra poison messages per second on top of the workload (a poison storm while > 0). */
  setPoisonRate(perSec: number): void {
    this.#poisonRate = perSec;
  }

  setDuplicateRate(p: number): void {
    this.#duplicateRate = p;
  }

  start(): void {
    const started = performance.now();
    let sent = 0;
    let poisonSent = 0;
    let poisonSince = started;
    let lastPoisonRate = 0;
    this.#timer = setInterval(() => {
      const now = performance.now();
      const due = Math.floor(((now - started) / 1000) * this.#opts.ratePerSec) - sent;
      for (let i = 0; i < due; i++) {
        sent++;
        if (this.stats.inFlight >= this.#opts.maxInFlight) {
          this.stats.throttled++;
          continue;
        }
        this.#track(this.#publishOne(this.#pickKey()));
      }
      if (this.#poisonRate !== lastPoisonRate) {
        lastPoisonRate = this.#poisonRate;
        poisonSince = now;
        poisonSent = 0;
      }
      if (this.#poisonRate > 0) {
        const poisonDue = Math.floor(((now - poisonSince) / 1000) * this.#poisonRate) - poisonSent;
        for (let i = 0; i < poisonDue; i++) {
          poisonSent++;
          const kind: PoisonKind = this.#opts.rng.next() < 0.5 ? "undecodable" : "contract_violation";
          this.#track(this.#publishOne(this.#pickKey(), kind));
        }
      }
    }, 10);
  }

  /** Stops publishing new messages and waits for those in flight (including retries). */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await Promise.allSettled([...this.#pending]);
  }

  async close(): Promise<void> {
    await this.stop();
    await this.#nc?.close().catch(() => {});
    this.#nc = undefined;
  }

  #track(p: Promise<void>): void {
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
  }

  #pickKey(): string {
    const { keys, rng, keyDistribution } = this.#opts;
    if (keyDistribution === "hot" && rng.next() < 0.5)
      return keys[rng.int(Math.max(1, Math.ceil(keys.length / 10)))] as string;
    return rng.pick(keys);
  }

  async #publishOne(key: string, poison?: PoisonKind): Promise<void> {
    const { history, rng } = this.#opts;
    const id = uuidv7();
    const payload = poison ? encodePoison(poison, key) : encodeEvent(key, rng);
    const h = natsHeaders();
    for (const [k, v] of eventHeaders({
      id,
      type: WORKLOAD_TYPE.$type,
      source: "/jetkit/chaos",
      time: new Date(),
      partitionKey: key,
    }))
      h.set(k, v);
    this.stats.inFlight++;
    const first = Date.now();
    try {
      for (let attempt = 1; attempt <= this.#opts.attempts; attempt++) {
        history.add({
          t: Date.now(),
          kind: "publish",
          id,
          key,
          subject: WORKLOAD_SUBJECT,
          attempt,
          ...(poison ? { poison } : {}),
        });
        this.stats.attempted++;
        try {
          const js = this.#js;
          if (!js) throw new Error("producer is not connected");
          const ack = await js.publish(WORKLOAD_SUBJECT, payload, {
            msgID: id,
            headers: h,
            timeout: this.#opts.timeoutMs,
          });
          const t = Date.now();
          history.add({
            t,
            kind: "ack",
            id,
            key,
            seq: ack.seq,
            stream: ack.stream,
            duplicate: ack.duplicate,
            latencyMs: t - first,
          });
          this.stats.acked++;
          if (!poison && this.#duplicateRate > 0 && rng.next() < this.#duplicateRate) {
            await this.#repeat(id, key, payload, h);
          }
          return;
        } catch (err) {
          const final = attempt === this.#opts.attempts;
          history.add({
            t: Date.now(),
            kind: "publish_error",
            id,
            key,
            attempt,
            error: (err as Error).message,
            final,
          });
          this.stats.errors++;
          if (final) this.stats.failed++;
          else await new Promise((r) => setTimeout(r, 100 * 2 ** (attempt - 1) * (0.5 + rng.next())));
        }
      }
    } finally {
      this.stats.inFlight--;
    }
  }

  /** A duplicate publish: same id, same bytes; JetStream must answer `duplicate` with the first sequence. */
  async #repeat(
    id: string,
    key: string,
    payload: Uint8Array,
    h: ReturnType<typeof natsHeaders>,
  ): Promise<void> {
    const { history } = this.#opts;
    const start = Date.now();
    history.add({ t: start, kind: "publish", id, key, subject: WORKLOAD_SUBJECT, attempt: 1, repeat: true });
    try {
      const ack = await this.#js?.publish(WORKLOAD_SUBJECT, payload, {
        msgID: id,
        headers: h,
        timeout: this.#opts.timeoutMs,
      });
      if (ack) {
        const t = Date.now();
        history.add({
          t,
          kind: "ack",
          id,
          key,
          seq: ack.seq,
          stream: ack.stream,
          duplicate: ack.duplicate,
          latencyMs: t - start,
        });
      }
    } catch (err) {
      history.add({
        t: Date.now(),
        kind: "publish_error",
        id,
        key,
        attempt: 1,
        error: (err as Error).message,
        final: true,
      });
    }
  }
}
