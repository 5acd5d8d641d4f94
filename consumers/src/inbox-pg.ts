import type { PgPoolLike, PgQueryable } from "@jetkit/producers";
import type { Handler, HandlerContext } from "./consumer.js";
import { checkInboxOptions } from "./inbox.js";

/** Options of {@link PgInbox.open}. */
export interface PgInboxOptions {
  /** The consumer whose events the inbox records (its durable name): one inbox table serves many. */
  consumer: string;
  /** Table of the inbox records, in the connection's `search_path`. Default: `jetkit_inbox`. */
  table?: string;
}

/**
 * A transactional inbox for effects that live in the service's Postgres database, on the
 * service's own `pg` pool (jetkit does not import `pg`): each delivery runs on a client of the
 * pool in one transaction that first inserts the record "event X was effected" and then runs the
 * effect, so both commit or neither does. A crash before the commit rolls both back (the
 * redelivery runs the effect again, on a clean database); a crash after it leaves the record (the
 * redelivery finds it and the effect is skipped). Two processes that get the same event at once
 * cannot both effect it: the second insert of the record waits on the first transaction's unique
 * key, then finds the record (or, if the first rolled back, takes its place).
 *
 * Unlike `SqliteInbox`, the effect may be async (the transaction has its own connection): a
 * call to another service inside it holds a pool connection and the record's lock meanwhile.
 */
export class PgInbox {
  readonly #pool: PgPoolLike;
  readonly #consumer: string;
  readonly #insert: string;
  readonly #lookup: string;

  private constructor(pool: PgPoolLike, consumer: string, table: string) {
    this.#pool = pool;
    this.#consumer = consumer;
    this.#insert = `INSERT INTO ${table} (consumer, event_id, stream, seq, effected_at) VALUES ($1, $2, $3, $4, now()) ON CONFLICT (consumer, event_id) DO NOTHING`;
    this.#lookup = `SELECT 1 FROM ${table} WHERE consumer = $1 AND event_id = $2`;
  }

  /** Creates the inbox table when missing. Throws `JK_CONSUMER_CONFIG` for a bad table or consumer name. */
  static async open(pool: PgPoolLike, opts: PgInboxOptions): Promise<PgInbox> {
    const table = checkInboxOptions(opts).toLowerCase();
    const c = await pool.connect();
    try {
      // Serialised, so processes starting together do not race on CREATE TABLE IF NOT EXISTS.
      await c.query("BEGIN");
      await c.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`jetkit inbox ddl ${table}`]);
      await c.query(
        `CREATE TABLE IF NOT EXISTS ${table} (consumer text NOT NULL, event_id text NOT NULL, stream text NOT NULL, seq bigint NOT NULL, effected_at timestamptz NOT NULL, PRIMARY KEY (consumer, event_id))`,
      );
      await c.query("COMMIT");
      c.release();
    } catch (err) {
      await c.query("ROLLBACK").catch(() => {});
      c.release(err instanceof Error ? err : true);
      throw err;
    }
    return new PgInbox(pool, opts.consumer, table);
  }

  /** True when the effect of `eventId` is recorded. */
  async effected(eventId: string): Promise<boolean> {
    return ((await this.#pool.query(this.#lookup, [this.#consumer, eventId])).rowCount ?? 0) > 0;
  }

  /**
   * A handler that records the event and runs `effect` on `tx` in one transaction, or skips the
   * effect when the event is recorded already. A throw rolls both back and fails the delivery as
   * usual (retry, then the DLQ); so does a database that cannot be reached.
   */
  handler<T>(effect: (event: T, ctx: HandlerContext, tx: PgQueryable) => void | Promise<void>): Handler<T> {
    return async (event, ctx) => {
      const tx = await this.#pool.connect();
      let broken: Error | undefined;
      try {
        await tx.query("BEGIN");
        const r = await tx.query(this.#insert, [this.#consumer, ctx.eventId, ctx.stream, ctx.seq]);
        if (r.rowCount === 0) {
          await tx.query("COMMIT");
          ctx.logger.debug("effect already in the inbox; handler skipped");
          return;
        }
        await effect(event, ctx, tx);
        await tx.query("COMMIT");
      } catch (err) {
        await tx.query("ROLLBACK").catch((e: unknown) => {
          broken = e instanceof Error ? e : new Error(String(e));
        });
        throw err;
      } finally {
        tx.release(broken);
      }
    };
  }
}
