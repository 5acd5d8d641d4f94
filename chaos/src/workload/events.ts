import { OrderFulfillmentStarted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { ORDER_NAMESPACE } from "@jetkit/producers/services";
import type { PoisonKind } from "../history.js";

/** The stream the workload's events (order.fulfillment.started / .completed) are stored in. */
export const WORKLOAD_STREAM = "ORDER";
/** Subject poison messages are published on (raw, bypassing the SDK's validation on purpose). */
export const POISON_SUBJECT = "order.fulfillment.started";

/** The order ids of the key space: the fulfillment example service's (`keyUuid(i, ORDER_NAMESPACE)`). */
export { ORDER_NAMESPACE };

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

/**
 * The workload's event ids carry the key's sequence number the producer gave the event:
 * `<uuidv7>.<pseq>` (a ce-id may be any 1-256 printable ASCII characters, and the caller may
 * supply it). The handler reads it back from the id alone, so the effect line names it.
 */
export function workloadEventId(uuid: string, pseq: number): string {
  return `${uuid}.${pseq}`;
}

/** The key sequence in a workload event id, or undefined (poison, or an id from elsewhere). */
export function pseqOf(id: string): number | undefined {
  const m = /\.(\d+)$/.exec(id);
  return m ? Number(m[1]) : undefined;
}
