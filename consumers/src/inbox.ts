import type { DatabaseSync, StatementSync } from "node:sqlite";
import { JetkitError } from "@jetkit/contracts";
import type { Handler, HandlerContext } from "./consumer.js";
import { ConsumerErrorCodes } from "./errors.js";

/** Options of {@link SqliteInbox.open}. */
export interface SqliteInboxOptions {
  /** The consumer whose events the inbox records (its durable name): one inbox table serves many. */
  consumer: string;
  /** Table of the inbox records. Default: `jetkit_inbox`. */
  table?: string;
}

const TABLE = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** The inbox table name; throws `JK_CONSUMER_CONFIG` for a bad table or a missing consumer name. */
export function checkInboxOptions(opts: { consumer: string; table?: string }): string {
  const table = opts.table ?? "jetkit_inbox";
  if (!TABLE.test(table)) {
    throw new JetkitError(
      ConsumerErrorCodes.CONFIG,
      `inbox table name "${table}" is invalid: use letters, digits and _ (it is written into SQL).`,
      { details: { option: "table" } },
    );
  }
  if (!opts.consumer) {
    throw new JetkitError(
      ConsumerErrorCodes.CONFIG,
      "the inbox needs the consumer's durable name (option consumer).",
      {
        details: { option: "consumer" },
      },
    );
  }
  return table;
}

/**
 * A transactional inbox for effects that live in the service's own SQLite database
 * (`node:sqlite`): the handler's writes and the record "event X was effected" commit in one
 * transaction, so an effect happens once per event id whatever fails around it. A crash before
 * the commit rolls both back (the redelivery runs the handler again, on a clean database); a
 * crash after it leaves the record (the redelivery finds it and the handler is skipped); two
 * processes that both get the event (a paused group member that resumes, a redelivery after ack
 * wait) cannot both commit it: the second insert of the record finds the first.
 *
 * The handler given to {@link handler} is synchronous: `node:sqlite` is, and a transaction held
 * across an `await` would take in whatever other handlers write meanwhile on the same connection.
 * Do slow work (calls to other services) before, in a handler of your own that then calls it.
 */
export class SqliteInbox {
  readonly #db: DatabaseSync;
  readonly #consumer: string;
  readonly #insert: StatementSync;
  readonly #lookup: StatementSync;

  private constructor(db: DatabaseSync, consumer: string, table: string) {
    this.#db = db;
    this.#consumer = consumer;
    this.#insert = db.prepare(
      `INSERT INTO ${table} (consumer, event_id, stream, seq, effected_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (consumer, event_id) DO NOTHING`,
    );
    this.#lookup = db.prepare(`SELECT 1 AS found FROM ${table} WHERE consumer = ? AND event_id = ?`);
  }

  /** Creates the inbox table when missing. Throws `JK_CONSUMER_CONFIG` for a bad table or consumer name. */
  static open(db: DatabaseSync, opts: SqliteInboxOptions): SqliteInbox {
    const table = checkInboxOptions(opts);
    db.exec(
      `CREATE TABLE IF NOT EXISTS ${table} (consumer TEXT NOT NULL, event_id TEXT NOT NULL, stream TEXT NOT NULL, seq INTEGER NOT NULL, effected_at TEXT NOT NULL, PRIMARY KEY (consumer, event_id))`,
    );
    return new SqliteInbox(db, opts.consumer, table);
  }

  /** True when the effect of `eventId` is recorded. */
  effected(eventId: string): boolean {
    return this.#lookup.get(this.#consumer, eventId) !== undefined;
  }

  /**
   * A handler that runs `effect` and records the event in one transaction (`BEGIN IMMEDIATE`),
   * or skips it when the event is recorded already. A throw rolls both back and fails the
   * delivery as usual (retry, then the DLQ).
   */
  handler<T>(effect: (event: T, ctx: HandlerContext, db: DatabaseSync) => void): Handler<T> {
    return (event, ctx) => {
      const db = this.#db;
      db.exec("BEGIN IMMEDIATE");
      try {
        const r = this.#insert.run(
          this.#consumer,
          ctx.eventId,
          ctx.stream,
          ctx.seq,
          new Date().toISOString(),
        );
        if (r.changes === 0) {
          db.exec("COMMIT");
          ctx.logger.debug("effect already in the inbox; handler skipped");
          return;
        }
        effect(event, ctx, db);
        db.exec("COMMIT");
      } catch (err) {
        if (db.isTransaction) db.exec("ROLLBACK");
        throw err;
      }
    };
  }
}
