import type { RetryOptions } from "./options.js";

/**
 * Wait before retry number `attempt` (1-based): exponential backoff with full jitter, a random
 * time below min(max, initial * 2^(attempt-1)), so producers that failed together do not retry
 * together.
 */
export function backoffDelay(
  attempt: number,
  opts: Pick<RetryOptions, "initialDelayMs" | "maxDelayMs">,
): number {
  const cap = Math.min(opts.maxDelayMs, opts.initialDelayMs * 2 ** Math.min(attempt - 1, 30));
  return Math.floor(Math.random() * cap);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
