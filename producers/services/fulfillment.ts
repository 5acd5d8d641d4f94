import {
  Carrier,
  OrderFulfillmentCompleted,
  OrderFulfillmentStarted,
} from "@jetkit/contracts/gen/shop/order/v1/events";
import { type Logger, pino } from "pino";
import { createProducer, type PublishAck } from "../src/index.js";
import { parseServiceArgs, runCli } from "./cli.js";
import { createKeyPicker } from "./keys.js";
import type { ServiceRunOptions } from "./options.js";
import { runPaced, type WorkloadSummary } from "./workload.js";

/** Key-space namespace of orders (see keyUuid). */
export const ORDER_NAMESPACE = 0x0d;

const WAREHOUSES = ["wh-berlin-1", "wh-lyon-2", "wh-utrecht-1"];
const CARRIERS = [Carrier.CARRIER_DHL, Carrier.CARRIER_UPS, Carrier.CARRIER_FEDEX, Carrier.CARRIER_POSTAL];
const SKUS = ["TSHIRT-BLK-M", "HOODIE-GRY-L", "SNEAKER-WHT-42", "MUG-CERAMIC", "BACKPACK-20L"];

/** An event of the fulfillment service. */
export type FulfillmentEvent = OrderFulfillmentStarted | OrderFulfillmentCompleted;

/** The two events of one order's fulfilment: started, then completed (one or two parcels). */
export function randomFulfillment(
  orderId: string,
  random: () => number = Math.random,
): { started: OrderFulfillmentStarted; completed: OrderFulfillmentCompleted } {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const checkoutId = crypto.randomUUID();
  const skus = [...new Set(Array.from({ length: 1 + Math.floor(random() * 3) }, () => pick(SKUS)))];
  const started: OrderFulfillmentStarted = {
    orderId,
    checkoutId,
    warehouseId: pick(WAREHOUSES),
    items: skus.map((sku) => ({
      sku,
      quantity: 1 + Math.floor(random() * 2),
      unitPrice: { currencyCode: "EUR", units: 10 + Math.floor(random() * 90), nanos: 0 },
    })),
    startedAt: new Date(),
  };
  const parcels = skus.length > 1 && random() < 0.3 ? 2 : 1;
  const completed: OrderFulfillmentCompleted = {
    orderId,
    checkoutId,
    shipments: Array.from({ length: parcels }, (_, i) => ({
      shipmentId: `${orderId.slice(-8)}-${i + 1}`,
      carrier: pick(CARRIERS),
      trackingNumber: `TRK${Math.floor(random() * 1e10)
        .toString()
        .padStart(10, "0")}`,
      skus: skus.filter((_, j) => j % parcels === i),
    })),
    shippingCost: { currencyCode: "EUR", units: 4, nanos: 990_000_000 },
    completedAt: new Date(),
  };
  return { started, completed };
}

/**
 * The fulfillment service: for orders drawn from a key space, emits `order.fulfillment.started`
 * and, once that is acknowledged, `order.fulfillment.completed` (caused by it, same correlation).
 * `ratePerSec` counts orders; each order is two events.
 */
export async function runFulfillment(opts: ServiceRunOptions<FulfillmentEvent>): Promise<WorkloadSummary> {
  const log: Logger = opts.logger ?? pino({ level: "info" });
  const random = opts.random ?? Math.random;
  const producer = await createProducer({
    name: "fulfillment",
    ...opts.producer,
    servers: opts.servers,
    logger: log,
  });
  const order = createKeyPicker({
    size: opts.keys ?? 100,
    distribution: opts.distribution ?? "uniform",
    random,
    namespace: ORDER_NAMESPACE,
  });
  const report = (ack: PublishAck, event: FulfillmentEvent) => opts.onPublished?.(ack, event);
  try {
    const summary = await runPaced({
      ratePerSec: opts.ratePerSec ?? 10,
      durationMs: opts.durationMs ?? 10_000,
      signal: opts.signal,
      maxOutstanding: Math.max(1, Math.floor(producer.stats().maxInFlight / 2)),
      step: async () => {
        const { started, completed } = randomFulfillment(order(), random);
        let current: FulfillmentEvent = started;
        try {
          const first = await producer.publish(OrderFulfillmentStarted, started);
          report(first, started);
          current = completed;
          const second = await producer.publish(OrderFulfillmentCompleted, completed, {
            correlationId: first.msgId,
            causationId: first.msgId,
          });
          report(second, completed);
        } catch (err) {
          opts.onFailed?.(err, current);
          throw err;
        }
      },
    });
    log.info({ service: "fulfillment", ...summary }, "fulfillment run finished");
    return summary;
  } finally {
    await producer.close();
  }
}

await runCli(import.meta.url, "fulfillment", async (argv, signal) => {
  const args = parseServiceArgs(argv);
  return runFulfillment({ ...args, signal });
});
