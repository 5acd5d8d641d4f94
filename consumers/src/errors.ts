import { JetkitError } from "@jetkit/contracts";

/** Error codes of the consumer SDK and the dead-letter tools (documented in consumers/README.md). */
export const ConsumerErrorCodes = {
  /** The consumer options are invalid (missing durable, no subjects, handler outside the filter, …). */
  CONFIG: "JK_CONSUMER_CONFIG",
  /** Connecting to NATS, or creating the durable consumer or a stream binding, failed. */
  CONNECT: "JK_CONSUMER_CONNECT",
  /** `on()` was called after `start()`, or `start()` twice, or after `stop()`. */
  STATE: "JK_CONSUMER_STATE",
  /** The idempotency bucket could not be created or opened. */
  IDEMPOTENCY: "JK_CONSUMER_IDEMPOTENCY",
  /** Thrown by a handler (via {@link PermanentError}) to dead-letter the message at once. */
  PERMANENT: "JK_CONSUMER_PERMANENT",
  /**
   * The partitioned consumer group could not be joined: its bucket is unusable, or the group
   * exists with another partition count or mode.
   */
  GROUP: "JK_CONSUMER_GROUP",
  /**
   * A batch handler's result named a message that was not in its batch, named one twice, or was
   * not `{ retry, deadLetter }`: nothing of the batch was acked, every message is retried.
   */
  BATCH_OUTCOME: "JK_CONSUMER_BATCH_OUTCOME",
  /** The HTTP health probe could not listen. */
  HEALTH: "JK_CONSUMER_HEALTH",
  /** A dead letter could not be published to the DLQ stream. */
  DLQ_PUBLISH: "JK_DLQ_PUBLISH",
  /** The DLQ stream does not exist. */
  DLQ_STREAM: "JK_DLQ_STREAM",
  /** No dead letter has the given DLQ sequence. */
  DLQ_NOT_FOUND: "JK_DLQ_NOT_FOUND",
  /** A dead letter lacks the Jetkit-Dlq-* headers needed to replay it. */
  DLQ_NOT_REPLAYABLE: "JK_DLQ_NOT_REPLAYABLE",
  /** purgeDeadLetters was called without the confirmation argument. */
  DLQ_CONFIRM: "JK_DLQ_CONFIRM",
} as const;
export type ConsumerErrorCode = (typeof ConsumerErrorCodes)[keyof typeof ConsumerErrorCodes];

/**
 * Throw from a handler when retrying cannot help (the event refers to something that can never
 * exist, a business rule rejects it): the message goes to the DLQ at once with class
 * `handler_permanent` instead of being retried.
 */
export class PermanentError extends JetkitError {
  override name = "PermanentError";

  constructor(message: string, opts: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(ConsumerErrorCodes.PERMANENT, message, opts);
  }
}

/** True when `err` or its cause chain holds a {@link PermanentError}. */
export function isPermanentError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 16; depth++) {
    if (e instanceof PermanentError) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** A one-line reason for a failure, for logs and the Jetkit-Dlq-Reason header. */
export function reasonOf(err: unknown): string {
  if (err instanceof JetkitError) return `${err.code}: ${err.message}`;
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
