/** Options of {@link RateLimiter}. */
export interface RateLimitOptions {
  /** Sustained requests per second per principal. 0 disables the limit. */
  perSecond: number;
  /** Requests a principal may make at once after being idle. Default: `perSecond`. */
  burst: number;
}

/** Token buckets per principal; idle buckets are dropped so memory stays bounded by active principals. */
export class RateLimiter {
  readonly #opts: RateLimitOptions;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  #lastSweep = Date.now();

  constructor(opts: RateLimitOptions) {
    this.#opts = opts;
  }

  /** 0 when `principal` may proceed (a token is taken), else the seconds to wait before retrying. */
  take(principal: string, now = Date.now()): number {
    const { perSecond, burst } = this.#opts;
    if (perSecond <= 0) return 0;
    if (now - this.#lastSweep > 60_000) this.#sweep(now);
    const b = this.#buckets.get(principal) ?? { tokens: burst, at: now };
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * perSecond);
    b.at = now;
    this.#buckets.set(principal, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / perSecond));
  }

  #sweep(now: number): void {
    this.#lastSweep = now;
    const full = (this.#opts.burst / this.#opts.perSecond) * 1000;
    for (const [k, b] of this.#buckets) if (now - b.at > full) this.#buckets.delete(k);
  }
}
