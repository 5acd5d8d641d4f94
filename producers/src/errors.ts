import { JetkitError } from "@jetkit/contracts";
import { JetStreamApiError, JetStreamError } from "@nats-io/jetstream";
import { errors as natsErrors, RequestError } from "@nats-io/transport-node";

/** Error codes of the producer SDK (documented with their fix in producers/README.md). */
export const ProducerErrorCodes = {
  /** The options passed to createProducer or publish are invalid. */
  OPTIONS: "JK_PRODUCER_OPTIONS",
  /** The first connection to NATS failed. */
  CONNECT: "JK_PRODUCER_CONNECT",
  /** The encoded event is larger than the server (or stream) accepts. */
  PAYLOAD_TOO_LARGE: "JK_PRODUCER_PAYLOAD_TOO_LARGE",
  /** The circuit breaker is open: the broker failed repeatedly, publishes fail fast. */
  CIRCUIT_OPEN: "JK_PRODUCER_CIRCUIT_OPEN",
  /**
   * No definite answer within the publish deadline, after every retry: the event may be stored
   * (an earlier attempt may have reached the stream and its ack been lost). Never a refusal.
   */
  OUTCOME_UNKNOWN: "JK_PRODUCER_OUTCOME_UNKNOWN",
  /** An optimistic-concurrency expectation (last sequence / last msg id) failed. */
  EXPECTATION_FAILED: "JK_PRODUCER_EXPECTATION_FAILED",
  /** The subject is captured by another stream than the contract's. */
  WRONG_STREAM: "JK_PRODUCER_WRONG_STREAM",
  /** The server refused the message for a reason a retry cannot fix. */
  REJECTED: "JK_PRODUCER_REJECTED",
  /**
   * The publish asked for what the event's stream (or server) does not allow: a TTL without
   * `allow_msg_ttl`, a delivery time without `allow_msg_schedules`, an atomic batch without
   * `allow_atomic` (nothing was stored).
   */
  UNSUPPORTED: "JK_PRODUCER_UNSUPPORTED",
  /** The producer is closing or closed. */
  CLOSED: "JK_PRODUCER_CLOSED",
  /** One event of a publishMany batch failed; the batch stopped there. */
  BATCH_FAILED: "JK_PRODUCER_BATCH_FAILED",
  /** An atomic batch with no events (nothing sent). */
  BATCH_EMPTY: "JK_PRODUCER_BATCH_EMPTY",
  /** An atomic batch with more events than the server takes in one batch (nothing sent or stored). */
  BATCH_TOO_LARGE: "JK_PRODUCER_BATCH_TOO_LARGE",
  /** An atomic batch with events of more than one stream (nothing sent). */
  BATCH_STREAMS: "JK_PRODUCER_BATCH_STREAMS",
} as const;
export type ProducerErrorCode = (typeof ProducerErrorCodes)[keyof typeof ProducerErrorCodes];

/** JetStream API error codes the producer tells apart. */
const API = {
  WRONG_LAST_SEQUENCE: 10071,
  WRONG_LAST_SEQUENCE_UNKNOWN: 10164,
  WRONG_LAST_MSG_ID: 10070,
  EXPECTED_STREAM_MISMATCH: 10060,
  /**
   * "duplicate message id is in process" (409): an earlier attempt with this msg id reached the
   * stream and is being stored right now. Not a refusal: the retry's answer will be its ack.
   */
  DUPLICATE_IN_PROCESS: 10158,
} as const;

/**
 * How a failed attempt is handled: `refused` is a definite answer that the event was not stored
 * (the same attempt again would be refused again); `ambiguous` says nothing definite, so the
 * event may be stored or not, and the attempt is retried with the same msg id.
 */
export type FailureKind = "refused" | "ambiguous";

/**
 * Sorts a failed publish attempt. Ambiguous: timeouts (the ack may be lost), no-responders (the
 * stream has no leader yet, or the server is restarting), disconnects, an unreadable answer,
 * server 5xx and 10158 "duplicate message id is in process" (an earlier attempt is being stored).
 * Refused: every other JetStream API error (expectations, limits, permissions), contract
 * errors, JetStream not enabled, a closed connection.
 */
export function classify(err: unknown): FailureKind {
  if (err instanceof JetkitError) return "refused";
  if (err instanceof JetStreamApiError) {
    return err.status >= 500 || err.code === API.DUPLICATE_IN_PROCESS ? "ambiguous" : "refused";
  }
  // publish() wraps no-responders in "jetstream not enabled" (the stream leader is not there
  // yet, e.g. the server is restarting), so look down the cause chain.
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; depth++) {
    if (e instanceof natsErrors.TimeoutError || e instanceof natsErrors.NoRespondersError) return "ambiguous";
    if (e instanceof natsErrors.ConnectionError) return "ambiguous";
    if (e instanceof RequestError) {
      // "connection disconnected" or no responders; "connection closed" is final.
      return e.message === "connection closed" ? "refused" : "ambiguous";
    }
    if (e instanceof JetStreamError && e.message === "invalid ack response") return "ambiguous";
    e = e.cause;
  }
  return "refused";
}

/** True when the failure was the stream (or server) answering, so the broker is reachable. */
export function brokerAnswered(err: unknown): boolean {
  if (err instanceof JetStreamApiError) return true;
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; depth++) {
    if (e instanceof natsErrors.NoRespondersError) return true;
    e = e.cause;
  }
  return false;
}

/**
 * The JetkitError for a permanent failure of a publish to `subject`. NATS errors are mapped to
 * a producer code; JetkitErrors (contract violations, …) pass through unchanged.
 */
export function toProducerError(
  err: unknown,
  ctx: { subject: string; stream: string; msgId: string },
): JetkitError {
  if (err instanceof JetkitError) return err;
  const details = { ...ctx };
  if (err instanceof JetStreamApiError) {
    const api = { ...details, api_code: err.code, status: err.status };
    switch (err.code) {
      case API.WRONG_LAST_SEQUENCE:
      case API.WRONG_LAST_SEQUENCE_UNKNOWN:
      case API.WRONG_LAST_MSG_ID:
        return new JetkitError(
          ProducerErrorCodes.EXPECTATION_FAILED,
          `publish to ${ctx.subject} refused: ${err.message}. Another writer got there first; re-read the stream and decide again.`,
          { cause: err, details: api },
        );
      case API.EXPECTED_STREAM_MISMATCH:
        return wrongStream(ctx, err.message, err);
      default:
        return new JetkitError(
          ProducerErrorCodes.REJECTED,
          `stream ${ctx.stream} refused the publish to ${ctx.subject}: ${err.message} (JetStream error ${err.code}).`,
          { cause: err, details: api },
        );
    }
  }
  if (isClosedConnection(err)) return closedError(err);
  const message = err instanceof Error ? err.message : String(err);
  return new JetkitError(ProducerErrorCodes.REJECTED, `publish to ${ctx.subject} failed: ${message}.`, {
    cause: err,
    details,
  });
}

/** The connection was closed (or is draining): no attempt can be sent on it any more. */
export function isClosedConnection(err: unknown): boolean {
  return (
    err instanceof natsErrors.ClosedConnectionError ||
    err instanceof natsErrors.DrainingConnectionError ||
    inFlightWhenClosed(err)
  );
}

/** The attempt was in flight when the connection dropped (see AckInbox); it is retried on the next one. */
export function failedByDisconnect(err: unknown): boolean {
  return err instanceof RequestError && err.message === "connection disconnected";
}

/** The attempt was sent and waiting for its ack when the connection closed. */
export function inFlightWhenClosed(err: unknown): boolean {
  return err instanceof RequestError && err.message === "connection closed";
}

/** `JK_PRODUCER_WRONG_STREAM`. */
export function wrongStream(
  ctx: { subject: string; stream: string; msgId: string },
  why: string,
  cause?: unknown,
): JetkitError {
  return new JetkitError(
    ProducerErrorCodes.WRONG_STREAM,
    `subject ${ctx.subject} belongs to stream ${ctx.stream} by contract, but ${why}. Provision the streams from the contracts (they must not overlap with hand-made streams).`,
    { cause, details: { ...ctx } },
  );
}

/** `JK_PRODUCER_CLOSED`. */
export function closedError(cause?: unknown): JetkitError {
  return new JetkitError(
    ProducerErrorCodes.CLOSED,
    "the producer is closed: create a new producer to publish again.",
    cause === undefined ? {} : { cause },
  );
}
