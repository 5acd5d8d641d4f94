import type { LineItem } from "@jetkit/contracts/gen/shop/common/v1/commerce";
import {
  CustomerCheckoutInitiated as CheckoutInitiated,
  type CustomerCheckoutInitiated,
  SalesChannel,
} from "@jetkit/contracts/gen/shop/customer/v1/events";
import { type Logger, pino } from "pino";
import { createProducer } from "../src/index.js";
import { parseServiceArgs, runCli } from "./cli.js";
import { createKeyPicker, keyUuid } from "./keys.js";
import type { ServiceRunOptions } from "./options.js";
import { runPaced, type WorkloadSummary } from "./workload.js";

const CATALOG = [
  { sku: "TSHIRT-BLK-M", price: [19, 990_000_000] },
  { sku: "HOODIE-GRY-L", price: [49, 0] },
  { sku: "SNEAKER-WHT-42", price: [89, 500_000_000] },
  { sku: "MUG-CERAMIC", price: [12, 0] },
  { sku: "BACKPACK-20L", price: [64, 990_000_000] },
  { sku: "SOCKS-3PACK", price: [9, 990_000_000] },
  { sku: "CAP-NAVY", price: [24, 0] },
  { sku: "JACKET-RAIN-M", price: [129, 0] },
] as const;
const CITIES = [
  ["Berlin", "10115", "DE"],
  ["Lyon", "69001", "FR"],
  ["Utrecht", "3511", "NL"],
  ["Porto", "4000-001", "PT"],
  ["Kraków", "30-001", "PL"],
] as const;
const CHANNELS = [
  SalesChannel.SALES_CHANNEL_WEB,
  SalesChannel.SALES_CHANNEL_MOBILE_APP,
  SalesChannel.SALES_CHANNEL_MARKETPLACE,
];

/** Key-space namespace of customers (see keyUuid). */
export const CUSTOMER_NAMESPACE = 0xc0;

/** A realistic random cart checkout for `customerId`. */
export function randomCheckout(
  customerId: string,
  random: () => number = Math.random,
): CustomerCheckoutInitiated {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const lines = 1 + Math.floor(random() * 4);
  const items: LineItem[] = [];
  let nanosTotal = 0n;
  for (let i = 0; i < lines; i++) {
    const p = pick(CATALOG);
    const quantity = 1 + Math.floor(random() * 3);
    items.push({
      sku: p.sku,
      quantity,
      unitPrice: { currencyCode: "EUR", units: p.price[0], nanos: p.price[1] },
    });
    nanosTotal += BigInt(quantity) * (BigInt(p.price[0]) * 1_000_000_000n + BigInt(p.price[1]));
  }
  const [city, postalCode, countryCode] = pick(CITIES);
  const method = random();
  return {
    checkoutId: crypto.randomUUID(),
    customerId,
    items,
    total: {
      currencyCode: "EUR",
      units: Number(nanosTotal / 1_000_000_000n),
      nanos: Number(nanosTotal % 1_000_000_000n),
    },
    shippingAddress: {
      lines: [`${1 + Math.floor(random() * 200)} Market Street`],
      city,
      postalCode,
      countryCode,
    },
    paymentMethod:
      method < 0.7
        ? {
            $case: "card",
            card: {
              token: `tok_${crypto.randomUUID().slice(0, 12)}`,
              brand: pick(["visa", "mastercard", "amex"]),
              last4: String(1000 + Math.floor(random() * 9000)),
            },
          }
        : method < 0.9
          ? {
              $case: "wallet",
              wallet: { provider: pick(["applepay", "paypal"]), walletId: `w-${Math.floor(random() * 1e6)}` },
            }
          : {
              $case: "bankTransfer",
              bankTransfer: { ibanLast4: String(1000 + Math.floor(random() * 9000)) },
            },
    channel: pick(CHANNELS),
    initiatedAt: new Date(),
  };
}

/**
 * The checkout service: emits `customer.checkout.initiated` for customers drawn from a key space
 * at a steady rate, until `durationMs` or the signal. Resolves with what it did.
 */
export async function runCheckout(
  opts: ServiceRunOptions<CustomerCheckoutInitiated>,
): Promise<WorkloadSummary> {
  const log: Logger = opts.logger ?? pino({ level: "info" });
  const random = opts.random ?? Math.random;
  const producer = await createProducer({
    name: "checkout",
    ...opts.producer,
    servers: opts.servers,
    logger: log,
  });
  const customer = createKeyPicker({
    size: opts.keys ?? 100,
    distribution: opts.distribution ?? "uniform",
    random,
    namespace: CUSTOMER_NAMESPACE,
  });
  try {
    const summary = await runPaced({
      ratePerSec: opts.ratePerSec ?? 10,
      durationMs: opts.durationMs ?? 10_000,
      signal: opts.signal,
      maxOutstanding: producer.stats().maxInFlight,
      step: async () => {
        const event = randomCheckout(customer(), random);
        try {
          const ack = await producer.publish(CheckoutInitiated, event);
          opts.onPublished?.(ack, event);
        } catch (err) {
          opts.onFailed?.(err, event);
          throw err;
        }
      },
    });
    log.info({ service: "checkout", ...summary }, "checkout run finished");
    return summary;
  } finally {
    await producer.close();
  }
}

export { keyUuid };

await runCli(import.meta.url, "checkout", async (argv, signal) => {
  const args = parseServiceArgs(argv);
  return runCheckout({ ...args, signal });
});
