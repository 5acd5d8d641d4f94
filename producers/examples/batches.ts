// The README's batches: an atomic batch (all stored or none) and a fast-ingest publishMany.
import { isJetkitError } from "@jetkit/contracts";
import { InventoryStockReserved } from "@jetkit/contracts/gen/shop/inventory/v1/events";
import { type AtomicAck, createProducer, type PublishAck } from "@jetkit/producers";

export async function batches(servers: string): Promise<{ reserved: AtomicAck; loaded: PublishAck[] }> {
  const producer = await createProducer({ servers, name: "inventory" });
  try {
    const checkoutId = "c0000000-0000-4000-8000-000000000002";
    const reserve = (n: number, sku: string): InventoryStockReserved => ({
      reservationId: `a0000000-0000-4000-8000-00000000000${n}`,
      checkoutId,
      warehouseId: "wh-1",
      lines: [{ sku, quantity: 1 }],
      expiresAt: new Date(Date.now() + 15 * 60_000),
    });

    // INVENTORY declares allow_atomic: a checkout's reservations are all stored, or none is.
    const reserved = await producer
      .transaction()
      .add(InventoryStockReserved, reserve(1, "MUG-CERAMIC"), { msgId: `${checkoutId}-1` })
      .add(InventoryStockReserved, reserve(2, "TEA-GREEN"), { msgId: `${checkoutId}-2` })
      .commit();
    console.log(`stored ${reserved.count} events at seq ${reserved.firstSeq}..${reserved.lastSeq}`);

    // The same batch again is refused whole: the stream already has its msg ids.
    try {
      await producer.publishAtomic([
        {
          type: InventoryStockReserved,
          event: reserve(1, "MUG-CERAMIC"),
          opts: { msgId: `${checkoutId}-1` },
        },
        { type: InventoryStockReserved, event: reserve(2, "TEA-GREEN"), opts: { msgId: `${checkoutId}-2` } },
      ]);
    } catch (err) {
      if (isJetkitError(err, "JK_PRODUCER_REJECTED")) console.log("refused whole: nothing stored twice");
      else throw err;
    }

    // INVENTORY declares allow_batched: publishMany sends fast-ingest batches, acknowledged every
    // few events; each ack names its batch and place in it instead of a stream sequence.
    const loaded = await producer.publishMany(
      InventoryStockReserved,
      [3, 4, 5].map((n) => reserve(n, `SKU-${n}`)),
      { options: (e) => ({ msgId: e.reservationId }) },
    );
    console.log(`${loaded.length} events stored by batch ${loaded[0]?.batch?.id}`);
    return { reserved, loaded };
  } finally {
    await producer.close();
  }
}
