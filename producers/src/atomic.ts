import { type EventSpec, type EventType, JetkitError, uuidv7 } from "@jetkit/contracts";
import { JetStreamApiError } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { BatchPubAck } from "./acks.js";
import { type BatchContext, type BatchMessage, serverAtLeast } from "./batch.js";
import { brokerAnswered, classify, closedError, isClosedConnection, ProducerErrorCodes } from "./errors.js";
import type { PublishAck, PublishOptions } from "./producer.js";
import { backoffDelay, sleep } from "./retry.js";

/** ADR-50 headers of an atomic batch. */
const BATCH_ID = "Nats-Batch-Id";
const BATCH_SEQ = "Nats-Batch-Sequence";
const BATCH_COMMIT = "Nats-Batch-Commit";

/** Most events in one atomic batch with nats-server's default limits (`max_batch_size`). */
export const DEFAULT_MAX_ATOMIC_BATCH = 1000;

/** JetStream API error codes of atomic batches (ADR-50). */
const API = {
  DISABLED: 10174,
  INCOMPLETE: 10176,
  UNSUPPORTED_HEADER: 10177,
  TOO_LARGE: 10199,
  DUPLICATE_MSG_ID: 10201,
  TOO_MANY_INFLIGHT: 10210,
  WRONG_LAST_SEQUENCE: 10071,
  WRONG_LAST_SEQUENCE_UNKNOWN: 10164,
  WRONG_LAST_MSG_ID: 10070,
} as const;

/** What JetStream acknowledged for an atomic batch: every event stored, in order, at consecutive sequences. */
export interface AtomicAck {
  readonly stream: string;
  /** `Nats-Batch-Id` of the attempt that was stored. */
  readonly batchId: string;
  readonly count: number;
  /** Stream sequence of the first event; the others follow it without a gap. */
  readonly firstSeq: number;
  readonly lastSeq: number;
  /** One ack per event, in the order given (`seq` = firstSeq + index). */
  readonly acks: readonly PublishAck[];
  /**
   * True when an earlier attempt of this call stored the batch and its ack was lost (the retry
   * found its events already in the stream).
   */
  readonly duplicate: boolean;
  /** Attempts it took (1 unless it was retried). */
  readonly attempts: number;
}

/**
 * The checks of an atomic batch that need no server answer; throws the coded error (nothing is
 * sent): no events, events of two streams, more than `max` events, a stream whose contract does
 * not allow atomic batches, a server older than 2.12.1, unsupported expectations, a repeated msgId.
 */
export function checkAtomicBatch(
  items: readonly { spec: EventSpec; opts: PublishOptions }[],
  max: number,
  allows: (stream: string) => boolean,
  nc: NatsConnection,
): void {
  if (items.length === 0) {
    throw new JetkitError(
      ProducerErrorCodes.BATCH_EMPTY,
      "the atomic batch has no events: add at least one (transaction().add(Type, event)) before committing.",
    );
  }
  const stream = items[0]!.spec.stream;
  const other = items.find((i) => i.spec.stream !== stream);
  if (other) {
    throw new JetkitError(
      ProducerErrorCodes.BATCH_STREAMS,
      `the atomic batch has events for streams ${stream} (${items[0]!.spec.type}) and ${other.spec.stream} (${other.spec.type}): a batch is atomic within one stream only. Split it into one batch per stream, or use the transactional outbox to publish to several streams from one database transaction.`,
      { details: { streams: [...new Set(items.map((i) => i.spec.stream))] } },
    );
  }
  if (items.length > max) {
    throw new JetkitError(
      ProducerErrorCodes.BATCH_TOO_LARGE,
      `the atomic batch has ${items.length} events, over the limit of ${max} per batch (nats-server's max_batch_size, 1000 by default). Split it into smaller batches (each is atomic on its own), or raise max_batch_size on the server and maxAtomicBatch on the producer.`,
      { details: { stream, count: items.length, limit: max } },
    );
  }
  if (!allows(stream)) {
    throw new JetkitError(
      ProducerErrorCodes.UNSUPPORTED,
      `stream ${stream} does not allow atomic batches by contract: set allow_atomic: true on its (jetkit.v1.stream) option and run 'jetkit streams apply', or publish the events one by one. Nothing was sent.`,
      { details: { stream, feature: "allow_atomic" } },
    );
  }
  if (!serverAtLeast(nc, "2.12.1")) {
    throw new JetkitError(
      ProducerErrorCodes.UNSUPPORTED,
      `nats-server ${nc.info?.version ?? "?"} does not support atomic batches with message ids: 2.12.1 or later is needed. Nothing was sent.`,
      { details: { stream, feature: "allow_atomic", server: nc.info?.version } },
    );
  }
  const ids = new Set<string>();
  for (const [index, { opts }] of items.entries()) {
    if (opts.expect?.lastMsgId !== undefined || (index > 0 && opts.expect?.lastSequence !== undefined)) {
      throw new JetkitError(
        ProducerErrorCodes.OPTIONS,
        `event ${index} of the atomic batch sets expect.${opts.expect?.lastMsgId !== undefined ? "lastMsgId, which atomic batches do not support" : "lastSequence, which only the first event of an atomic batch may set"}. Use expect.lastSequence on the first event or expect.lastSubjectSequence.`,
        { details: { index, option: "expect" } },
      );
    }
    if (opts.msgId === undefined) continue;
    if (ids.has(opts.msgId)) {
      throw new JetkitError(
        ProducerErrorCodes.OPTIONS,
        `two events of the atomic batch have msgId ${opts.msgId}: each event needs its own (the stream would drop the copy and refuse the batch).`,
        { details: { index, msgId: opts.msgId } },
      );
    }
    ids.add(opts.msgId);
  }
}

/** One event of an atomic batch (`Producer.publishAtomic`). */
export interface AtomicEvent<T = unknown> {
  /** The contract type (the ts-proto generated const). */
  type: EventType<T>;
  event: T;
  /**
   * Per-event options. `expect.lastSequence` only on the first event (checked against the stream
   * before the batch); `expect.lastMsgId` is not supported in atomic batches.
   */
  opts?: PublishOptions;
}

/** Collects the events of an atomic batch; {@link commit} publishes them all or none. */
export interface Transaction {
  /** Adds an event (validated at once: a broken event throws here, nothing is sent). */
  add<T>(Type: EventType<T>, event: T, opts?: PublishOptions): Transaction;
  /** Events added so far. */
  readonly size: number;
  /** Publishes the events as one atomic batch (see `Producer.publishAtomic`). */
  commit(): Promise<AtomicAck>;
}

type Outcome =
  | { kind: "stored"; ack: BatchPubAck }
  | { kind: "refused"; err: unknown; index: number }
  | { kind: "ambiguous"; err: unknown; commitSent: boolean };

/**
 * Publishes `msgs` (all for one stream, checked by the caller) as one atomic batch: the first
 * message opens the batch and is awaited (the stream's answer says whether it accepts atomic
 * batches), the others follow pipelined and the last one commits. Retries only where that
 * cannot store anything twice: every event keeps its `Nats-Msg-Id`, and the stream refuses a
 * whole batch (10201) when any of its ids is already stored, so a resent batch is stored once.
 */
export async function sendAtomic(ctx: BatchContext, msgs: readonly BatchMessage[]): Promise<AtomicAck> {
  const first = msgs[0]!;
  const stream = first.spec.stream;
  const n = msgs.length;
  const deadline = Date.now() + ctx.retry.deadlineMs;
  /** Batch ids whose commit was sent without a definite answer: one of them may be stored. */
  const uncertain: string[] = [];
  let attempts = 0;
  let last: unknown;
  for (;;) {
    if (ctx.nc.isClosed()) {
      throw uncertain.length > 0
        ? outcomeUnknown(ctx, msgs, attempts, "connection closed", last)
        : closedError();
    }
    let admission = ctx.breaker.enter();
    while (admission.kind === "reject") {
      if (attempts === 0) {
        throw new JetkitError(
          ProducerErrorCodes.CIRCUIT_OPEN,
          `not publishing the atomic batch of ${n} events to stream ${stream}: the circuit breaker is open after repeated failures to reach JetStream; it probes again in ${admission.retryInMs} ms. Nothing was sent: retry later with the same msgIds.`,
          { details: { stream, count: n, retry_in_ms: admission.retryInMs } },
        );
      }
      const left = deadline - Date.now();
      if (left <= 0) return giveUp("circuit breaker open");
      await ctx.breaker.whenPassable(left);
      admission = ctx.breaker.enter();
    }
    attempts++;
    const batchId = uuidv7();
    const outcome = await attempt(ctx, msgs, batchId, deadline);
    if (outcome.kind === "stored") {
      ctx.breaker.success(admission.probe);
      return storedAck(msgs, outcome.ack, batchId, attempts, false);
    }
    if (outcome.kind === "refused") {
      if (brokerAnswered(outcome.err)) ctx.breaker.success(admission.probe);
      else ctx.breaker.release(admission.probe);
      const code = outcome.err instanceof JetStreamApiError ? outcome.err.code : undefined;
      if (code === API.DUPLICATE_MSG_ID && uncertain.length > 0) {
        // An earlier attempt of this call may be what the stream already has.
        const found = await findStored(ctx, msgs, uncertain);
        if (found) return storedAck(msgs, found.ack, found.batchId, attempts, true);
        throw outcomeUnknown(
          ctx,
          msgs,
          attempts,
          "the stream already has one of the batch's msgIds, but its last event's subject does not hold an earlier attempt's commit",
          outcome.err,
        );
      }
      if (code !== API.TOO_MANY_INFLIGHT) throw refusal(outcome.err, msgs, outcome.index);
      last = outcome.err; // the stream has too many open batches: not stored, try again shortly
    } else {
      if (outcome.commitSent) uncertain.push(batchId);
      last = outcome.err;
      await ctx.judge(outcome.err, admission.probe);
    }
    const reason = last instanceof Error ? last.message : String(last);
    ctx.log.debug(
      { stream, batch_id: batchId, attempt: attempts, reason },
      "atomic batch attempt failed; retrying",
    );
    if (Date.now() >= deadline) return giveUp(reason);
    await sleep(Math.min(backoffDelay(attempts, ctx.retry), Math.max(0, deadline - Date.now())));
    if (Date.now() >= deadline) return giveUp(reason);
  }

  function giveUp(reason: string): never {
    if (uncertain.length > 0) throw outcomeUnknown(ctx, msgs, attempts, reason, last);
    throw new JetkitError(
      ProducerErrorCodes.REJECTED,
      `the atomic batch of ${n} events to stream ${stream} is not stored: no attempt's commit reached the stream within ${ctx.retry.deadlineMs} ms (${attempts} attempt(s), last: ${reason}). Nothing of it was stored; publish it again later (same msgIds).`,
      { cause: last, details: { stream, count: n, attempts, last: reason } },
    );
  }
}

/** One attempt under `batchId`. Nothing is committed unless the commit (the last message) was sent. */
async function attempt(
  ctx: BatchContext,
  msgs: readonly BatchMessage[],
  batchId: string,
  deadline: number,
): Promise<Outcome> {
  const n = msgs.length;
  for (let i = 0; i < n; i++) {
    const h = msgs[i]!.headers;
    h.set(BATCH_ID, batchId);
    h.set(BATCH_SEQ, `${i + 1}`);
    if (i === n - 1) h.set(BATCH_COMMIT, "1");
  }
  const timeout = Math.max(1, Math.min(ctx.retry.attemptTimeoutMs, deadline - Date.now()));
  const send = (m: BatchMessage) => ctx.acks.publishPart(m.subject, m.payload, m.headers, timeout);
  let opened: BatchPubAck | null;
  try {
    opened = await send(msgs[0]!);
  } catch (err) {
    return settleFailure(err, 0, n === 1);
  }
  if (n === 1) return opened ? { kind: "stored", ack: opened } : invalidCommitAnswer(true);
  if (opened) {
    // A server without atomic batches stored the first event as a plain publish.
    return {
      kind: "refused",
      err: new JetkitError(
        ProducerErrorCodes.UNSUPPORTED,
        `the server stored the first event of the atomic batch as a single event (stream ${opened.stream} seq ${opened.seq}): it does not support atomic batches (nats-server 2.12.1 or later needed). The other events were not sent.`,
        { details: { stream: opened.stream, seq: opened.seq } },
      ),
      index: 0,
    };
  }
  const replies = msgs.slice(1).map((m) =>
    send(m).then(
      (ack) => ({ ok: true as const, ack }),
      (err: unknown) => ({ ok: false as const, err }),
    ),
  );
  const settled = await Promise.all(replies);
  const commit = settled[settled.length - 1]!;
  if (commit.ok) return commit.ack ? { kind: "stored", ack: commit.ack } : invalidCommitAnswer(true);
  if (classify(commit.err) === "refused" && !isClosedConnection(commit.err)) {
    // "incomplete" means a message before the commit did not make it: that one's refusal is the reason.
    if (commit.err instanceof JetStreamApiError && commit.err.code === API.INCOMPLETE) {
      for (let i = 0; i < settled.length - 1; i++) {
        const s = settled[i]!;
        if (!s.ok) {
          if (classify(s.err) === "refused") return { kind: "refused", err: s.err, index: i + 1 };
          // a part lost on the way: the stream abandoned the batch, nothing stored; try again
          return { kind: "ambiguous", err: s.err, commitSent: false };
        }
      }
    }
    return { kind: "refused", err: commit.err, index: -1 };
  }
  return settleFailure(commit.err, n - 1, true);
}

function settleFailure(err: unknown, index: number, isCommit: boolean): Outcome {
  if (classify(err) === "refused" && !(isCommit && isClosedConnection(err))) {
    return { kind: "refused", err, index };
  }
  return { kind: "ambiguous", err, commitSent: isCommit };
}

function invalidCommitAnswer(commitSent: boolean): Outcome {
  return { kind: "ambiguous", err: new Error("empty answer to an atomic batch commit"), commitSent };
}

function storedAck(
  msgs: readonly BatchMessage[],
  ack: BatchPubAck,
  batchId: string,
  attempts: number,
  duplicate: boolean,
): AtomicAck {
  const n = msgs.length;
  const stream = msgs[0]!.spec.stream;
  if (ack.stream !== stream) {
    throw new JetkitError(
      ProducerErrorCodes.WRONG_STREAM,
      `the atomic batch belongs to stream ${stream} by contract, but stream ${ack.stream} stored it (last seq ${ack.seq}). Provision the streams from the contracts (they must not overlap with hand-made streams).`,
      { details: { stream, stored_in: ack.stream, seq: ack.seq } },
    );
  }
  const firstSeq = ack.seq - n + 1;
  const acks = msgs.map(
    (m, i): PublishAck => ({
      stream,
      seq: firstSeq + i,
      duplicate,
      msgId: m.msgId,
      subject: m.spec.subject,
      attempts,
    }),
  );
  return { stream, batchId, count: n, firstSeq, lastSeq: ack.seq, acks, duplicate, attempts };
}

/**
 * Whether one of the `batchIds` attempts is stored: the last message on the commit event's
 * subject is that attempt's commit. (A batch is stored whole, so its commit says it all.)
 */
async function findStored(
  ctx: BatchContext,
  msgs: readonly BatchMessage[],
  batchIds: readonly string[],
): Promise<{ ack: BatchPubAck; batchId: string } | undefined> {
  const commit = msgs[msgs.length - 1]!;
  try {
    const m = await ctx.nc.request(
      `$JS.API.STREAM.MSG.GET.${commit.spec.stream}`,
      JSON.stringify({ last_by_subj: commit.spec.subject }),
      { timeout: ctx.retry.attemptTimeoutMs },
    );
    const r = m.json<{ message?: { seq: number; hdrs?: string } }>();
    if (!r.message?.hdrs) return undefined;
    const hdrs = Buffer.from(r.message.hdrs, "base64").toString("utf8");
    const id = /^Nats-Batch-Id:\s*(\S+)\s*$/im.exec(hdrs)?.[1];
    const seq = /^Nats-Batch-Sequence:\s*(\d+)\s*$/im.exec(hdrs)?.[1];
    if (!id || !batchIds.includes(id) || Number(seq) !== msgs.length) return undefined;
    return { ack: { stream: commit.spec.stream, seq: r.message.seq, duplicate: true }, batchId: id };
  } catch {
    return undefined;
  }
}

/** The coded error for a definite refusal: nothing of the batch was stored. */
function refusal(err: unknown, msgs: readonly BatchMessage[], index: number): JetkitError {
  const n = msgs.length;
  const stream = msgs[0]!.spec.stream;
  if (err instanceof JetkitError) return err;
  if (isClosedConnection(err)) return closedError(err);
  const which = index >= 0 ? ` (event ${index}, ${msgs[index]!.spec.type} msgId ${msgs[index]!.msgId})` : "";
  const details = { stream, count: n, ...(index >= 0 ? { index, msgId: msgs[index]!.msgId } : {}) };
  if (!(err instanceof JetStreamApiError)) {
    const message = err instanceof Error ? err.message : String(err);
    return new JetkitError(
      ProducerErrorCodes.REJECTED,
      `the atomic batch of ${n} events to stream ${stream} failed${which}: ${message}. Nothing of it was stored.`,
      { cause: err, details },
    );
  }
  const api = { ...details, api_code: err.code, status: err.status };
  switch (err.code) {
    case API.DISABLED:
      return new JetkitError(
        ProducerErrorCodes.UNSUPPORTED,
        `stream ${stream} does not accept atomic batches (allow_atomic is off on the server). Set allow_atomic: true on its (jetkit.v1.stream) option and run 'jetkit streams apply'. Nothing was stored.`,
        { cause: err, details: { ...api, feature: "allow_atomic" } },
      );
    case API.TOO_LARGE:
      return new JetkitError(
        ProducerErrorCodes.BATCH_TOO_LARGE,
        `the atomic batch of ${n} events to stream ${stream} is over the server's limit (${err.message}). Split it into smaller batches, or raise the server's jetstream max_batch_size. Nothing was stored.`,
        { cause: err, details: api },
      );
    case API.WRONG_LAST_SEQUENCE:
    case API.WRONG_LAST_SEQUENCE_UNKNOWN:
    case API.WRONG_LAST_MSG_ID:
      return new JetkitError(
        ProducerErrorCodes.EXPECTATION_FAILED,
        `the atomic batch of ${n} events to stream ${stream} was refused: ${err.message}. Nothing of it was stored. Another writer got there first; re-read the stream and decide again.`,
        { cause: err, details: api },
      );
    case API.DUPLICATE_MSG_ID:
      return new JetkitError(
        ProducerErrorCodes.REJECTED,
        `the atomic batch of ${n} events to stream ${stream} was refused: the stream already has one of its msgIds (within its duplicate window), so nothing of it was stored. If you are publishing again a batch that ended in JK_PRODUCER_OUTCOME_UNKNOWN, it was stored then; otherwise give the events new msgIds or drop the ones already published.`,
        { cause: err, details: api },
      );
    default:
      return new JetkitError(
        ProducerErrorCodes.REJECTED,
        `stream ${stream} refused the atomic batch of ${n} events${which}: ${err.message} (JetStream error ${err.code}). Nothing of it was stored.`,
        { cause: err, details: api },
      );
  }
}

function outcomeUnknown(
  ctx: BatchContext,
  msgs: readonly BatchMessage[],
  attempts: number,
  reason: string,
  cause: unknown,
): JetkitError {
  const stream = msgs[0]!.spec.stream;
  const windowMs = ctx.duplicateWindowMs(stream);
  const within = windowMs ? ` within the stream's duplicate window (${windowMs / 1000} s)` : "";
  return new JetkitError(
    ProducerErrorCodes.OUTCOME_UNKNOWN,
    `no definite answer from stream ${stream} for the atomic batch of ${msgs.length} events within ${ctx.retry.deadlineMs} ms after ${attempts} attempt(s) (last: ${reason}). The batch is stored whole or not at all, and may be stored: publish it again with the same msgIds${within}; a JK_PRODUCER_REJECTED answer naming a msgId the stream already has means it was stored, an ack means it was not and is now.`,
    {
      cause,
      details: { stream, count: msgs.length, attempts, deadline_ms: ctx.retry.deadlineMs, last: reason },
    },
  );
}
