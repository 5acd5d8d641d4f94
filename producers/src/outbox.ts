import type { DatabaseSync, StatementSync } from "node:sqlite";
import { type Catalog, type EventType, getCatalog } from "@jetkit/contracts";
import { checkOutboxTable, type OutboxAddOptions, OutboxEncoder } from "./outbox-event.js";
import { type OutboxAdapter, type OutboxRow, pause, type RelayableOutbox } from "./outbox-relay.js";

/** Options of {@link SqliteOutbox.open}. */
export interface SqliteOutboxOptions {
  /** Catalog the events belong to. Default: the packaged contracts. */
  catalog?: Catalog;
  /** Table of the outbox rows (a second table, `<table>_relay`, holds the relay lease). Default: `jetkit_outbox`. */
  table?: string;
}

interface SqliteRow {
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
export class SqliteOutbox implements RelayableOutbox {
  readonly db: DatabaseSync;
  readonly table: string;
  readonly #encoder: OutboxEncoder;
  readonly #insert: StatementSync;

  private constructor(db: DatabaseSync, table: string, catalog: Catalog) {
    this.db = db;
    this.table = table;
    this.#encoder = new OutboxEncoder(catalog);
    this.#insert = db.prepare(
      `INSERT INTO ${table} (event_id, type, payload, key, correlation_id, causation_id, time) VALUES (?, ?, ?, ?, ?, ?, ?)`,
    );
  }

  /** Creates the outbox tables when missing. Throws `JK_PRODUCER_OPTIONS` for a bad table name. */
  static open(db: DatabaseSync, opts: SqliteOutboxOptions = {}): SqliteOutbox {
    const table = checkOutboxTable(opts.table ?? "jetkit_outbox");
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
    const r = this.#encoder.row(Type, event, opts);
    this.#insert.run(
      r.eventId,
      r.type,
      r.payload,
      r.key,
      r.correlationId,
      r.causationId,
      r.time.toISOString(),
    );
    return r.eventId;
  }

  /** The relay's view of this outbox: {@link startOutboxRelay} takes one per relay. */
  relayAdapter(): OutboxAdapter {
    return new SqliteAdapter(this.db, this.table);
  }

  /** Rows not yet published. */
  pending(): number {
    const r = this.db.prepare(`SELECT count(*) AS n FROM ${this.table} WHERE sent_at IS NULL`).get() as {
      n: number;
    };
    return Number(r.n);
  }
}

/** A relay's view of a SQLite outbox (the lease uses this host's clock: SQLite is local). */
class SqliteAdapter implements OutboxAdapter {
  readonly table: string;
  readonly #select: StatementSync;
  readonly #mark: StatementSync;
  readonly #lease: StatementSync;
  readonly #free: StatementSync;
  readonly #db: DatabaseSync;

  constructor(db: DatabaseSync, t: string) {
    this.table = t;
    this.#db = db;
    this.#select = db.prepare(`SELECT * FROM ${t} WHERE sent_at IS NULL ORDER BY seq LIMIT ?`);
    this.#mark = db.prepare(`UPDATE ${t} SET sent_at = ? WHERE seq = ?`);
    this.#lease = db.prepare(
      `UPDATE ${t}_relay SET owner = ?, expires = ? WHERE id = 1 AND (owner = ? OR owner = '' OR expires < ?)`,
    );
    this.#free = db.prepare(`UPDATE ${t}_relay SET owner = '', expires = 0 WHERE id = 1 AND owner = ?`);
  }

  async lease(owner: string, leaseMs: number): Promise<boolean> {
    const now = Date.now();
    return Number(this.#lease.run(owner, now + leaseMs, owner, now).changes) === 1;
  }

  async release(owner: string): Promise<void> {
    this.#free.run(owner);
  }

  async next(limit: number, sent: readonly number[]): Promise<OutboxRow[]> {
    if (sent.length > 0) await this.markSent(sent);
    return (this.#select.all(limit) as unknown as SqliteRow[]).map((r) => ({
      seq: Number(r.seq),
      eventId: r.event_id,
      type: r.type,
      payload: r.payload,
      key: r.key,
      correlationId: r.correlation_id,
      causationId: r.causation_id,
      time: new Date(r.time),
    }));
  }

  async markSent(seqs: readonly number[]): Promise<void> {
    const at = new Date().toISOString();
    // One transaction for the round's marks, unless the connection is inside the caller's one.
    const own = !this.#db.isTransaction;
    if (own) this.#db.exec("BEGIN IMMEDIATE");
    try {
      for (const seq of seqs) this.#mark.run(at, seq);
      if (own) this.#db.exec("COMMIT");
    } catch (err) {
      if (own && this.#db.isTransaction) this.#db.exec("ROLLBACK");
      throw err;
    }
  }

  idle(ms: number, signal: AbortSignal): Promise<void> {
    return pause(ms, signal);
  }

  async close(): Promise<void> {}
}
