// README example: a typed handler with retries, dead letters, idempotency and per-key order.

import { createConsumer, PermanentError } from "@jetkit/consumers";
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";

export async function quickstart(servers: string, onShipped: (orderId: string) => void) {
  const consumer = await createConsumer({
    servers,
    durable: "shipping-emails",
    events: [OrderFulfillmentCompleted],
    concurrency: 8,
    maxDeliver: 5,
    backoff: { initialMs: 500, maxMs: 30_000, multiplier: 2, jitter: 0.2 },
    idempotency: { ttlMs: 24 * 3600_000 },
    ordering: "per-key",
  });
  consumer.on(OrderFulfillmentCompleted, async (event, ctx) => {
    if (event.shipments.length === 0) throw new PermanentError("nothing was shipped");
    ctx.logger.info({ order_id: event.orderId }, "sending shipping e-mail");
    onShipped(event.orderId); // throw here to retry with backoff; the last failure goes to the DLQ
  });
  await consumer.start();
  return consumer; // later: await consumer.stop({ timeoutMs: 10_000 })
}
