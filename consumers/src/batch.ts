import { JetkitError } from "@jetkit/contracts";
import { ConsumerErrorCodes, PermanentError } from "./errors.js";

/** One message of a batch: the decoded event and what a single handler would be told about it. */
export interface BatchMessage<T, C> {
  readonly event: T;
  readonly ctx: C;
}

/** A message of the batch with the reason it failed (logged, and stored in its dead letter). */
export interface BatchFailure<T, C> {
  readonly message: BatchMessage<T, C>;
  readonly reason: string;
}

/**
 * What a batch handler says about its messages. Every message not named here succeeded (its effect
 * recorded, then acked). A message may be named once, and only if it was in the batch.
 */
export interface BatchResult<T, C> {
  /** Retried as if its single handler had thrown: nak'd with backoff, or in place under per-key order. */
  readonly retry?: ReadonlyArray<BatchMessage<T, C> | BatchFailure<T, C>>;
  /** Dead-lettered at once (class `handler_permanent`), as if its handler threw a PermanentError. */
  readonly deadLetter?: ReadonlyArray<BatchMessage<T, C> | BatchFailure<T, C>>;
}

/**
 * Handles a batch of events of one type. Return nothing when all succeeded, or a {@link BatchResult}
 * naming the ones to retry or dead-letter. Throwing retries the whole batch (a PermanentError
 * dead-letters the whole batch).
 */
export type BatchHandler<T, C> = (
  batch: ReadonlyArray<BatchMessage<T, C>>,
  signal: AbortSignal,
) => Promise<BatchResult<T, C> | undefined> | BatchResult<T, C> | undefined;

/** How a batch fills: it is handed to the handler at `max` messages or `maxWaitMs` after its first. */
export interface BatchOptions {
  /** Most messages per batch (default: the consumer's `concurrency`, which bounds it). */
  max?: number;
  /** Longest wait for a batch to fill after its first message, ms (default 20). */
  maxWaitMs?: number;
}

interface Entry<T, C> {
  readonly message: BatchMessage<T, C>;
  readonly token: unknown;
  resolve(): void;
  reject(err: unknown): void;
}

/** A message of the batch that the handler asked to retry (not a permanent failure). */
class BatchRetry extends Error {
  override name = "BatchRetry";
}

/**
 * Collects the messages of one event type that reached their handler into batches and settles each
 * message with its part of the batch's outcome. Everything before and after a handler (decode,
 * contract checks, idempotency claims and records, per-key lanes, dead-lettering, acks) stays per
 * message in the consumer, so a batch keeps every rule a single handler has: a batch never holds
 * two events of one key under per-key order, since the later one waits for its key's turn.
 */
export class BatchCollector<T, C> {
  readonly max: number;
  readonly maxWaitMs: number;
  #open: Entry<T, C>[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(
    readonly type: string,
    readonly handler: BatchHandler<T, C>,
    opts: BatchOptions,
    concurrency: number,
    /** Runs the handler (the consumer wraps it in the batch's span). */
    private readonly run: (
      entries: ReadonlyArray<{ token: unknown }>,
      call: () => unknown,
    ) => Promise<unknown>,
    private readonly signal: AbortSignal,
    /** Logs an outcome the handler got wrong (the whole batch is then retried). */
    private readonly onInvalid: (err: JetkitError) => void,
  ) {
    this.max = opts.max ?? concurrency;
    this.maxWaitMs = opts.maxWaitMs ?? 20;
    if (!Number.isInteger(this.max) || this.max < 1) {
      throw new JetkitError(
        ConsumerErrorCodes.CONFIG,
        `onBatch(${type}): max must be a whole number >= 1, got ${String(opts.max)}.`,
        { details: { type, option: "max" } },
      );
    }
    if (this.max > concurrency) {
      throw new JetkitError(
        ConsumerErrorCodes.CONFIG,
        `onBatch(${type}): max ${this.max} is above the consumer's concurrency ${concurrency}, which bounds the messages handled at once, so a batch could never fill. Raise concurrency to at least ${this.max} or lower max.`,
        { details: { type, option: "max", max: this.max, concurrency } },
      );
    }
    if (!Number.isFinite(this.maxWaitMs) || this.maxWaitMs < 0) {
      throw new JetkitError(
        ConsumerErrorCodes.CONFIG,
        `onBatch(${type}): maxWaitMs must be a number of milliseconds >= 0, got ${String(opts.maxWaitMs)}.`,
        { details: { type, option: "maxWaitMs" } },
      );
    }
  }

  /** Messages waiting in the open batch. */
  get size(): number {
    return this.#open.length;
  }

  /** Adds a message whose handler would run now; settles when the batch's outcome for it is known. */
  add(event: T, ctx: C, token: unknown): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#open.push({ message: { event, ctx }, token, resolve, reject });
      if (this.#open.length >= this.max) this.flush();
      else this.#timer ??= setTimeout(() => this.flush(), this.maxWaitMs);
    });
  }

  /** Hands the open batch to the handler now (the consumer calls it when no message can join). */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const entries = this.#open;
    if (entries.length === 0) return;
    this.#open = [];
    const batch = entries.map((e) => e.message);
    this.run(entries, () => this.handler(batch, this.signal)).then(
      (result) => this.#settle(entries, result as BatchResult<T, C> | undefined),
      (err: unknown) => {
        for (const e of entries) e.reject(err);
      },
    );
  }

  #settle(entries: Entry<T, C>[], result: BatchResult<T, C> | undefined): void {
    const outcome = new Map<BatchMessage<T, C>, Error>();
    try {
      if (result !== undefined && (typeof result !== "object" || result === null)) {
        throw this.#invalid(
          `returned ${result === null ? "null" : typeof result}; return nothing, or { retry, deadLetter } naming messages of the batch`,
        );
      }
      const given = new Set(entries.map((e) => e.message));
      const name = (list: unknown, which: "retry" | "deadLetter") => {
        if (list === undefined) return;
        if (!Array.isArray(list)) throw this.#invalid(`${which} must be an array of messages of the batch`);
        for (const item of list as Array<BatchMessage<T, C> | BatchFailure<T, C>>) {
          const message = item && "message" in item ? item.message : item;
          const reason = item && "reason" in item ? String(item.reason) : undefined;
          if (!given.has(message)) {
            throw this.#invalid(
              `${which} names a message that was not in this batch (${describe(message)}); name only the objects of the batch array you were given`,
            );
          }
          if (outcome.has(message)) {
            throw this.#invalid(
              `${which} names a message that already has an outcome (${describe(message)}); name each message once`,
            );
          }
          const why =
            reason ?? `the batch handler asked to ${which === "retry" ? "retry" : "dead-letter"} it`;
          outcome.set(message, which === "retry" ? new BatchRetry(why) : new PermanentError(why));
        }
      };
      name(result?.retry, "retry");
      name(result?.deadLetter, "deadLetter");
    } catch (err) {
      // A wrong outcome says nothing reliable about any message: retry them all, ack none.
      const e = err as JetkitError;
      this.onInvalid(e);
      for (const entry of entries) entry.reject(e);
      return;
    }
    for (const e of entries) {
      const failure = outcome.get(e.message);
      if (failure) e.reject(failure);
      else e.resolve();
    }
  }

  #invalid(what: string): JetkitError {
    return new JetkitError(
      ConsumerErrorCodes.BATCH_OUTCOME,
      `the batch handler of ${this.type} ${what}. Nothing of this batch was acked; every message is retried.`,
      { details: { type: this.type } },
    );
  }
}

function describe(message: unknown): string {
  const ctx = (message as { ctx?: { seq?: number; eventId?: string } } | undefined)?.ctx;
  return ctx?.eventId ? `event ${ctx.eventId}, seq ${ctx.seq}` : "not a batch message";
}
