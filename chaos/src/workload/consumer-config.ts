/** What the consumer process is told at start (passed as JSON in JETKIT_CHAOS_CONSUMER). */
export interface ConsumerConfig {
  servers: string[];
  stream: string;
  durable: string;
  /** Name in the history (`consumer` field). */
  name: string;
  /** Record effects through the idempotency store (a KV bucket keyed by message id). */
  idempotency: boolean;
  /** KV bucket of the idempotency store. */
  bucket: string;
  /** Handler time per message, ms (a slow handler when > 0). */
  handlerDelayMs: number;
  /** Messages pulled per batch. */
  batch: number;
}

/** A command sent to a running consumer process on stdin. */
export interface ConsumerCommand {
  handlerDelayMs?: number;
}
