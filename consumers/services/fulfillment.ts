import { pathToFileURL } from "node:url";
import { CustomerCheckoutInitiated } from "@jetkit/contracts/gen/shop/customer/v1/events";
import {
  Carrier,
  OrderFulfillmentCompleted,
  OrderFulfillmentStarted,
} from "@jetkit/contracts/gen/shop/order/v1/events";
import { createProducer } from "@jetkit/producers";
import { pino } from "pino";
import { createConsumer } from "../src/index.js";
import { derivedUuid } from "./derived-id.js";
import { type RunningService, runFromCli, running, type ServiceOptions } from "./service-options.js";

/** What the fulfillment service did for one checkout. */
export interface Fulfilled {
  checkoutId: string;
  orderId: string;
  customerId: string;
}

/** Options of {@link runFulfillment}. */
export interface FulfillmentOptions extends ServiceOptions {
  /** Called after both fulfillment events of a checkout were published. */
  onHandled?: (f: Fulfilled) => void;
}

const CARRIERS = [Carrier.CARRIER_DHL, Carrier.CARRIER_UPS, Carrier.CARRIER_FEDEX, Carrier.CARRIER_POSTAL];

/**
 * Fulfillment: for every `customer.checkout.initiated` it picks the order from a warehouse
 * (`order.fulfillment.started`) and hands it to a carrier (`order.fulfillment.completed`). Event
 * ids are derived from the checkout, so a redelivered checkout emits nothing new; both events
 * carry the checkout's correlation id and name it as their cause.
 */
export async function runFulfillment(o: FulfillmentOptions): Promise<RunningService> {
  const logger = o.logger ?? pino({ name: "fulfillment", level: process.env.JETKIT_LOG_LEVEL ?? "info" });
  const producer = await createProducer({ servers: o.servers, name: "fulfillment", logger });
  const consumer = await createConsumer({
    servers: o.servers,
    durable: o.durable ?? "fulfillment",
    events: [CustomerCheckoutInitiated],
    concurrency: o.concurrency ?? 8,
    idempotency: true,
    // Publishing downstream fails while a stream leader is re-elected (5-10 s on a loaded
    // cluster, the producer's breaker opens meanwhile): 10 deliveries with backoff up to 30 s
    // ride out about two minutes of broker trouble before a checkout is dead-lettered.
    maxDeliver: 10,
    logger,
  });
  let handled = 0;
  consumer.on(CustomerCheckoutInitiated, async (checkout, ctx) => {
    const orderId = derivedUuid("order", checkout.checkoutId);
    const meta = { correlationId: ctx.correlationId ?? ctx.eventId, causationId: ctx.eventId, key: orderId };
    await producer.publish(
      OrderFulfillmentStarted,
      {
        orderId,
        checkoutId: checkout.checkoutId,
        warehouseId: "wh-berlin-1",
        items: checkout.items,
        startedAt: new Date(),
      },
      { ...meta, msgId: derivedUuid("started", checkout.checkoutId) },
    );
    await producer.publish(
      OrderFulfillmentCompleted,
      {
        orderId,
        checkoutId: checkout.checkoutId,
        shipments: [
          {
            shipmentId: derivedUuid("shipment", checkout.checkoutId),
            carrier: CARRIERS[checkout.checkoutId.charCodeAt(0) % CARRIERS.length]!,
            trackingNumber: `TRK${orderId.slice(0, 8).toUpperCase()}`,
            skus: checkout.items.map((i) => i.sku),
          },
        ],
        shippingCost: { currencyCode: checkout.total?.currencyCode ?? "EUR", units: 4, nanos: 990_000_000 },
        completedAt: new Date(),
      },
      { ...meta, msgId: derivedUuid("completed", checkout.checkoutId) },
    );
    handled++;
    ctx.logger.info({ order_id: orderId }, "order fulfilled");
    o.onHandled?.({ checkoutId: checkout.checkoutId, orderId, customerId: checkout.customerId });
  });
  await consumer.start();
  const svc = running(
    consumer,
    o,
    () => handled,
    () => producer.close(),
  );
  return svc;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await runFromCli(runFulfillment);
}
