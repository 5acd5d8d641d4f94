import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import {
  type Catalog,
  ContractValidator,
  type EventType,
  getCatalog,
  isJetkitError,
  JetkitError,
  partitionKeyOf,
  uuidv7,
} from "@jetkit/contracts";
import { type Logger, pino } from "pino";
import { ProducerErrorCodes } from "./errors.js";
import type { Producer, PublishOptions } from "./producer.js";
import { backoffDelay, sleep } from "./retry.js";

/** Options of {@link SqliteOutbox.open}. */
export interface SqliteOutboxOptions {
  /** Catalog the events belong to. Default: the packaged contracts. */
  catalog?: Catalog;
  /** Table of the outbox rows (a second table, `<table>_relay`, holds the relay lease). Default: `jetkit_outbox`. */
  table?: string;
}

/** What {@link SqliteOutbox.add} stores besides the event (the producer's publish options). */
export type OutboxAddOptions = Pick<
  PublishOptions,
  "msgId" | "correlationId" | "causationId" | "key" | "time"
>;

const TABLE = /^[A-Za-z_][A-Za-z0-9_]{0,55}$/;

interface OutboxRow {
  seq: number;
  event_id: string;
  type: string;
  payload: Uint8Array;
  key: string | null;
  correlation_id: string | null;
  causation_id: string | null;
  time: string;
}

/**
 * A transactional outbox in the service's own SQLite database (`node:sqlite`): the service writes
 * its business change and its events in one transaction ({@link add} inside it), and a relay
 * ({@link startOutboxRelay}) publishes the rows in order, each with its event id as `Nats-Msg-Id`,
 * then marks them sent. An event is published if and only if its transaction committed; a relay
 * that crashes after a publish and before the mark publishes the row again with the same msg id,
 * which the stream drops as a duplicate (within its duplicate window).
 */
export class SqliteOutbox {
  readonly db: DatabaseSync;
  readonly table: string;
  readonly #catalog: Catalog;
  readonly #validator: ContractValidator;
  readonly #insert: StatementSync;

  private constructor(db: DatabaseSync, table: string, catalog: Catalog) {
    this.db = db;
    this.table = table;
    this.#catalog = catalog;
    this.#validator = new ContractValidator(catalog);
    this.#insert = db.prepare(
      `INSERT INTO ${table} (event_id, type, payload, key, correlation_id, causation_id, time) VALUES (?, ?, ?, ?, ?, ?, ?)`,
    );
  }

  /** Creates the outbox tables when missing. Throws `JK_PRODUCER_OPTIONS` for a bad table name. */
  static open(db: DatabaseSync, opts: SqliteOutboxOptions = {}): SqliteOutbox {
    const table = opts.table ?? "jetkit_outbox";
    if (!TABLE.test(table)) {
      throw new JetkitError(
        ProducerErrorCodes.OPTIONS,
        `outbox table name "${table}" is invalid: use letters, digits and _ (it is written into SQL).`,
        { details: { option: "table" } },
      );
    }
    db.exec(
      `CREATE TABLE IF NOT EXISTS ${table} (seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, payload BLOB NOT NULL, key TEXT, correlation_id TEXT, causation_id TEXT, time TEXT NOT NULL, sent_at TEXT)`,
    );
    db.exec(`CREATE INDEX IF NOT EXISTS ${table}_unsent ON ${table} (seq) WHERE sent_at IS NULL`);
    db.exec(
      `CREATE TABLE IF NOT EXISTS ${table}_relay (id INTEGER PRIMARY KEY CHECK (id = 1), owner TEXT NOT NULL, expires INTEGER NOT NULL)`,
    );
    db.exec(`INSERT OR IGNORE INTO ${table}_relay (id, owner, expires) VALUES (1, '', 0)`);
    return new SqliteOutbox(db, table, opts.catalog ?? getCatalog());
  }

  /**
   * Stores `event` in the outbox; call it inside the transaction of the business change (it runs
   * on the same connection). The event is encoded and validated now: one that breaks its contract
   * throws `JK_CONTRACT_VIOLATION` and nothing is stored. Returns its event id (`ce-id`, `Nats-Msg-Id`).
   */
  add<T>(Type: EventType<T>, event: T, opts: OutboxAddOptions = {}): string {
    const spec = this.#catalog.byType(Type.$type);
    const payload = Type.encode(event).finish();
    this.#validator.checkEvent(spec, event, () => payload);
    const id = opts.msgId ?? uuidv7();
    const key =
      opts.key ??
      (spec.partitionKey ? partitionKeyOf(spec, this.#catalog.decode(spec, payload)) : undefined) ??
      null;
    this.#insert.run(
      id,
      spec.type,
      payload,
      key,
      opts.correlationId ?? null,
      opts.causationId ?? null,
      (opts.time ?? new Date()).toISOString(),
    );
    return id;
  }

  /** Rows not yet published. */
  pending(): number {
    const r = this.db.prepare(`SELECT count(*) AS n FROM ${this.table} WHERE sent_at IS NULL`).get() as {
      n: number;
    };
    return Number(r.n);
  }
}

/** Options of {@link startOutboxRelay}. */
export interface OutboxRelayOptions {
  /** The producer that publishes the rows (its retries, breaker and deadline apply). */
  producer: Producer;
  /** Rows read and published per round. Default: 256. */
  batch?: number;
  /** Publishes in flight at once (at most one per partition key, so each key stays in order). Default: 64. */
  window?: number;
  /** Wait between rounds when the outbox is empty, in ms. Default: 100. */
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
 * Starts relaying `outbox` to JetStream. Several relays (processes) may run on one outbox: a lease
 * row lets one of them publish at a time, and it publishes nothing once its lease is not fresh
 * (renewed less than lease/2 ago), so a paused relay that resumes cannot publish behind its
 * successor. Within a round, rows go out in outbox order with at most one publish in flight per
 * partition key, and are marked sent once acknowledged; a failed publish stops the round (later
 * rows of its key wait) and is retried with backoff, never skipped.
 */
export function startOutboxRelay(outbox: SqliteOutbox, opts: OutboxRelayOptions): OutboxRelay {
  return new Relay(outbox, opts);
}

class Relay implements OutboxRelay {
  readonly stats = { published: 0, duplicates: 0, rounds: 0 };
  readonly #o: Required<Omit<OutboxRelayOptions, "logger">>;
  readonly #log: Logger;
  readonly #owner = `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`;
  readonly #select: StatementSync;
  readonly #mark: StatementSync;
  readonly #lease: StatementSync;
  readonly #free: StatementSync;
  /** performance.now() when the lease was last taken or renewed. */
  #leasedAt: number | undefined;
  #stopped = false;
  readonly #loop: Promise<void>;

  constructor(outbox: SqliteOutbox, o: OutboxRelayOptions) {
    this.#o = {
      producer: o.producer,
      batch: o.batch ?? 256,
      window: o.window ?? 64,
      idleMs: o.idleMs ?? 100,
      leaseMs: o.leaseMs ?? 5000,
    };
    this.#log = (
      o.logger ?? pino({ name: "jetkit-outbox", level: process.env.JETKIT_LOG_LEVEL ?? "info" })
    ).child({
      outbox: outbox.table,
    });
    const t = outbox.table;
    const db = outbox.db;
    this.#select = db.prepare(`SELECT * FROM ${t} WHERE sent_at IS NULL ORDER BY seq LIMIT ?`);
    this.#mark = db.prepare(`UPDATE ${t} SET sent_at = ? WHERE seq = ?`);
    this.#lease = db.prepare(
      `UPDATE ${t}_relay SET owner = ?, expires = ? WHERE id = 1 AND (owner = ? OR owner = '' OR expires < ?)`,
    );
    this.#free = db.prepare(`UPDATE ${t}_relay SET owner = '', expires = 0 WHERE id = 1 AND owner = ?`);
    this.#loop = this.#run();
  }

  get active(): boolean {
    return this.#fresh();
  }

  #fresh(): boolean {
    return this.#leasedAt !== undefined && performance.now() - this.#leasedAt < this.#o.leaseMs / 2;
  }

  /** Takes or renews the lease (the database's clock is this host's: SQLite is local). */
  #takeLease(): boolean {
    const now = Date.now();
    const sentAt = performance.now();
    let got = false;
    try {
      got = Number(this.#lease.run(this.#owner, now + this.#o.leaseMs, this.#owner, now).changes) === 1;
    } catch (err) {
      this.#log.warn({ err }, "could not take or renew the outbox relay lease");
    }
    const was = this.#leasedAt !== undefined;
    this.#leasedAt = got ? sentAt : undefined;
    if (got && !was) this.#log.info({ owner: this.#owner }, "outbox relay lease taken: relaying");
    if (!got && was) this.#log.warn("outbox relay lease lost: another relay took over");
    return got;
  }

  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#stopped) {
      if (!this.#takeLease()) {
        await sleep(Math.max(50, this.#o.leaseMs / 4));
        continue;
      }
      const rows = this.#select.all(this.#o.batch) as unknown as OutboxRow[];
      if (rows.length === 0) {
        await sleep(this.#o.idleMs);
        continue;
      }
      this.stats.rounds++;
      const failed = await this.#publishRound(rows);
      if (failed) {
        failures++;
        await sleep(backoffDelay(failures, { initialDelayMs: 100, maxDelayMs: 5000 }));
      } else failures = 0;
    }
  }

  /** Publishes `rows` in order, one in flight per key; true when one failed (the round stops there). */
  async #publishRound(rows: OutboxRow[]): Promise<boolean> {
    const byKey = new Map<string, Promise<boolean>>();
    const inFlight = new Set<Promise<boolean>>();
    let failed = false;
    const renewEvery = this.#o.leaseMs / 4;
    let renewedAt = performance.now();
    for (const row of rows) {
      if (failed || this.#stopped) break;
      if (performance.now() - renewedAt > renewEvery) {
        if (!this.#takeLease()) break;
        renewedAt = performance.now();
      }
      if (!this.#fresh()) break; // paused past the lease: the next relay owns the outbox now
      const key = row.key ?? row.event_id;
      const before = byKey.get(key);
      if (before && !(await before)) break; // an earlier row of this key failed: keep the order
      while (inFlight.size >= this.#o.window) await Promise.race(inFlight);
      if (failed || !this.#fresh()) break;
      const p: Promise<boolean> = this.#publish(row).then((ok) => {
        inFlight.delete(p);
        if (!ok) failed = true;
        return ok;
      });
      inFlight.add(p);
      byKey.set(key, p);
    }
    await Promise.all(inFlight);
    return failed;
  }

  async #publish(row: OutboxRow): Promise<boolean> {
    try {
      const ack = await this.#o.producer.publishEncoded({
        type: row.type,
        payload: row.payload,
        msgId: row.event_id,
        ...(row.key !== null ? { key: row.key } : {}),
        ...(row.correlation_id !== null ? { correlationId: row.correlation_id } : {}),
        ...(row.causation_id !== null ? { causationId: row.causation_id } : {}),
        time: new Date(row.time),
      });
      this.#mark.run(new Date().toISOString(), row.seq);
      this.stats.published++;
      if (ack.duplicate) this.stats.duplicates++;
      return true;
    } catch (err) {
      const permanent =
        isJetkitError(err, ProducerErrorCodes.REJECTED) ||
        isJetkitError(err, ProducerErrorCodes.WRONG_STREAM);
      this.#log[permanent ? "error" : "warn"](
        { err, outbox_seq: row.seq, msg_id: row.event_id },
        permanent
          ? "outbox row refused by the stream; retrying it (later rows of its key wait): fix the stream or remove the row"
          : "outbox row not published; retrying it",
      );
      return false;
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
    try {
      this.#free.run(this.#owner);
    } catch {}
    this.#leasedAt = undefined;
  }
}
