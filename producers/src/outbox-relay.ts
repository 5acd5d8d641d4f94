import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { isJetkitError } from "@jetkit/contracts";
import { type Logger, pino } from "pino";
import { ProducerErrorCodes } from "./errors.js";
import type { Producer } from "./producer.js";
import { backoffDelay } from "./retry.js";

/** One outbox row as the relay reads it. */
export interface OutboxRow {
  /** Position in the outbox: rows of one key are published in ascending `seq`. */
  seq: number;
  eventId: string;
  type: string;
  payload: Uint8Array;
  key: string | null;
  correlationId: string | null;
  causationId: string | null;
  time: Date;
}

/**
 * What the relay needs from a database: the seam between {@link startOutboxRelay} and an outbox
 * (`SqliteOutbox`, `PgOutbox`). One adapter serves one relay. Every method may throw (a database
 * that is down): the relay logs it, backs off and tries again.
 */
export interface OutboxAdapter {
  /** Table name, for logs. */
  readonly table: string;
  /**
   * Takes or renews the relay lease for `owner` until `leaseMs` from now on the database's clock,
   * when it is free, expired or already `owner`'s; true when `owner` holds it.
   */
  lease(owner: string, leaseMs: number): Promise<boolean>;
  /** Gives the lease up, if `owner` holds it. */
  release(owner: string): Promise<void>;
  /**
   * Marks the rows `sent` (the previous round's acknowledged ones) as sent, then returns the first
   * `limit` rows not sent, in `seq` order: one round trip where the database allows it.
   */
  next(limit: number, sent: readonly number[]): Promise<OutboxRow[]>;
  /** Marks rows sent (what the relay still has to mark when it stops or loses the lease). */
  markSent(seqs: readonly number[]): Promise<void>;
  /** Resolves after `ms`, or earlier when rows may have been added (or `signal` aborts). */
  idle(ms: number, signal: AbortSignal): Promise<void>;
  /** Frees what the adapter holds (connections). */
  close(): Promise<void>;
}

/** An outbox the relay can run on: it hands each relay its own adapter. */
export interface RelayableOutbox {
  relayAdapter(): OutboxAdapter;
}

/** Options of {@link startOutboxRelay}. */
export interface OutboxRelayOptions {
  /** The producer that publishes the rows (its retries, breaker and deadline apply). */
  producer: Producer;
  /** Rows read and published per round. Default: 256. */
  batch?: number;
  /** Publishes in flight at once (at most one per partition key, so each key stays in order). Default: 64. */
  window?: number;
  /**
   * Wait between rounds when the outbox is empty, in ms (a `PgOutbox` relay also wakes on the
   * NOTIFY its `add` sends at commit). Default: 100.
   */
  idleMs?: number;
  /**
   * How long the relay lease lasts without renewal, in ms: several relays on one outbox take
   * turns, one at a time; a relay that dies hands over after this. Default: 5000.
   */
  leaseMs?: number;
  /** Logger. Default: pino at `$JETKIT_LOG_LEVEL` (info). */
  logger?: Logger;
}

/** A running relay: {@link stop} finishes the round in progress and gives the lease up. */
export interface OutboxRelay {
  /** Rows published (and marked sent) by this relay; `duplicates`: of them, already in the stream. */
  readonly stats: { published: number; duplicates: number; rounds: number };
  /** True while this relay holds the lease. */
  readonly active: boolean;
  stop(): Promise<void>;
}

/**
 * Starts relaying `outbox` (a `SqliteOutbox` or a `PgOutbox`) to JetStream.
 *
 * The rule that keeps the stream free of second copies and of reordering, with any number of
 * relays: (1) per key, a relay publishes a row only after the stream acknowledged the previous
 * row of that key, and starts each round from the first row not marked sent; (2) every row is
 * published with its event id as `Nats-Msg-Id`. So a row any relay publishes late (it was paused,
 * or crashed before marking) is one the stream already stored or stores now for the first time,
 * never one behind a later row of its key, and its copy is dropped (within the stream's duplicate
 * window). On top of that, a lease row lets one relay publish at a time, so the others are
 * standbys rather than senders of copies: the lease expires on the database's clock, and a relay
 * publishes nothing once it renewed its lease more than lease/2 ago by its own monotonic clock
 * (measured from before the renewal was sent), so a relay paused past its lease cannot keep
 * publishing beside its successor, whatever the hosts' clock offsets.
 *
 * Within a round, rows go out in outbox order with at most one publish in flight per key; the
 * round's acknowledged rows are marked sent with the next read; a failed publish stops the round
 * (later rows of its key wait) and is retried with backoff, never skipped.
 */
export function startOutboxRelay(outbox: RelayableOutbox, opts: OutboxRelayOptions): OutboxRelay {
  return new Relay(outbox.relayAdapter(), opts);
}

class Relay implements OutboxRelay {
  readonly stats = { published: 0, duplicates: 0, rounds: 0 };
  readonly #o: Required<Omit<OutboxRelayOptions, "logger">>;
  readonly #log: Logger;
  readonly #db: OutboxAdapter;
  readonly #owner = `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`;
  readonly #stopping = new AbortController();
  /** performance.now() from before the lease was last taken or renewed. */
  #leasedAt: number | undefined;
  readonly #loop: Promise<void>;

  constructor(db: OutboxAdapter, o: OutboxRelayOptions) {
    this.#db = db;
    this.#o = {
      producer: o.producer,
      batch: o.batch ?? 256,
      window: o.window ?? 64,
      idleMs: o.idleMs ?? 100,
      leaseMs: o.leaseMs ?? 5000,
    };
    this.#log = (
      o.logger ?? pino({ name: "jetkit-outbox", level: process.env.JETKIT_LOG_LEVEL ?? "info" })
    ).child({ outbox: db.table });
    this.#loop = this.#run();
  }

  get active(): boolean {
    return this.#fresh();
  }

  get #stopped(): boolean {
    return this.#stopping.signal.aborted;
  }

  #fresh(): boolean {
    return this.#leasedAt !== undefined && performance.now() - this.#leasedAt < this.#o.leaseMs / 2;
  }

  /** Renewed every lease/4 (not every round: one database write less per round). */
  #renewDue(): boolean {
    return this.#leasedAt === undefined || performance.now() - this.#leasedAt >= this.#o.leaseMs / 4;
  }

  async #takeLease(): Promise<boolean> {
    const sentAt = performance.now();
    let got = false;
    try {
      got = await this.#db.lease(this.#owner, this.#o.leaseMs);
    } catch (err) {
      this.#log.warn({ err }, "could not take or renew the outbox relay lease");
    }
    const was = this.#leasedAt !== undefined;
    this.#leasedAt = got ? sentAt : undefined;
    if (got && !was) this.#log.info({ owner: this.#owner }, "outbox relay lease taken: relaying");
    if (!got && was) this.#log.warn("outbox relay lease lost (taken over, or the database unreachable)");
    return got;
  }

  /** Acknowledged rows not marked sent yet: marked with the next read (or at stop). */
  #acked: number[] = [];

  async #flush(): Promise<void> {
    if (this.#acked.length === 0) return;
    try {
      await this.#db.markSent(this.#acked);
      this.#acked = [];
    } catch (err) {
      this.#log.warn(
        { err },
        "could not mark outbox rows sent; they will be published again (copies the stream drops)",
      );
    }
  }

  async #run(): Promise<void> {
    let failures = 0;
    const signal = this.#stopping.signal;
    while (!this.#stopped) {
      if (this.#renewDue() && !(await this.#takeLease())) {
        await this.#flush();
        await pause(Math.max(50, this.#o.leaseMs / 4), signal);
        continue;
      }
      let failed: boolean;
      try {
        const rows = await this.#db.next(this.#o.batch, this.#acked);
        this.#acked = [];
        if (rows.length === 0) {
          await this.#db.idle(this.#o.idleMs, signal);
          continue;
        }
        this.stats.rounds++;
        failed = await this.#publishRound(rows);
      } catch (err) {
        this.#log.warn({ err }, "outbox not readable or not markable; retrying");
        failed = true;
      }
      if (failed) {
        failures++;
        await pause(backoffDelay(failures, { initialDelayMs: 100, maxDelayMs: 5000 }), signal);
      } else failures = 0;
    }
    await this.#flush();
  }

  /** Publishes `rows` in order, one in flight per key, noting the acknowledged ones; true when one failed. */
  async #publishRound(rows: OutboxRow[]): Promise<boolean> {
    const byKey = new Map<string, Promise<boolean>>();
    const inFlight = new Set<Promise<boolean>>();
    const acked = this.#acked;
    let failed = false;
    for (const row of rows) {
      if (failed || this.#stopped) break;
      if (this.#renewDue() && !(await this.#takeLease())) break;
      if (!this.#fresh()) break; // paused past the lease: the next relay owns the outbox now
      const key = row.key ?? row.eventId;
      const before = byKey.get(key);
      if (before && !(await before)) break; // an earlier row of this key failed: keep the order
      while (inFlight.size >= this.#o.window) await Promise.race(inFlight);
      if (failed || !this.#fresh()) break;
      const p: Promise<boolean> = this.#publish(row).then((ok) => {
        inFlight.delete(p);
        if (ok) acked.push(row.seq);
        else failed = true;
        return ok;
      });
      inFlight.add(p);
      byKey.set(key, p);
    }
    await Promise.all(inFlight);
    // Marked with the next read; unmarked rows (a crash before it, a database down) are published
    // again: copies the stream drops.
    return failed;
  }

  async #publish(row: OutboxRow): Promise<boolean> {
    try {
      const ack = await this.#o.producer.publishEncoded({
        type: row.type,
        payload: row.payload,
        msgId: row.eventId,
        ...(row.key !== null ? { key: row.key } : {}),
        ...(row.correlationId !== null ? { correlationId: row.correlationId } : {}),
        ...(row.causationId !== null ? { causationId: row.causationId } : {}),
        time: row.time,
      });
      this.stats.published++;
      if (ack.duplicate) this.stats.duplicates++;
      return true;
    } catch (err) {
      const permanent =
        isJetkitError(err, ProducerErrorCodes.REJECTED) ||
        isJetkitError(err, ProducerErrorCodes.WRONG_STREAM);
      this.#log[permanent ? "error" : "warn"](
        { err, outbox_seq: row.seq, msg_id: row.eventId },
        permanent
          ? "outbox row refused by the stream; retrying it (later rows of its key wait): fix the stream or remove the row"
          : "outbox row not published; retrying it",
      );
      return false;
    }
  }

  async stop(): Promise<void> {
    this.#stopping.abort();
    await this.#loop;
    try {
      await this.#db.release(this.#owner);
    } catch {}
    this.#leasedAt = undefined;
    await this.#db.close().catch(() => {});
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
