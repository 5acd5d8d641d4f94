import { setTimeout as sleep } from "node:timers/promises";
import { type EventType, eventHeaders, getCatalog, uuidv7 } from "@jetkit/contracts";
import { type CustomerCheckoutInitiated, SalesChannel } from "@jetkit/contracts/gen/shop/customer/v1/events";
import { Carrier, type OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { applyStreams } from "@jetkit/contracts/streams";
import { type NatsServer, startServer } from "@jetkit/testing";
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { headers, type NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { pino } from "pino";

export const silent = pino({ level: "silent" });

export interface Env {
  server: NatsServer;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  dispose(): Promise<void>;
}

/** A nats-server with every stream of the contracts (DLQ included) and a connection to it. */
export async function startEnv(): Promise<Env> {
  const server = await startServer();
  const nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  const jsm = await jetstreamManager(nc);
  await applyStreams(jsm, getCatalog());
  return {
    server,
    nc,
    js: jetstream(nc),
    jsm,
    async dispose() {
      await nc.close().catch(() => {});
      await server.dispose();
    },
  };
}

/** A valid OrderFulfillmentCompleted. */
export function completed(orderId: string = uuidv7(), trackingNumber = "T-1"): OrderFulfillmentCompleted {
  return {
    orderId,
    checkoutId: uuidv7(),
    shipments: [{ shipmentId: "s-1", carrier: Carrier.CARRIER_DHL, trackingNumber, skus: ["sku-1"] }],
    completedAt: new Date("2026-01-02T03:04:05Z"),
  };
}

/** A valid CustomerCheckoutInitiated. */
export function checkout(customerId: string = uuidv7()): CustomerCheckoutInitiated {
  return {
    checkoutId: uuidv7(),
    customerId,
    items: [{ sku: "sku-1", quantity: 2, unitPrice: { currencyCode: "EUR", units: 12, nanos: 500_000_000 } }],
    total: { currencyCode: "EUR", units: 25, nanos: 0 },
    shippingAddress: { lines: ["Main St 1"], city: "Berlin", postalCode: "10115", countryCode: "DE" },
    paymentMethod: { $case: "card", card: { token: "tok_12345678", brand: "visa", last4: "4242" } },
    channel: SalesChannel.SALES_CHANNEL_WEB,
    initiatedAt: new Date("2026-01-02T03:04:05Z"),
  };
}

export interface RawPublish {
  id?: string;
  key?: string;
  /** Bytes to send instead of the encoded event (poison payloads). */
  data?: Uint8Array;
  /** ce-type to send instead of the type's. */
  type?: string;
  traceparent?: string;
  /** Nats-Msg-Id instead of the ce-id (to store one event twice). */
  msgId?: string;
  /** More headers (another tracer's propagation headers, say). */
  headers?: Record<string, string>;
}

/** Publishes like a producer would (wire headers of contracts/WIRE.md) without the producer SDK. */
export async function publishRaw<T>(
  js: JetStreamClient,
  Type: EventType<T>,
  event: T,
  o: RawPublish = {},
): Promise<{ id: string; seq: number }> {
  const spec = getCatalog().byType(Type.$type);
  const id = o.id ?? uuidv7();
  const h = headers();
  for (const [k, v] of eventHeaders({
    id,
    type: o.type ?? spec.type,
    source: "/jetkit/test",
    time: new Date(),
    partitionKey: o.key,
    traceparent: o.traceparent,
  })) {
    h.set(k, v);
  }
  if (o.msgId) h.set("Nats-Msg-Id", o.msgId);
  for (const [k, v] of Object.entries(o.headers ?? {})) h.set(k, v);
  const ack = await js.publish(spec.subject, o.data ?? Type.encode(event).finish(), { headers: h });
  return { id, seq: ack.seq };
}

/** Polls `cond` until it is true; fails naming `what` after `timeoutMs`. */
export async function until(
  cond: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await sleep(25);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Messages stored in `stream`. */
export async function count(jsm: JetStreamManager, stream: string): Promise<number> {
  return (await jsm.streams.info(stream)).state.messages;
}
