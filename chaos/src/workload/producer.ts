import { DatabaseSync } from "node:sqlite";
import { eventHeaders, isJetkitError, uuidv7 } from "@jetkit/contracts";
import {
  OrderFulfillmentCompleted,
  OrderFulfillmentStarted,
} from "@jetkit/contracts/gen/shop/order/v1/events";
import { createProducer, type Producer, ProducerErrorCodes, SqliteOutbox } from "@jetkit/producers";
import { type FulfillmentEvent, randomFulfillment } from "@jetkit/producers/services";
import { type JetStreamClient, jetstream } from "@nats-io/jetstream";
import { type NatsConnection, headers as natsHeaders } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { pino } from "pino";
import type { History, PoisonKind } from "../history.js";
import type { Rng } from "../prng.js";
import { encodePoison, POISON_SUBJECT, workloadEventId } from "./events.js";
import { attemptLogStream, type SdkAttemptFailure } from "./sdk-log.js";

/** Options of the workload producer. */
export interface ProducerOptions {
  /** Client URLs (the fault proxies). */
  servers: string[];
  /** Events per second (each order is two events: started, then completed once started is acked). */
  ratePerSec: number;
  /** Partition keys (order ids) to publish under. */
  keys: string[];
  /** `uniform`, or `hot`: half of the traffic goes to the first tenth of the keys. */
  keyDistribution: "uniform" | "hot";
  /**
   * Most events awaiting an ack or waiting for their key at once (also the SDK's `maxInFlight`);
   * beyond it ticks are skipped.
   */
  maxInFlight: number;
  /** How long one attempt waits for its ack (the SDK's `retry.attemptTimeoutMs`). */
  timeoutMs: number;
  /** Give up on an event this long after its first attempt (the SDK's `retry.deadlineMs`). */
  deadlineMs: number;
  /** The SDK's circuit breaker. */
  breaker: { failureThreshold: number; coolDownMs: number };
  /** Probability that an acked event is published once more with the same id. */
  duplicateRate: number;
  rng: Rng;
  history: History;
  /**
   * Transactional outbox mode: each event is committed to this SQLite database's outbox (with a
   * row of the service's own table, in one transaction) instead of published; relay processes
   * publish it. The history's `publish` is the commit, its `ack` the relay's.
   */
  outbox?: { file: string };
}

/** Live counters for progress lines and abort conditions. */
export interface ProducerStats {
  attempted: number;
  acked: number;
  errors: number;
  failed: number;
  throttled: number;
  inFlight: number;
  /** Orders waiting for an earlier event of their key to be settled (a key publishes one event at a time). */
  queued: number;
  /** Publishes the SDK's open circuit breaker refused (nothing sent; the workload waited and retried). */
  breakerRejections: number;
}

interface Tracked {
  id: string;
  key: string;
  first: number;
  attempt: number;
  pseq: number;
}

/** Per key: the last sequence number given, and the tail of the key's publish chain. */
interface KeyLane {
  pseq: number;
  tail: Promise<void>;
}

/**
 * The workload: the fulfillment example service's orders (`randomFulfillment` from
 * `@jetkit/producers/services`: `order.fulfillment.started`, then `.completed` caused by it) over
 * the drill's key space, published with the producer SDK (`createProducer`: contract validation,
 * CloudEvents headers, retries with the same `Nats-Msg-Id`, circuit breaker, `maxInFlight`).
 *
 * Every attempt is in the history: the first when the workload calls `publish`, the retries from
 * the SDK's structured debug log (`publish attempt failed; retrying` with `msg_id`, `attempt`,
 * `reason`), the ack or final failure from the call's result. Poison messages go in raw: the SDK
 * would refuse them, and they are meant to be bad.
 */
export class WorkloadProducer {
  readonly stats: ProducerStats = {
    attempted: 0,
    acked: 0,
    errors: 0,
    failed: 0,
    throttled: 0,
    inFlight: 0,
    queued: 0,
    breakerRejections: 0,
  };
  #opts: ProducerOptions;
  #producer: Producer | undefined;
  #raw: NatsConnection | undefined;
  #rawJs: JetStreamClient | undefined;
  #timer: NodeJS.Timeout | undefined;
  #pending = new Set<Promise<void>>();
  #tracked = new Map<string, Tracked>();
  #lanes = new Map<string, KeyLane>();
  #poisonRate = 0;
  #duplicateRate: number;
  #outbox: { db: DatabaseSync; box: SqliteOutbox; business: ReturnType<DatabaseSync["prepare"]> } | undefined;
  /** Outbox mode: when each event was committed, for the relay's ack latency. */
  #committedAt = new Map<string, number>();

  constructor(opts: ProducerOptions) {
    this.#opts = opts;
    this.#duplicateRate = opts.duplicateRate;
  }

  async connect(): Promise<void> {
    const o = this.#opts;
    if (o.outbox) {
      const db = new DatabaseSync(o.outbox.file);
      db.exec("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000;");
      db.exec(
        "CREATE TABLE IF NOT EXISTS fulfillment_steps (id TEXT PRIMARY KEY, key TEXT NOT NULL, pseq INTEGER NOT NULL)",
      );
      this.#outbox = {
        db,
        box: SqliteOutbox.open(db),
        business: db.prepare("INSERT INTO fulfillment_steps (id, key, pseq) VALUES (?, ?, ?)"),
      };
    }
    const connection = {
      // The cluster's advertised addresses bypass the fault proxies: stay on the URLs given.
      ignoreClusterUpdates: true,
      reconnectTimeWait: 250,
      timeout: 5000,
    };
    this.#producer = await createProducer({
      servers: o.servers,
      name: "chaos-fulfillment",
      logger: pino(
        { level: "debug" },
        attemptLogStream((f) => this.#retried(f)),
      ),
      maxInFlight: o.maxInFlight,
      retry: {
        attemptTimeoutMs: o.timeoutMs,
        deadlineMs: o.deadlineMs,
        initialDelayMs: 50,
        maxDelayMs: 1000,
      },
      breaker: o.breaker,
      connection,
    });
    this.#raw = await connect({
      servers: o.servers,
      name: "chaos-poison",
      maxReconnectAttempts: -1,
      ...connection,
    });
    this.#rawJs = jetstream(this.#raw, { timeout: o.timeoutMs });
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
    const orderRate = this.#opts.ratePerSec / 2;
    let sent = 0;
    let poisonSent = 0;
    let poisonSince = started;
    let lastPoisonRate = 0;
    this.#timer = setInterval(() => {
      const now = performance.now();
      const due = Math.floor(((now - started) / 1000) * orderRate) - sent;
      for (let i = 0; i < due; i++) {
        sent++;
        if (this.stats.inFlight + this.stats.queued >= this.#opts.maxInFlight) {
          this.stats.throttled++;
          continue;
        }
        this.#track(this.#enqueue(this.#pickKey()));
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
          this.#track(this.#poison(this.#pickKey(), kind));
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
    await this.#producer?.close({ timeoutMs: 2000 }).catch(() => {});
    await this.#raw?.close().catch(() => {});
    this.#outbox?.db.close();
    this.#outbox = undefined;
    this.#producer = undefined;
    this.#raw = undefined;
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

  /**
   * A key publishes one event at a time, in the order of its sequence numbers: the next waits until
   * the one before is acknowledged or has finally failed. So for events that were acknowledged the
   * stream's order of a key is the producer's, and a consumer that keeps per-key order must effect
   * them in ascending sequence.
   */
  #enqueue(key: string): Promise<void> {
    let lane = this.#lanes.get(key);
    if (!lane) {
      lane = { pseq: 0, tail: Promise.resolve() };
      this.#lanes.set(key, lane);
    }
    const l = lane;
    // The event contents are drawn now, in tick order, so the seed decides them whatever the timing.
    const order = randomFulfillment(key, () => this.#opts.rng.next());
    this.stats.queued++;
    const run = l.tail.then(() => {
      this.stats.queued--;
      return this.#order(key, l, order);
    });
    l.tail = run.catch(() => {});
    return run;
  }

  /** One order of the fulfillment service: started, then (once acked) completed, caused by it. */
  async #order(key: string, lane: KeyLane, order: ReturnType<typeof randomFulfillment>): Promise<void> {
    const first = await this.#publish(OrderFulfillmentStarted, order.started, key, ++lane.pseq);
    if (!first) return;
    await this.#publish(OrderFulfillmentCompleted, order.completed, key, ++lane.pseq, first);
  }

  /**
   * Publishes one event through the SDK (or commits it to the outbox), recording every attempt;
   * resolves with its msg id once acknowledged (committed), or undefined.
   */
  async #publish<E extends FulfillmentEvent>(
    Type: typeof OrderFulfillmentStarted | typeof OrderFulfillmentCompleted,
    event: E,
    key: string,
    pseq: number,
    causationId?: string,
  ): Promise<string | undefined> {
    const { history } = this.#opts;
    if (this.#outbox) return this.#commit(Type, event, key, pseq, causationId);
    const producer = this.#producer;
    if (!producer) throw new Error("producer is not connected");
    const subject =
      Type === OrderFulfillmentStarted ? "order.fulfillment.started" : "order.fulfillment.completed";
    const id = workloadEventId(uuidv7(), pseq);
    const t: Tracked = { id, key, first: Date.now(), attempt: 1, pseq };
    this.#tracked.set(id, t);
    this.stats.inFlight++;
    const options = { msgId: id, key, ...(causationId ? { causationId, correlationId: causationId } : {}) };
    try {
      for (;;) {
        history.add({ t: Date.now(), kind: "publish", id, key, subject, attempt: t.attempt, pseq });
        this.stats.attempted++;
        try {
          const ack = await (Type === OrderFulfillmentStarted
            ? producer.publish(OrderFulfillmentStarted, event as OrderFulfillmentStarted, options)
            : producer.publish(OrderFulfillmentCompleted, event as OrderFulfillmentCompleted, options));
          this.#acked(t, ack);
          if (this.#duplicateRate > 0 && this.#opts.rng.next() < this.#duplicateRate) {
            await this.#repeat(Type, event, key, id, subject, pseq);
          }
          return ack.msgId;
        } catch (err) {
          // An open breaker sent nothing: a service buffers and tries again later with the same id.
          const open = isJetkitError(err, ProducerErrorCodes.CIRCUIT_OPEN);
          const final = !open || Date.now() - t.first >= this.#opts.deadlineMs;
          this.#failed(t, err, final);
          if (open) this.stats.breakerRejections++;
          if (final) return undefined;
          const wait = Number((err as { details?: { retry_in_ms?: number } }).details?.retry_in_ms ?? 200);
          await new Promise((r) => setTimeout(r, Math.max(20, Math.min(wait, 1000))));
          t.attempt++;
        }
      }
    } finally {
      this.#tracked.delete(id);
      this.stats.inFlight--;
    }
  }

  /**
   * Outbox mode: the event and a row of the service's own table in one SQLite transaction. A
   * commit is final (the outbox's promise: committed, hence published once); a failed one stores
   * neither and counts as a failed publish.
   */
  #commit<E extends FulfillmentEvent>(
    Type: typeof OrderFulfillmentStarted | typeof OrderFulfillmentCompleted,
    event: E,
    key: string,
    pseq: number,
    causationId?: string,
  ): string | undefined {
    const { history } = this.#opts;
    const outbox = this.#outbox!;
    const subject =
      Type === OrderFulfillmentStarted ? "order.fulfillment.started" : "order.fulfillment.completed";
    const id = workloadEventId(uuidv7(), pseq);
    const t: Tracked = { id, key, first: Date.now(), attempt: 1, pseq };
    history.add({ t: t.first, kind: "publish", id, key, subject, attempt: 1, pseq, outbox: true });
    this.stats.attempted++;
    const options = { msgId: id, key, ...(causationId ? { causationId, correlationId: causationId } : {}) };
    try {
      outbox.db.exec("BEGIN IMMEDIATE");
      outbox.business.run(id, key, pseq);
      if (Type === OrderFulfillmentStarted)
        outbox.box.add(OrderFulfillmentStarted, event as OrderFulfillmentStarted, options);
      else outbox.box.add(OrderFulfillmentCompleted, event as OrderFulfillmentCompleted, options);
      outbox.db.exec("COMMIT");
    } catch (err) {
      if (outbox.db.isTransaction) outbox.db.exec("ROLLBACK");
      this.#failed(t, err, true);
      return undefined;
    }
    this.#committedAt.set(id, t.first);
    return id;
  }

  /** Outbox mode: a relay's ack of a committed event (latency from its commit). */
  relayed(ack: { id: string; key: string; seq: number; stream: string; duplicate: boolean }): void {
    const now = Date.now();
    const committed = this.#committedAt.get(ack.id);
    this.#opts.history.add({
      t: now,
      kind: "ack",
      id: ack.id,
      key: ack.key,
      seq: ack.seq,
      stream: ack.stream,
      duplicate: ack.duplicate,
      latencyMs: committed === undefined ? 0 : now - committed,
    });
    if (!ack.duplicate) this.stats.acked++;
  }

  #acked(t: Tracked, ack: { seq: number; stream: string; duplicate: boolean }): void {
    const now = Date.now();
    this.#opts.history.add({
      t: now,
      kind: "ack",
      id: t.id,
      key: t.key,
      seq: ack.seq,
      stream: ack.stream,
      duplicate: ack.duplicate,
      latencyMs: now - t.first,
    });
    this.stats.acked++;
  }

  #failed(t: Tracked, err: unknown, final: boolean): void {
    const code = isJetkitError(err) ? `${err.code}: ` : "";
    this.#opts.history.add({
      t: Date.now(),
      kind: "publish_error",
      id: t.id,
      key: t.key,
      attempt: t.attempt,
      error: `${code}${(err as Error).message}`.slice(0, 300),
      final,
    });
    this.stats.errors++;
    if (final) this.stats.failed++;
  }

  /** A failed attempt inside the SDK (from its debug log): recorded, and the retry that follows it. */
  #retried(f: SdkAttemptFailure): void {
    const t = this.#tracked.get(f.msgId);
    if (!t) return;
    const { history } = this.#opts;
    const now = Date.now();
    history.add({
      t: now,
      kind: "publish_error",
      id: t.id,
      key: t.key,
      attempt: t.attempt,
      error: f.reason,
      final: false,
    });
    this.stats.errors++;
    t.attempt++;
    history.add({
      t: now,
      kind: "publish",
      id: t.id,
      key: t.key,
      subject: f.subject,
      attempt: t.attempt,
      pseq: t.pseq,
    });
    this.stats.attempted++;
  }

  /** A duplicate publish: same id, same event; JetStream must answer `duplicate` with the first sequence. */
  async #repeat<E extends FulfillmentEvent>(
    Type: typeof OrderFulfillmentStarted | typeof OrderFulfillmentCompleted,
    event: E,
    key: string,
    id: string,
    subject: string,
    pseq: number,
  ): Promise<void> {
    const { history } = this.#opts;
    const producer = this.#producer;
    if (!producer) return;
    const start = Date.now();
    history.add({ t: start, kind: "publish", id, key, subject, attempt: 1, repeat: true, pseq });
    try {
      const ack = await (Type === OrderFulfillmentStarted
        ? producer.publish(OrderFulfillmentStarted, event as OrderFulfillmentStarted, { msgId: id, key })
        : producer.publish(OrderFulfillmentCompleted, event as OrderFulfillmentCompleted, {
            msgId: id,
            key,
          }));
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
    } catch (err) {
      history.add({
        t: Date.now(),
        kind: "publish_error",
        id,
        key,
        attempt: 1,
        error: (err as Error).message.slice(0, 300),
        final: true,
      });
    }
  }

  /** A poison message, raw (the SDK validates and would refuse it): retried with the same id like any publish. */
  async #poison(key: string, kind: PoisonKind): Promise<void> {
    const { history, rng } = this.#opts;
    const id = uuidv7();
    const h = natsHeaders();
    for (const [k, v] of eventHeaders({
      id,
      type: OrderFulfillmentStarted.$type,
      source: "/jetkit/chaos-poison",
      time: new Date(),
      partitionKey: key,
    }))
      h.set(k, v);
    const payload = encodePoison(kind, key);
    const first = Date.now();
    this.stats.inFlight++;
    try {
      for (let attempt = 1; attempt <= 5; attempt++) {
        history.add({
          t: Date.now(),
          kind: "publish",
          id,
          key,
          subject: POISON_SUBJECT,
          attempt,
          poison: kind,
        });
        this.stats.attempted++;
        try {
          const js = this.#rawJs;
          if (!js) throw new Error("not connected");
          const ack = await js.publish(POISON_SUBJECT, payload, {
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
          return;
        } catch (err) {
          const final = attempt === 5;
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
}
