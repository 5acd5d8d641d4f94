import {
  DeadLetterHeaders,
  deadLetterSubject,
  EventHeaders,
  type FailureClass,
  headerValue,
  JetkitError,
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
 * The `Nats-Msg-Id` of a dead letter: one per original message and durable, so a repeat after a
 * crash (or the advisory path after the SDK's own) is deduplicated, while two services failing on
 * the same message each keep their dead letter.
 */
export function deadLetterMsgId(stream: string, seq: number, durable: string): string {
  return `dlq:${stream}:${seq}:${durable}`;
}

/**
 * Headers a copy keeps from the original: everything except the server's `Nats-*` headers
 * (message id, expectations, direct-get metadata), which belong to the original's own publish.
 */
export function copyEventHeaders(from: MsgHdrs | undefined, skip: (name: string) => boolean): MsgHdrs {
  const h = natsHeaders();
  if (!from) return h;
  for (const key of from.keys()) {
    if (/^nats-/i.test(key) || skip(key)) continue;
    for (const v of from.values(key)) h.append(key, v);
  }
  return h;
}

/** Publishes `dl` to `dlq.<subject>` in the DLQ stream; throws `JK_DLQ_PUBLISH` when it is not stored. */
export async function publishDeadLetter(
  js: JetStreamClient,
  dlqStream: string,
  dl: DeadLetter,
): Promise<PubAck> {
  const h = copyEventHeaders(dl.headers, (k) => k.toLowerCase().startsWith("jetkit-dlq-"));
  h.set(DeadLetterHeaders.STREAM, dl.stream);
  h.set(DeadLetterHeaders.SEQUENCE, String(dl.seq));
  h.set(DeadLetterHeaders.SUBJECT, dl.subject);
  h.set(DeadLetterHeaders.CONSUMER, headerValue(dl.consumer));
  h.set(DeadLetterHeaders.DELIVERIES, String(dl.deliveries));
  h.set(DeadLetterHeaders.FAILURE_CLASS, dl.failureClass);
  h.set(DeadLetterHeaders.REASON, headerValue(dl.reason) || "(no reason)");
  h.set(DeadLetterHeaders.FIRST_FAILURE, dl.firstFailure.toISOString());
  h.set(DeadLetterHeaders.LAST_FAILURE, dl.lastFailure.toISOString());
  h.set(EventHeaders.MSG_ID, deadLetterMsgId(dl.stream, dl.seq, dl.consumer));
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
