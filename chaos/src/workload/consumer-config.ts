/**
 * How the workload's consumer processes share the durable.
 * - `competing`: every process pulls from the one durable (JetStream competing consumers); the
 *   consumer SDK keeps per-key order inside one process only.
 * Seam for the consumer SDK's partitioned consumer groups (per-key order across processes): add
 * `partitioned` here and map it to the SDK's option in consumer-worker.ts (`sdkGroupOptions`).
 */
export type ConsumerGroupMode = "competing";
export const CONSUMER_GROUP_MODES: readonly ConsumerGroupMode[] = ["competing"];

/** What the consumer process is told at start (passed as JSON in JETKIT_CHAOS_CONSUMER). */
export interface ConsumerConfig {
  servers: string[];
  durable: string;
  /** Name in the history (`consumer` field) and of its effect file: `consumer-1`, `consumer-2`, ... */
  name: string;
  /** The consumer SDK's idempotency store (`idempotency: { bucket }`): its effect happens once per event id. */
  idempotency: boolean;
  /** KV bucket of the SDK's idempotency store. */
  bucket: string;
  /** The append-only file the handler writes each effect to (see effect-log.ts). */
  effectFile: string;
  /** `per-key`: the SDK runs events of one order id one at a time, in stream order. */
  ordering: "per-key" | "none";
  /** How the processes share the durable. */
  group: ConsumerGroupMode;
  /** Processes in the group (this one is one of them). */
  groupSize: number;
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
  /**
   * Kill this process (SIGKILL, its own pid) right after the handler appends its n-th effect from
   * now: the effect is in the file, the SDK has neither recorded nor acked it.
   */
  crashAfterEffects?: number;
}
