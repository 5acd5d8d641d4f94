/**
 * How the workload's consumer processes share the durable.
 * - `competing`: every process pulls from the one durable (JetStream competing consumers); the
 *   consumer SDK keeps per-key order inside one process only.
 * - `partitioned`: the consumer SDK's partitioned consumer group (`group` option, elastic): each
 *   key's partition is owned by one process at a time, so per-key order holds across processes
 *   and through crashes.
 */
export type ConsumerGroupMode = "competing" | "partitioned";
export const CONSUMER_GROUP_MODES: readonly ConsumerGroupMode[] = ["competing", "partitioned"];

/**
 * Where the handler's effect goes.
 * - `file`: a line appended to a plain file (effect-log.ts): nothing absorbs a re-run, so a crash
 *   between the effect and the SDK's record shows as a duplicate.
 * - `sqlite`: a row in a SQLite database shared by the processes, written in one transaction with
 *   the consumer SDK's inbox record (`SqliteInbox`): the pattern for effects in the service's own
 *   database.
 */
export type EffectMode = "file" | "sqlite";
export const EFFECT_MODES: readonly EffectMode[] = ["file", "sqlite"];

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
  /** Where the effect goes; `sqlite`: into `effectDb`, with the inbox record. */
  effect: EffectMode;
  /** The SQLite database of the `sqlite` effect mode (shared by the processes). */
  effectDb: string;
  /** `per-key`: the SDK runs events of one order id one at a time, in stream order. */
  ordering: "per-key" | "none";
  /** How the processes share the durable. */
  group: ConsumerGroupMode;
  /** Partitioned groups: the KV bucket of membership and checkpoints, and the partition count. */
  groupBucket: string;
  groupPartitions: number;
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
