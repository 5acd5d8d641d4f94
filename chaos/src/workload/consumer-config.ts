/** What the consumer process is told at start (passed as JSON in JETKIT_CHAOS_CONSUMER). */
export interface ConsumerConfig {
  servers: string[];
  durable: string;
  /** Name in the history (`consumer` field). */
  name: string;
  /**
   * The consumer SDK's idempotency store (`idempotency: { bucket }`) plus an idempotent effect:
   * the handler records its effect with a KV `create` keyed by event id (first writer wins), so a
   * handler that runs again after a crash between its effect and the SDK's record is caught.
   */
  idempotency: boolean;
  /** KV bucket of the SDK's idempotency store. */
  bucket: string;
  /** KV bucket the handler records its effects in. */
  effectsBucket: string;
  /** `per-key`: the SDK runs events of one order id one at a time, in stream order. */
  ordering: "per-key" | "none";
  /** Handlers at once (the SDK's `concurrency`). */
  concurrency: number;
  /** Handler time per message, ms (a slow handler when > 0). */
  handlerDelayMs: number;
  /** Messages pulled per batch. */
  batch: number;
  ackWaitMs: number;
  maxDeliver: number;
  maxAckPending: number;
}

/** A command sent to a running consumer process on stdin. */
export interface ConsumerCommand {
  handlerDelayMs?: number;
}
