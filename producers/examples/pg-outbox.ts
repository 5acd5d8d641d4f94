// The README's Postgres outbox: the order's new state and its event in one transaction, and a
// relay that publishes the outbox. `pg` is the service's own dependency (jetkit does not bundle it).
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { type OutboxRelay, PgOutbox, type Producer, startOutboxRelay } from "@jetkit/producers";
import type pg from "pg";

export async function shipOrder(
  pool: pg.Pool,
  outbox: PgOutbox,
  event: OrderFulfillmentCompleted,
): Promise<string> {
  const tx = await pool.connect();
  try {
    await tx.query("BEGIN");
    await tx.query("UPDATE orders SET state = 'shipped' WHERE id = $1", [event.orderId]);
    const id = await outbox.add(tx, OrderFulfillmentCompleted, event); // validated now; committed with the change
    await tx.query("COMMIT");
    return id;
  } catch (err) {
    await tx.query("ROLLBACK");
    throw err;
  } finally {
    tx.release();
  }
}

export async function startRelay(pool: pg.Pool, producer: Producer): Promise<OutboxRelay> {
  const outbox = await PgOutbox.open(pool); // creates jetkit_outbox and jetkit_outbox_relay when missing
  return startOutboxRelay(outbox, { producer }); // the same relay as SQLite's; run one per process
}
