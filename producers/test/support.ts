import { getCatalog } from "@jetkit/contracts";
import { CustomerCheckoutInitiated } from "@jetkit/contracts/gen/shop/customer/v1/events";
import type { InventoryStockReserved } from "@jetkit/contracts/gen/shop/inventory/v1/events";
import { Carrier, OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { type NatsServer, startServer } from "@jetkit/testing";
import {
  DiscardPolicy,
  jetstreamManager,
  type RetentionPolicy,
  StorageType,
  type StoredMsg,
} from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { pino } from "pino";

export const silent = pino({ level: "silent" });

/** Creates the catalog's streams on the server, as the contracts declare them (R1). */
export async function addCatalogStreams(nc: NatsConnection, names?: string[]): Promise<void> {
  const jsm = await jetstreamManager(nc);
  for (const s of getCatalog().streams) {
    if (names && !names.includes(s.name)) continue;
    await jsm.streams.add({
      name: s.name,
      subjects: [...s.subjects],
      retention: s.retention as RetentionPolicy,
      storage: s.storage === "memory" ? StorageType.Memory : StorageType.File,
      num_replicas: 1,
      max_age: s.maxAgeMs * 1_000_000,
      duplicate_window: s.duplicateWindowMs * 1_000_000,
      max_bytes: s.maxBytes || -1,
      max_msg_size: s.maxMsgSize || -1,
      discard: s.discard === "new" ? DiscardPolicy.New : DiscardPolicy.Old,
    });
  }
}

/** A server with the catalog's streams and an admin connection to inspect them. */
export async function serverWithStreams(
  config?: string,
): Promise<{ server: NatsServer; admin: NatsConnection }> {
  const server = await startServer(config ? { config } : {});
  const admin = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  await addCatalogStreams(admin);
  return { server, admin };
}

/** Every message stored in `stream` (direct get by sequence). */
export async function storedMessages(nc: NatsConnection, stream: string): Promise<StoredMsg[]> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(stream);
  const out: StoredMsg[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
    if (m) out.push(m);
  }
  return out;
}

/** Polls `check` until it returns true or `timeoutMs` passes (then throws naming `what`). */
export async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

export const uuid = () => crypto.randomUUID();

export function fulfillmentCompleted(orderId = uuid()): OrderFulfillmentCompleted {
  return {
    orderId,
    checkoutId: uuid(),
    shipments: [
      { shipmentId: "s-1", carrier: Carrier.CARRIER_DHL, trackingNumber: "JD0001", skus: ["SKU-1"] },
    ],
    shippingCost: { currencyCode: "EUR", units: 4, nanos: 990_000_000 },
    completedAt: new Date("2025-03-01T10:00:00.000Z"),
  };
}

/** A reservation of one checkout's line in a warehouse (INVENTORY allows atomic and fast batches). */
export function reservation(checkoutId = uuid(), sku = "SKU-1"): InventoryStockReserved {
  return {
    reservationId: uuid(),
    checkoutId,
    warehouseId: "wh-1",
    lines: [{ sku, quantity: 1 }],
    expiresAt: new Date("2030-01-01T00:00:00Z"),
  };
}

export function checkoutInitiated(customerId = uuid()): CustomerCheckoutInitiated {
  return CustomerCheckoutInitiated.fromPartial({
    checkoutId: uuid(),
    customerId,
    items: [{ sku: "SKU-1", quantity: 2, unitPrice: { currencyCode: "EUR", units: 10, nanos: 0 } }],
    total: { currencyCode: "EUR", units: 20, nanos: 0 },
    shippingAddress: { lines: ["1 Main St"], city: "Berlin", postalCode: "10115", countryCode: "DE" },
    paymentMethod: { $case: "card", card: { token: "tok_12345678", brand: "visa", last4: "4242" } },
    channel: 1,
    initiatedAt: new Date(),
  });
}

export { CustomerCheckoutInitiated, OrderFulfillmentCompleted };
