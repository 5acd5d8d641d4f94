import { createHash } from "node:crypto";
import { DiscardPolicy, type JetStreamClient, type JetStreamManager, StorageType } from "@nats-io/jetstream";
import { nanos } from "@nats-io/nats-core";
import type { Logger } from "pino";

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

/** Options of {@link SharedRateLimiter}. */
export interface SharedRateLimitOptions extends RateLimitOptions {
  /** A JetStream client and manager of the gateway's own NATS connection. */
  js: JetStreamClient;
  jsm: JetStreamManager;
  /** The KV bucket holding one token bucket per principal (created when missing). Default: `jetkit-gateway-rate`. */
  bucket?: string;
  /**
   * Tokens a replica takes from the shared bucket in one compare-and-set and then spends locally.
   * Default: a tenth of a second's worth (`ceil(perSecond / 10)`), at most a tenth of the burst, at least 1.
   */
  leaseTokens?: number;
  /** Leased tokens not spent within this many ms are dropped. Default: 1000. */
  leaseMs?: number;
  logger: Logger;
}

/** What {@link SharedRateLimiter.stats} counts. */
export interface SharedRateLimitStats {
  /** Requests decided from tokens this replica already held (no NATS round trip). */
  local: number;
  /** Compare-and-set rounds on the shared bucket (each one KV read or none, and one KV write). */
  leases: number;
  /** Compare-and-set conflicts (another replica wrote first): retried. */
  conflicts: number;
  /** Requests decided by the per-replica bucket because the KV bucket could not be reached. */
  fallbacks: number;
}

interface Held {
  tokens: number;
  leasedAt: number;
  emptyUntil: number;
  seq: number;
  state: { t: number; at: number } | undefined;
  inflight: Promise<void> | undefined;
  /** Requests waiting for the lease in flight. */
  waiting: number;
}

/**
 * Token buckets per principal shared by every gateway replica: one bucket per principal in a NATS
 * KV bucket (a memory stream, one message per key), updated by compare-and-set
 * (`Nats-Expected-Last-Subject-Sequence`). A replica takes `leaseTokens` at once and spends them
 * locally, so most requests make no round trip; every admitted request spent a token taken from
 * the shared bucket, so the total across replicas stays within the bucket (plus, in the worst
 * case, the tokens each replica has leased and not spent yet). When the KV bucket cannot be
 * reached a request is decided by this replica's own bucket (per-replica limits) and a warning is
 * logged.
 */
export class SharedRateLimiter {
  readonly #o: Required<Omit<SharedRateLimitOptions, "logger">> & { logger: Logger };
  readonly #held = new Map<string, Held>();
  readonly #fallback: RateLimiter;
  readonly #stream: string;
  readonly #prefix: string;
  #ready: Promise<void> | undefined;
  #lastWarn = 0;
  #lastSweep = Date.now();
  readonly stats: SharedRateLimitStats = { local: 0, leases: 0, conflicts: 0, fallbacks: 0 };

  constructor(opts: SharedRateLimitOptions) {
    const lease =
      opts.leaseTokens ?? Math.max(1, Math.min(Math.ceil(opts.perSecond / 10), Math.floor(opts.burst / 10)));
    this.#o = {
      ...opts,
      bucket: opts.bucket ?? "jetkit-gateway-rate",
      leaseTokens: Math.max(1, Math.floor(lease)),
      leaseMs: opts.leaseMs ?? 1000,
    };
    this.#fallback = new RateLimiter(opts);
    this.#stream = `KV_${this.#o.bucket}`;
    this.#prefix = `$KV.${this.#o.bucket}.`;
  }

  /** Creates the KV bucket when it does not exist. */
  ensureBucket(): Promise<void> {
    this.#ready ??= (async () => {
      const { perSecond, burst } = this.#o;
      // an idle principal's bucket is full again after burst / perSecond: keep keys that long
      const maxAgeMs = Math.max(60_000, perSecond > 0 ? Math.ceil((2 * burst * 1000) / perSecond) : 60_000);
      try {
        await this.#o.jsm.streams.info(this.#stream);
      } catch {
        await this.#o.jsm.streams.add({
          name: this.#stream,
          subjects: [`${this.#prefix}>`],
          storage: StorageType.Memory,
          max_msgs_per_subject: 1,
          discard: DiscardPolicy.New,
          allow_direct: true,
          allow_rollup_hdrs: true,
          deny_delete: true,
          max_age: nanos(maxAgeMs),
          duplicate_window: nanos(Math.min(120_000, maxAgeMs)),
        });
      }
    })();
    return this.#ready;
  }

  /**
   * 0 when `principal` may proceed (a token is spent), else the seconds to wait. A number when
   * decided from tokens held here (no NATS round trip), a promise when the shared bucket was asked.
   */
  take(principal: string, now = Date.now()): number | Promise<number> {
    return this.#take(principal, now, false);
  }

  #take(principal: string, now: number, leased: boolean): number | Promise<number> {
    const { perSecond } = this.#o;
    if (perSecond <= 0) return 0;
    if (now - this.#lastSweep > 60_000) this.#sweep(now);
    let h = this.#held.get(principal);
    if (!h) {
      h = {
        tokens: 0,
        leasedAt: 0,
        emptyUntil: 0,
        seq: 0,
        state: undefined,
        inflight: undefined,
        waiting: 0,
      };
      this.#held.set(principal, h);
    }
    if (h.tokens >= 1 && now - h.leasedAt > this.#o.leaseMs) h.tokens = 0; // stale lease
    if (h.tokens >= 1) {
      h.tokens--;
      if (!leased) this.stats.local++;
      return 0;
    }
    if (now < h.emptyUntil) return Math.max(1, Math.ceil((h.emptyUntil - now) / 1000));
    const held = h;
    held.waiting++;
    held.inflight ??= this.#lease(principal, held).finally(() => {
      held.inflight = undefined;
      held.waiting = 0;
    });
    return held.inflight.then(
      () => this.#take(principal, Date.now(), true),
      () => {
        this.stats.fallbacks++;
        return this.#fallback.take(principal);
      },
    );
  }

  async #lease(principal: string, h: Held): Promise<void> {
    const { js, jsm, perSecond, burst, leaseTokens } = this.#o;
    const subject = `${this.#prefix}${createHash("sha256").update(principal).digest("base64url")}`;
    try {
      await this.ensureBucket();
      for (let attempt = 0; attempt < 20; attempt++) {
        if (h.state === undefined) {
          const m = await jsm.direct.getMessage(this.#stream, { last_by_subj: subject });
          h.seq = m?.seq ?? 0;
          h.state = m ? (m.json() as { t: number; at: number }) : undefined;
        }
        const now = Date.now();
        const prev = h.state ?? { t: burst, at: now };
        const at = Math.max(now, prev.at);
        const tokens = Math.min(burst, prev.t + (Math.max(0, now - prev.at) / 1000) * perSecond);
        this.stats.leases++;
        if (tokens < 1) {
          h.state = undefined; // read again next time: another replica's lease may come back as refill
          h.emptyUntil = now + Math.ceil(((1 - tokens) / perSecond) * 1000);
          return;
        }
        // enough for every request waiting here, so each lease serves them all
        const n = Math.min(Math.max(leaseTokens, h.waiting), Math.floor(tokens));
        const next = { t: tokens - n, at };
        try {
          const ack = await js.publish(subject, JSON.stringify(next), {
            expect: { lastSubjectSequence: h.seq },
          });
          // not cached: every lease reads first, so the replica that won last has no head start
          // and cannot starve the others
          h.seq = ack.seq;
          h.state = undefined;
          h.tokens += n;
          h.leasedAt = now;
          return;
        } catch (err) {
          if (!isWrongLastSequence(err)) throw err;
          this.stats.conflicts++;
          h.state = undefined;
          // a random pause, so the replica that just won does not win every time
          await new Promise((r) => setTimeout(r, Math.random() * Math.min(50, 2 ** attempt)));
        }
      }
      throw new Error(`20 compare-and-set conflicts in a row on the bucket of ${principal}`);
    } catch (err) {
      h.state = undefined;
      const now = Date.now();
      if (now - this.#lastWarn > 10_000) {
        this.#lastWarn = now;
        this.#o.logger.warn(
          { err, bucket: this.#o.bucket },
          "shared rate limit bucket unreachable or contended: this request is limited per replica",
        );
      }
      throw err;
    }
  }

  #sweep(now: number): void {
    this.#lastSweep = now;
    for (const [k, h] of this.#held)
      if (!h.inflight && now - h.leasedAt > 60_000 && now > h.emptyUntil) this.#held.delete(k);
  }
}

function isWrongLastSequence(err: unknown): boolean {
  for (
    let e = err as { code?: unknown; cause?: unknown; message?: unknown } | undefined;
    e;
    e = e.cause as typeof e
  ) {
    if (
      (e as { api_error?: { err_code?: number } }).api_error?.err_code === 10071 ||
      /wrong last sequence/i.test(String(e.message))
    )
      return true;
  }
  return false;
}
