// The README's Postgres inbox: an invoice written once per event, record and effect in one
// transaction on the service's own pg pool.

import { type Consumer, PgInbox } from "@jetkit/consumers";
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import type pg from "pg";

export async function billOnCompletion(pool: pg.Pool, consumer: Consumer): Promise<PgInbox> {
  const inbox = await PgInbox.open(pool, { consumer: "billing" }); // creates jetkit_inbox when missing
  consumer.on(
    OrderFulfillmentCompleted,
    inbox.handler(async (event, _ctx, tx) => {
      await tx.query("INSERT INTO invoices (order_id) VALUES ($1)", [event.orderId]);
    }),
  );
  return inbox;
}
