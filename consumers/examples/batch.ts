import type { DatabaseSync } from "node:sqlite";
import { type BatchMessage, createConsumer, type HandlerContext } from "@jetkit/consumers";
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";

type Shipped = BatchMessage<OrderFulfillmentCompleted, HandlerContext>;

/** Writes shipments to a reporting table, up to 100 events per SQL transaction. */
export async function shipmentReport(servers: string, db: DatabaseSync) {
  db.exec("CREATE TABLE IF NOT EXISTS shipments (tracking TEXT PRIMARY KEY, order_id TEXT NOT NULL)");
  // OR IGNORE: a crash after COMMIT and before the SDK's records runs the batch again.
  const insert = db.prepare("INSERT OR IGNORE INTO shipments (tracking, order_id) VALUES (?, ?)");
  const consumer = await createConsumer({
    servers,
    durable: "shipment-report",
    events: [OrderFulfillmentCompleted],
    concurrency: 100, // a batch holds at most `concurrency` messages
    idempotency: true,
  });
  consumer.onBatch(
    OrderFulfillmentCompleted,
    (batch) => {
      const deadLetter: { message: Shipped; reason: string }[] = [];
      db.exec("BEGIN");
      try {
        for (const m of batch) {
          if (m.event.shipments.some((s) => s.trackingNumber.startsWith("TEST-"))) {
            deadLetter.push({ message: m, reason: "test shipment: not reported" });
            continue;
          }
          for (const s of m.event.shipments) insert.run(s.trackingNumber, m.event.orderId);
        }
        db.exec("COMMIT");
      } catch (err) {
        db.exec("ROLLBACK");
        throw err; // the whole batch is retried
      }
      return { deadLetter }; // every other message is recorded, then acked
    },
    { max: 100, maxWaitMs: 50 },
  );
  await consumer.start();
  return consumer;
}
