import type { BackoffOptions } from "./options.js";

/**
 * The nak delay after failed delivery number `delivery` (1-based): exponential, capped, with up to
 * `jitter` of it taken off at random. JetStream's consumer `backoff` only applies to ack timeouts,
 * so the SDK computes the delay of an explicit nak itself.
 */
export function nakDelay(delivery: number, o: BackoffOptions, random: () => number = Math.random): number {
  const exp = o.initialMs * o.multiplier ** Math.max(0, delivery - 1);
  const capped = Math.min(o.maxMs, exp);
  return Math.round(capped * (1 - o.jitter * random()));
}
