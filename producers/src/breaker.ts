import type { BreakerOptions } from "./options.js";

/** `closed`: publishes flow. `open`: they fail fast. `half-open`: one probe decides. */
export type BreakerState = "closed" | "open" | "half-open";

/** One state change of the breaker. */
export interface BreakerChange {
  readonly from: BreakerState;
  readonly to: BreakerState;
  /** Consecutive failed attempts when it changed. */
  readonly failures: number;
  readonly at: Date;
}

/** What {@link CircuitBreaker.enter} decided for one attempt. */
export type Admission = { kind: "pass"; probe: boolean } | { kind: "reject"; retryInMs: number };

/**
 * Counts consecutive failed attempts; at the threshold it opens, and publishes fail fast until
 * the cool-down ends. Then one attempt passes as a probe (half-open): its success closes the
 * breaker, its failure opens it again. Attempts already admitted before the breaker opened may
 * wait for it (see {@link CircuitBreaker.whenPassable}) instead of failing, so work that was
 * accepted is retried to its deadline.
 */
export class CircuitBreaker {
  #state: BreakerState = "closed";
  #failures = 0;
  #openedAt = 0;
  #probing = false;
  #waiters: (() => void)[] = [];
  readonly #opts: BreakerOptions;
  readonly #onChange: (change: BreakerChange) => void;

  constructor(opts: BreakerOptions, onChange: (change: BreakerChange) => void) {
    this.#opts = opts;
    this.#onChange = onChange;
  }

  get state(): BreakerState {
    return this.#state;
  }

  /** Decides whether an attempt may go to the broker now. */
  enter(now = Date.now()): Admission {
    if (this.#state === "closed") return { kind: "pass", probe: false };
    if (this.#state === "open") {
      const left = this.#openedAt + this.#opts.coolDownMs - now;
      if (left > 0) return { kind: "reject", retryInMs: left };
      this.#set("half-open");
    }
    if (this.#probing) return { kind: "reject", retryInMs: this.#opts.coolDownMs };
    this.#probing = true;
    return { kind: "pass", probe: true };
  }

  /**
   * Resolves when an attempt could pass: at the end of the cool-down, or when a probe's outcome
   * is known, or after `maxWaitMs`.
   */
  whenPassable(maxWaitMs: number): Promise<void> {
    if (this.#state === "closed") return Promise.resolve();
    return new Promise((resolve) => {
      const wait =
        this.#state === "open" ? Math.max(0, this.#openedAt + this.#opts.coolDownMs - Date.now()) : maxWaitMs;
      const done = () => {
        clearTimeout(timer);
        this.#waiters = this.#waiters.filter((w) => w !== done);
        resolve();
      };
      const timer = setTimeout(done, Math.min(wait, maxWaitMs));
      this.#waiters.push(done);
    });
  }

  /** An attempt was acknowledged (a late ack of an attempt begun before the outage counts too). */
  success(probe: boolean): void {
    if (probe) this.#probing = false;
    this.#failures = 0;
    if (this.#state !== "closed") this.#set("closed");
  }

  /** An attempt failed transiently. */
  failure(probe: boolean, now = Date.now()): void {
    if (probe) this.#probing = false;
    this.#failures++;
    if (this.#state === "half-open" && probe) this.#open(now);
    else if (this.#state === "closed" && this.#failures >= this.#opts.failureThreshold) this.#open(now);
  }

  /** A probe ended without telling anything about the broker (e.g. a permanent refusal). */
  release(probe: boolean): void {
    if (probe) {
      this.#probing = false;
      this.#wake();
    }
  }

  #open(now: number): void {
    this.#openedAt = now;
    this.#set("open");
  }

  #set(to: BreakerState): void {
    const from = this.#state;
    if (from === to) return;
    this.#state = to;
    this.#onChange({ from, to, failures: this.#failures, at: new Date() });
    this.#wake();
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }
}
