import { pathToFileURL } from "node:url";
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { pino } from "pino";
import { createConsumer } from "../src/index.js";
import { type RunningService, runFromCli, running, type ServiceOptions } from "./service-options.js";

/** One "sent" notification, as recorded in the KV bucket. */
export interface SentNotification {
  orderId: string;
  channel: "email";
  trackingNumbers: string[];
  eventId: string;
  sentAt: string;
}

/** Options of {@link runNotifications}. */
export interface NotificationsOptions extends ServiceOptions {
  /** KV bucket where sent notifications are recorded (one key per order). Default: `notifications`. */
  bucket?: string;
  /** Called after a notification was recorded. */
  onHandled?: (n: SentNotification) => void;
}

/**
 * Notifications: for every `order.fulfillment.completed` it "sends" the customer a shipping
 * e-mail, recorded in a KV bucket keyed by order id (what the demo and drills count).
 */
export async function runNotifications(o: NotificationsOptions): Promise<RunningService> {
  const logger = o.logger ?? pino({ name: "notifications", level: process.env.JETKIT_LOG_LEVEL ?? "info" });
  const nc = await connect({ servers: o.servers, name: "notifications-kv", maxReconnectAttempts: -1 });
  const sent = await new Kvm(jetstream(nc)).create(o.bucket ?? "notifications", {
    history: 1,
    // On a cluster the record of sent notifications must survive a node loss.
    replicas: nc.info?.cluster ? 3 : 1,
  });
  const consumer = await createConsumer({
    connection: nc,
    durable: o.durable ?? "notifications",
    events: [OrderFulfillmentCompleted],
    concurrency: o.concurrency ?? 8,
    idempotency: true,
    logger,
  });
  let handled = 0;
  consumer.on(OrderFulfillmentCompleted, async (e, ctx) => {
    const n: SentNotification = {
      orderId: e.orderId,
      channel: "email",
      trackingNumbers: e.shipments.map((s) => s.trackingNumber),
      eventId: ctx.eventId,
      sentAt: new Date().toISOString(),
    };
    await sent.put(e.orderId, JSON.stringify(n));
    handled++;
    ctx.logger.info({ order_id: e.orderId }, "shipping notification sent");
    o.onHandled?.(n);
  });
  await consumer.start();
  const svc = running(
    consumer,
    o,
    () => handled,
    () => nc.drain(),
  );
  return svc;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await runFromCli(runNotifications);
}
