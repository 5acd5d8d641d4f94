import { type Message, toJson } from "@bufbuild/protobuf";
import {
  type Catalog,
  DeadLetterHeaders,
  deadLetterSubject,
  EventHeaders,
  type FailureClass,
  getCatalog,
  JetkitError,
  percentDecode,
  replayHeaders,
} from "@jetkit/contracts";
import { DeliverPolicy, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { MsgHdrs, NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { headerPairs, toNatsHeaders } from "./dead-letter.js";
import { ConsumerErrorCodes } from "./errors.js";

/** Where the dead letters are. Pass `connection` or `servers`. */
export interface DeadLetterToolOptions {
  /** An open connection (left open). */
  connection?: NatsConnection;
  /** Server URL(s) to connect to when no connection is given. Default: `nats://127.0.0.1:4222`. */
  servers?: string | string[];
  /** The DLQ stream. Default: `DLQ`. */
  stream?: string;
  /** Catalog to decode events with. Default: the packaged contracts. */
  catalog?: Catalog;
}

/** One dead letter, decoded. */
export interface DeadLetterRecord {
  /** Sequence in the DLQ stream: the id operators use to show, replay or purge it. */
  seq: number;
  /** `dlq.<original subject>`. */
  subject: string;
  storedAt: string;
  originalSubject: string;
  originalStream: string;
  originalSeq: number;
  consumer: string;
  deliveries: number;
  failureClass: FailureClass | string;
  reason: string;
  firstFailure: string;
  lastFailure: string;
  /** ce-id and ce-type of the event. */
  eventId: string;
  type: string;
  /** Every header, as received. */
  headers: Record<string, string[]>;
  /** The payload as protobuf JSON, decoded by its contract; undefined when it cannot be decoded. */
  event?: unknown;
  /** Why the payload could not be decoded. */
  decodeError?: string;
}

/** Filter of {@link listDeadLetters}. */
export interface ListDeadLettersOptions extends DeadLetterToolOptions {
  /** Original subject (NATS wildcards allowed), e.g. `order.>`. Default: all. */
  subject?: string;
  /** Only this failure class. */
  failureClass?: FailureClass;
  /** At most this many records, oldest first. Default: 100. */
  limit?: number;
}

async function withJetStream<T>(
  o: DeadLetterToolOptions,
  fn: (nc: NatsConnection, jsm: JetStreamManager, stream: string) => Promise<T>,
): Promise<T> {
  const stream = o.stream ?? "DLQ";
  const nc = o.connection ?? (await connect({ servers: o.servers ?? "nats://127.0.0.1:4222" }));
  try {
    const jsm = await jetstreamManager(nc);
    try {
      await jsm.streams.info(stream);
    } catch (err) {
      throw new JetkitError(
        ConsumerErrorCodes.DLQ_STREAM,
        `dead-letter stream ${stream} does not exist: provision the streams from the contracts first.`,
        { cause: err, details: { stream } },
      );
    }
    return await fn(nc, jsm, stream);
  } finally {
    if (!o.connection) await nc.close();
  }
}

function headerMap(h: MsgHdrs | undefined): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const k of h?.keys() ?? []) out[k] = h!.values(k);
  return out;
}

function toRecord(
  catalog: Catalog,
  seq: number,
  subject: string,
  storedAt: string,
  h: MsgHdrs | undefined,
  data: Uint8Array,
): DeadLetterRecord {
  const get = (name: string) => h?.get(name) ?? "";
  const type = get(EventHeaders.TYPE);
  const originalSubject = get(DeadLetterHeaders.SUBJECT) || subject.replace(/^dlq\./, "");
  const rec: DeadLetterRecord = {
    seq,
    subject,
    storedAt,
    originalSubject,
    originalStream: get(DeadLetterHeaders.STREAM),
    originalSeq: Number(get(DeadLetterHeaders.SEQUENCE)) || 0,
    consumer: get(DeadLetterHeaders.CONSUMER),
    deliveries: Number(get(DeadLetterHeaders.DELIVERIES)) || 0,
    failureClass: get(DeadLetterHeaders.FAILURE_CLASS),
    // written percent-encoded (contracts/WIRE.md §4.1); a reason that does not decode is shown as stored
    reason: decodeOrRaw(get(DeadLetterHeaders.REASON)),
    firstFailure: get(DeadLetterHeaders.FIRST_FAILURE),
    lastFailure: get(DeadLetterHeaders.LAST_FAILURE),
    eventId: decodeOrRaw(get(EventHeaders.ID)),
    type,
    headers: headerMap(h),
  };
  const spec = catalog.findByType(type) ?? catalog.findBySubject(originalSubject);
  if (!spec) {
    rec.decodeError = `no contract for ce-type "${type}" or subject ${originalSubject}`;
    return rec;
  }
  try {
    const message: Message = catalog.decode(spec, data);
    rec.event = toJson(spec.schema, message, { registry: catalog.registry });
  } catch (err) {
    rec.decodeError = (err as Error).message;
  }
  return rec;
}

/** Dead letters, oldest first, decoded by their contracts. */
export async function listDeadLetters(o: ListDeadLettersOptions = {}): Promise<DeadLetterRecord[]> {
  const catalog = o.catalog ?? getCatalog();
  const limit = o.limit ?? 100;
  return withJetStream(o, async (nc, _jsm, stream) => {
    const js = jetstream(nc);
    const c = await js.consumers.get(stream, {
      filter_subjects: [o.subject ? deadLetterSubject(o.subject) : "dlq.>"],
      deliver_policy: DeliverPolicy.All,
    });
    let pending = (await c.info()).num_pending;
    const out: DeadLetterRecord[] = [];
    // An ordered consumer reads the stream in order without leaving a durable behind.
    while (pending > 0 && out.length < limit) {
      const batch = await c.fetch({ max_messages: Math.min(256, pending), expires: 2000 });
      let got = 0;
      for await (const m of batch) {
        got++;
        pending = m.info.pending;
        const rec = toRecord(catalog, m.seq, m.subject, m.time.toISOString(), m.headers, m.data);
        if (!o.failureClass || rec.failureClass === o.failureClass) out.push(rec);
        if (out.length >= limit) break;
      }
      if (got === 0) break;
    }
    return out;
  });
}

/** One dead letter by its DLQ sequence; throws `JK_DLQ_NOT_FOUND`. */
export async function showDeadLetter(o: DeadLetterToolOptions, seq: number): Promise<DeadLetterRecord> {
  const catalog = o.catalog ?? getCatalog();
  return withJetStream(o, async (_nc, jsm, stream) => {
    const m = await getDeadLetter(jsm, stream, seq);
    return toRecord(catalog, m.seq, m.subject, m.time.toISOString(), m.header, m.data);
  });
}

async function getDeadLetter(jsm: JetStreamManager, stream: string, seq: number) {
  const m = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
  if (!m) {
    throw new JetkitError(
      ConsumerErrorCodes.DLQ_NOT_FOUND,
      `stream ${stream} has no dead letter with sequence ${seq}; list them with listDeadLetters (jetkit dlq list).`,
      { details: { stream, seq } },
    );
  }
  return m;
}

/** What one replay published. */
export interface ReplayResult {
  /** DLQ sequence of the dead letter. */
  dlqSeq: number;
  subject: string;
  stream: string;
  /** Sequence of the new message in the original stream. */
  seq: number;
  /**
   * True when the stream already held this replay (same dead letter replayed again within the
   * duplicate window): nothing new was stored, `seq` is the earlier replay's.
   */
  duplicate: boolean;
  /** `replay:<DLQ seq>:<ce-id>` (the ce-id stays the same: it is the same event). */
  msgId: string;
  eventId: string;
}

/**
 * Publishes dead letters again to their original subjects: original headers and payload (same
 * ce-id, so it stays the same event), `Jetkit-Replay-Of: <DLQ>:<seq>` so the new delivery is
 * traceable to the dead letter, and `Nats-Msg-Id: replay:<DLQ seq>:<ce-id>` (WIRE.md §6):
 * replaying the same dead letter twice within the stream's duplicate window stores it once. The
 * dead letters stay in the DLQ until purged.
 */
export async function replayDeadLetters(
  o: DeadLetterToolOptions & { seqs: number[] },
): Promise<ReplayResult[]> {
  return withJetStream(o, async (nc, jsm, stream) => {
    const js = jetstream(nc);
    const out: ReplayResult[] = [];
    for (const seq of o.seqs) {
      const m = await getDeadLetter(jsm, stream, seq);
      const subject = m.header?.get(DeadLetterHeaders.SUBJECT);
      const originalStream = m.header?.get(DeadLetterHeaders.STREAM);
      if (!subject || !originalStream) {
        throw new JetkitError(
          ConsumerErrorCodes.DLQ_NOT_REPLAYABLE,
          `dead letter ${stream}:${seq} has no ${DeadLetterHeaders.SUBJECT}/${DeadLetterHeaders.STREAM} header, so its original subject is unknown; it was not written by jetkit.`,
          { details: { stream, seq } },
        );
      }
      // contracts/WIRE.md §6: ce-* headers as they were, Jetkit-Replay-Of, and the deterministic
      // Nats-Msg-Id replay:<DLQ seq>:<ce-id>, so a second replay within the window stores nothing.
      const pairs = replayHeaders(headerPairs(m.header), seq, stream);
      const msgId = pairs.find(([k]) => k === EventHeaders.MSG_ID)?.[1] ?? "";
      const ack = await js.publish(subject, m.data, {
        headers: toNatsHeaders(pairs),
        expect: { streamName: originalStream },
      });
      out.push({
        dlqSeq: seq,
        subject,
        stream: ack.stream,
        seq: ack.seq,
        duplicate: ack.duplicate,
        msgId,
        eventId: m.header?.get(EventHeaders.ID) ?? "",
      });
    }
    return out;
  });
}

/** Which dead letters to purge, and the confirmation. */
export interface PurgeDeadLettersOptions extends DeadLetterToolOptions {
  /** Must equal the DLQ stream's name (default `DLQ`): purging cannot be undone. */
  confirm?: string;
  /** Only these DLQ sequences. */
  seqs?: number[];
  /** Only dead letters of this original subject (wildcards allowed). */
  subject?: string;
}

/** Deletes dead letters; refuses with `JK_DLQ_CONFIRM` unless `confirm` names the DLQ stream. */
export async function purgeDeadLetters(o: PurgeDeadLettersOptions): Promise<{ purged: number }> {
  const stream = o.stream ?? "DLQ";
  if (o.confirm !== stream) {
    throw new JetkitError(
      ConsumerErrorCodes.DLQ_CONFIRM,
      `purging dead letters cannot be undone: pass confirm: "${stream}" (the DLQ stream's name) to confirm.`,
      { details: { stream } },
    );
  }
  return withJetStream(o, async (_nc, jsm) => {
    if (o.seqs) {
      let purged = 0;
      for (const seq of o.seqs)
        if (await jsm.streams.deleteMessage(stream, seq, false).catch(() => false)) purged++;
      return { purged };
    }
    const r = await jsm.streams.purge(
      stream,
      o.subject ? { filter: deadLetterSubject(o.subject) } : undefined,
    );
    return { purged: r.purged };
  });
}

function decodeOrRaw(v: string): string {
  try {
    return percentDecode(v);
  } catch {
    return v;
  }
}
