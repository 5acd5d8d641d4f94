import { OrderFulfillmentStarted } from "@jetkit/contracts/gen/shop/order/v1/events";
import type { PoisonKind } from "../history.js";
import type { Rng } from "../prng.js";

/** The event type the workload publishes: keyed by order id, so per-key order is meaningful. */
export const WORKLOAD_TYPE = OrderFulfillmentStarted;
export const WORKLOAD_SUBJECT = "order.fulfillment.started";
export const WORKLOAD_STREAM = "ORDER";

/** A UUID (version 4 layout) drawn from the drill's seed, so keys are the same run to run. */
export function seededUuid(rng: Rng): string {
  const hex = Array.from({ length: 32 }, () => rng.int(16).toString(16));
  hex[12] = "4";
  hex[16] = ((rng.int(4) + 8) as number).toString(16);
  const h = hex.join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** A valid event for `key` (the order id). */
export function encodeEvent(key: string, rng: Rng): Uint8Array {
  return OrderFulfillmentStarted.encode({
    orderId: key,
    checkoutId: seededUuid(rng),
    warehouseId: `wh-${rng.int(4) + 1}`,
    items: [
      {
        sku: `sku-${rng.int(1000)}`,
        quantity: rng.int(5) + 1,
        unitPrice: { currencyCode: "EUR", units: 12, nanos: 0 },
      },
    ],
    startedAt: new Date(),
  }).finish();
}

/** A poison payload: bytes that do not decode, or a well-formed event that breaks its contract. */
export function encodePoison(kind: PoisonKind, key: string): Uint8Array {
  if (kind === "undecodable") return new Uint8Array([0xff, 0xff, 0xff, 0x0f, 0x08, 0x96, 0x01, 0x42]);
  return OrderFulfillmentStarted.encode({
    orderId: key,
    checkoutId: "not-a-uuid",
    warehouseId: "",
    items: [],
    startedAt: new Date(),
  }).finish();
}
