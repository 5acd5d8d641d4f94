import { type EventType, uuidv7 } from "@jetkit/contracts";
import {
  CancellationReason,
  Carrier,
  OrderFulfillmentCompleted,
  OrderFulfillmentStarted,
  OrderLifecycleCancelled,
} from "@jetkit/contracts/gen/shop/order/v1/events";

/** One event of each ORDER contract, valid and with every field kind (repeated, nested, enum, time). */
export function orderFlow(): { type: EventType<unknown>; event: unknown }[] {
  const orderId = uuidv7();
  const checkoutId = uuidv7();
  const started: OrderFulfillmentStarted = {
    orderId,
    checkoutId,
    warehouseId: "wh-berlin-1",
    items: [
      {
        sku: "SKU-KETTLE-01",
        quantity: 1,
        unitPrice: { currencyCode: "EUR", units: 49, nanos: 990_000_000 },
      },
      { sku: "SKU-MUG-BLUE", quantity: 4, unitPrice: { currencyCode: "EUR", units: 7, nanos: 500_000_000 } },
    ],
    startedAt: new Date("2026-11-21T09:31:00.000Z"),
  };
  const completed: OrderFulfillmentCompleted = {
    orderId,
    checkoutId,
    shipments: [
      {
        shipmentId: "shp-1",
        carrier: Carrier.CARRIER_DHL,
        trackingNumber: "JD0001",
        skus: ["SKU-KETTLE-01"],
      },
      {
        shipmentId: "shp-2",
        carrier: Carrier.CARRIER_POSTAL,
        trackingNumber: "RR0002",
        skus: ["SKU-MUG-BLUE"],
      },
    ],
    shippingCost: { currencyCode: "EUR", units: 4, nanos: 990_000_000 },
    completedAt: new Date("2026-11-22T14:05:30.500Z"),
  };
  const cancelled: OrderLifecycleCancelled = {
    orderId: uuidv7(),
    reason: CancellationReason.CANCELLATION_REASON_CUSTOMER_REQUEST,
    note: "changed my mind — ünïcödé",
    refund: { currencyCode: "EUR", units: -12, nanos: -500_000_000 },
    cancelledAt: new Date("2026-11-21T10:00:00.000Z"),
  };
  return [
    { type: OrderFulfillmentStarted as EventType<unknown>, event: started },
    { type: OrderFulfillmentCompleted as EventType<unknown>, event: completed },
    { type: OrderLifecycleCancelled as EventType<unknown>, event: cancelled },
  ];
}

export const codecs: Record<string, EventType<unknown>> = {
  [OrderFulfillmentStarted.$type]: OrderFulfillmentStarted as EventType<unknown>,
  [OrderFulfillmentCompleted.$type]: OrderFulfillmentCompleted as EventType<unknown>,
  [OrderLifecycleCancelled.$type]: OrderLifecycleCancelled as EventType<unknown>,
};
