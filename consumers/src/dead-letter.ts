import {
  deadLetterHeaders,
  deadLetterSubject,
  type FailureClass,
  headerValue,
  JetkitError,
  deadLetterMsgId as wireDeadLetterMsgId,
} from "@jetkit/contracts";
import type { JetStreamClient, PubAck } from "@nats-io/jetstream";
import { type MsgHdrs, headers as natsHeaders } from "@nats-io/nats-core";
import { ConsumerErrorCodes } from "./errors.js";

/** Everything a dead letter records about the message that failed. */
export interface DeadLetter {
  /** Stream and sequence of the original message. */
  stream: string;
  seq: number;
  subject: string;
  /** Durable consumer that gave up on it. */
  consumer: string;
  deliveries: number;
  failureClass: FailureClass;
  reason: string;
  firstFailure: Date;
  lastFailure: Date;
  /** Original headers and payload, kept as they were. */
  headers: MsgHdrs | undefined;
  data: Uint8Array;
}

/**
 * The `Nats-Msg-Id` of a dead letter (contracts/WIRE.md §5): one per original message and durable,
 * so a repeat after a crash (or the advisory path after the SDK's own) is deduplicated, while two
 * services failing on the same message each keep their dead letter.
 */
export function deadLetterMsgId(stream: string, seq: number, durable: string): string {
  return wireDeadLetterMsgId(stream, seq, durable);
}

/**
 * The headers of `h` as ordered pairs, without the server's `Nats-*` headers other than
 * `Nats-Msg-Id`: expectations (`Nats-Expected-*`), `Nats-TTL`, `Nats-Rollup` or direct-get
 * metadata belong to the original's own publish or read, and would make the copy's publish fail,
 * expire or purge. The wire helpers then replace `Nats-Msg-Id` themselves.
 */
export function headerPairs(h: MsgHdrs | undefined): [string, string][] {
  const out: [string, string][] = [];
  if (!h) return out;
  for (const key of h.keys()) {
    if (/^nats-/i.test(key) && key.toLowerCase() !== "nats-msg-id") continue;
    for (const v of h.values(key)) out.push([key, v]);
  }
  return out;
}

/** Header pairs as NATS headers, in order. */
export function toNatsHeaders(pairs: Iterable<[string, string]>): MsgHdrs {
  const h = natsHeaders();
  for (const [k, v] of pairs) h.append(k, v);
  return h;
}

/** Publishes `dl` to `dlq.<subject>` in the DLQ stream; throws `JK_DLQ_PUBLISH` when it is not stored. */
export async function publishDeadLetter(
  js: JetStreamClient,
  dlqStream: string,
  dl: DeadLetter,
): Promise<PubAck> {
  // contracts/WIRE.md §5: original headers in their order, Nats-Msg-Id replaced, then Jetkit-Dlq-*.
  const h = toNatsHeaders(
    deadLetterHeaders(headerPairs(dl.headers), {
      stream: dl.stream,
      sequence: dl.seq,
      subject: dl.subject,
      consumer: dl.consumer,
      deliveries: dl.deliveries,
      failureClass: dl.failureClass,
      // deadLetterHeaders encodes it (contracts/WIRE.md §4.1): encoding here too would double-encode
      reason: headerValue(dl.reason) ? dl.reason : "(no reason)",
      firstFailure: dl.firstFailure,
      lastFailure: dl.lastFailure,
    }),
  );
  try {
    return await js.publish(deadLetterSubject(dl.subject), dl.data, {
      headers: h,
      expect: { streamName: dlqStream },
    });
  } catch (err) {
    throw new JetkitError(
      ConsumerErrorCodes.DLQ_PUBLISH,
      `could not store the dead letter of ${dl.stream}#${dl.seq} in stream ${dlqStream}: ${(err as Error).message}. The message is nak'd and retried; check that stream ${dlqStream} exists and captures dlq.>.`,
      { cause: err, details: { stream: dl.stream, seq: dl.seq, dlq_stream: dlqStream } },
    );
  }
}
