// The README's quickstart: connect, publish one typed event, publish a batch, close.
import { isJetkitError } from "@jetkit/contracts";
import { Carrier, OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { createProducer, type PublishAck } from "@jetkit/producers";

export async function quickstart(servers: string): Promise<PublishAck[]> {
  const producer = await createProducer({ servers, name: "fulfillment" });
  try {
    const event: OrderFulfillmentCompleted = {
      orderId: "0d000000-0000-4000-8000-000000000001",
      checkoutId: "c0000000-0000-4000-8000-000000000001",
      shipments: [
        {
          shipmentId: "p-1",
          carrier: Carrier.CARRIER_DHL,
          trackingNumber: "JD014600",
          skus: ["MUG-CERAMIC"],
        },
      ],
      completedAt: new Date(),
    };
    // Subject, stream, headers and encoding come from the contract; the event is validated first.
    const ack = await producer.publish(OrderFulfillmentCompleted, event, { msgId: "order-1-completed" });
    console.log(`stored in ${ack.stream} at seq ${ack.seq} (duplicate: ${ack.duplicate})`);

    // A broken event is refused before anything is sent, naming the field and rule.
    try {
      await producer.publish(OrderFulfillmentCompleted, { ...event, shipments: [] });
    } catch (err) {
      if (isJetkitError(err, "JK_CONTRACT_VIOLATION"))
        console.log(`refused: ${err.details.field} (${err.details.rule})`);
      else throw err;
    }

    // Pipelined: at most 64 unacknowledged at once, acks in order.
    const batch = await producer.publishMany(
      OrderFulfillmentCompleted,
      ["0d000000-0000-4000-8000-000000000002", "0d000000-0000-4000-8000-000000000003"].map((orderId) => ({
        ...event,
        orderId,
      })),
      { window: 64, options: (e) => ({ msgId: `${e.orderId}-completed` }) },
    );
    return [ack, ...batch];
  } finally {
    await producer.close(); // waits for publishes in flight, then drains
  }
}
