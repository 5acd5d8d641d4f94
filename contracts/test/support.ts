import * as audit from "../gen/ts/jetkit/v1/audit.js";
import * as customer from "../gen/ts/shop/customer/v1/events.js";
import * as inventory from "../gen/ts/shop/inventory/v1/events.js";
import * as order from "../gen/ts/shop/order/v1/events.js";
import * as payment from "../gen/ts/shop/payment/v1/events.js";
import type { EventType } from "../src/index.js";

/** The ts-proto codec of every event (domain events and the gateway's audit), by fully-qualified message name. */
export const codecs = new Map<string, EventType<unknown>>(
  [audit, customer, inventory, order, payment]
    .flatMap((m) => Object.values(m))
    .filter((v): v is EventType<unknown> => typeof v === "object" && v !== null && "$type" in v)
    .map((c) => [c.$type, c]),
);

/** A small seeded PRNG, so a failing random case can be replayed from its seed. */
export function prng(seed: number) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[int(0, xs.length - 1)]!;
  return { next, int, pick };
}
