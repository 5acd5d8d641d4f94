import { EventHeaders } from "@jetkit/contracts";
import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";

/** Every message of a stream (headers only) as read at the end of a drill. */
export interface StreamRead {
  stream: string;
  firstSeq: number;
  lastSeq: number;
  /** Stream sequence and event id (ce-id, else Nats-Msg-Id) of each message read. */
  messages: { seq: number; id: string }[];
  /** True when every message from firstSeq (the first read) to lastSeq was read. */
  complete: boolean;
  error?: string;
}

/**
 * Reads the stream with an ordered consumer (headers only), from `since` on (the drill's start:
 * on a cluster given by URL the stream may hold years of other traffic), so the checker can tell
 * for every event whether the stream holds it: the truth a producer's answer is compared with.
 */
export async function readStream(
  nc: NatsConnection,
  stream: string,
  opts: { since?: Date; timeoutMs?: number } = {},
): Promise<StreamRead> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  const messages: { seq: number; id: string }[] = [];
  let firstSeq = 0;
  let lastSeq = 0;
  try {
    const jsm = await jetstreamManager(nc, { timeout: 5000 });
    const info = await jsm.streams.info(stream);
    firstSeq = info.state.first_seq;
    lastSeq = info.state.last_seq;
    const newest = Date.parse(info.state.last_ts);
    if (info.state.messages === 0 || (opts.since && newest < opts.since.getTime()))
      return { stream, firstSeq, lastSeq, messages, complete: true };
    const consumer = await jetstream(nc, { timeout: 5000 }).consumers.get(stream, {
      headers_only: true,
      ...(opts.since
        ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: opts.since.toISOString() }
        : {}),
    });
    let last = 0;
    while (last < lastSeq && Date.now() < deadline) {
      const batch = await consumer.fetch({ max_messages: 1000, expires: 2000 });
      let got = 0;
      for await (const m of batch) {
        got++;
        const id = m.headers?.get(EventHeaders.ID) || m.headers?.get("Nats-Msg-Id") || "";
        messages.push({ seq: m.seq, id });
        last = m.seq;
        if (m.seq >= lastSeq) break;
      }
      if (got === 0) break;
    }
    await consumer.delete().catch(() => {});
    if (messages[0]) firstSeq = messages[0].seq;
    return { stream, firstSeq, lastSeq, messages, complete: last >= lastSeq };
  } catch (err) {
    return { stream, firstSeq, lastSeq, messages, complete: false, error: (err as Error).message };
  }
}
