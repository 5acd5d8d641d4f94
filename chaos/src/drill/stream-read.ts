import { EventHeaders } from "@jetkit/contracts";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";

/** Every message of a stream (headers only) as read at the end of a drill. */
export interface StreamRead {
  stream: string;
  firstSeq: number;
  lastSeq: number;
  /** Stream sequence and event id (ce-id, else Nats-Msg-Id) of each message read. */
  messages: { seq: number; id: string }[];
  /** True when every message from firstSeq to lastSeq was read. */
  complete: boolean;
  error?: string;
}

/**
 * Reads the whole stream with an ordered consumer (headers only), so the checker can tell for
 * every event whether the stream holds it: the truth a producer's answer is compared with.
 */
export async function readStream(
  nc: NatsConnection,
  stream: string,
  timeoutMs = 30_000,
): Promise<StreamRead> {
  const deadline = Date.now() + timeoutMs;
  const messages: { seq: number; id: string }[] = [];
  let firstSeq = 0;
  let lastSeq = 0;
  try {
    const jsm = await jetstreamManager(nc, { timeout: 5000 });
    const info = await jsm.streams.info(stream);
    firstSeq = info.state.first_seq;
    lastSeq = info.state.last_seq;
    if (info.state.messages === 0) return { stream, firstSeq, lastSeq, messages, complete: true };
    const consumer = await jetstream(nc, { timeout: 5000 }).consumers.get(stream, { headers_only: true });
    let next = firstSeq;
    while (next <= lastSeq && Date.now() < deadline) {
      const batch = await consumer.fetch({ max_messages: 1000, expires: 2000 });
      for await (const m of batch) {
        const id = m.headers?.get(EventHeaders.ID) || m.headers?.get("Nats-Msg-Id") || "";
        messages.push({ seq: m.seq, id });
        next = m.seq + 1;
        if (m.seq >= lastSeq) break;
      }
    }
    await consumer.delete().catch(() => {});
    return { stream, firstSeq, lastSeq, messages, complete: next > lastSeq };
  } catch (err) {
    return { stream, firstSeq, lastSeq, messages, complete: false, error: (err as Error).message };
  }
}
