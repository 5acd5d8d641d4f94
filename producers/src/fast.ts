import { JetkitError } from "@jetkit/contracts";
import { JetStreamApiError } from "@nats-io/jetstream";
import { createInbox, type Msg, type Subscription } from "@nats-io/transport-node";
import type { BatchPubAck } from "./acks.js";
import type { BatchContext, BatchMessage } from "./batch.js";
import { closedError, ProducerErrorCodes, toProducerError } from "./errors.js";
import type { PublishAck } from "./producer.js";
import { backoffDelay, sleep } from "./retry.js";

/** JetStream API error codes of fast-ingest batches (ADR-50). */
export const FAST_API = {
  DISABLED: 10205,
  UNKNOWN_BATCH: 10208,
  TOO_MANY_INFLIGHT: 10211,
} as const;

/** Most events between two acks the producer asks for (the server may ask for fewer). */
const MAX_FLOW = 500;
/** A source that gives nothing for this long ends the open batch, which the server would drop after 10 s. */
const IDLE_COMMIT_MS = 2_000;
const EMPTY = new Uint8Array(0);

/** One read from the caller's events: a prepared message, the end, or an event refused before sending. */
export type FastRead =
  | { done: true }
  | { done: false; index: number; raw: unknown; msg: BatchMessage }
  | { done: false; index: number; raw: unknown; error: unknown };

/** How a fast-ingest run ended early: the stream does not take fast batches, these events were not stored. */
export interface FastFallback {
  readonly fallback: readonly { index: number; raw: unknown }[];
}

interface Entry {
  readonly msg: BatchMessage;
  readonly index: number;
  readonly raw: unknown;
  /** Its sequence in the current batch; 0 while not sent in it. */
  bseq: number;
}

/**
 * One fast-ingest batch (ADR-50 "fast batch", nats-server 2.14+): the batch's state travels in
 * each message's reply subject, `<inbox>.<flow>.fail.<batch seq>.<op>.$FI`, and the stream
 * answers on the inbox every `every` messages (flow control) instead of once per message. Gap
 * mode `fail`: an ack for batch sequence N means the events 1..N are all persisted (or were
 * already stored: duplicates by msg id are skipped silently).
 */
class FastBatch {
  readonly id: string;
  readonly #ctx: BatchContext;
  readonly #inbox: string;
  readonly #flow: number;
  readonly #sub: Subscription;
  /** Last batch sequence sent. */
  seq = 0;
  /** Highest batch sequence the stream confirmed persisted. */
  acked = 0;
  /** The stream acks every this many messages. */
  every: number;
  /** The stream answered the first message (flow settings, or an error). */
  started = false;
  /** A message the stream refused (BatchFlowErr): the batch ends just before it. */
  error: { seq: number; err: JetStreamApiError } | undefined;
  /** The batch's final answer: its PubAck, or an error PubAck (on the message of batch sequence `seq`). */
  final: { ack?: BatchPubAck; err?: JetStreamApiError; seq: number } | undefined;
  #wake: (() => void) | undefined;

  constructor(ctx: BatchContext, flow: number) {
    this.#ctx = ctx;
    this.#flow = flow;
    this.every = flow;
    this.#inbox = createInbox(ctx.inboxPrefix);
    this.id = this.#inbox.slice(this.#inbox.lastIndexOf(".") + 1);
    this.#sub = ctx.nc.subscribe(`${this.#inbox}.>`, { callback: (err, msg) => this.#on(err, msg) });
  }

  send(m: BatchMessage): number {
    const seq = this.seq + 1;
    this.#ctx.nc.publish(m.subject, m.payload, {
      headers: m.headers,
      reply: `${this.#inbox}.${this.#flow}.fail.${seq}.${seq === 1 ? 0 : 1}.$FI`,
    });
    this.seq = seq;
    return seq;
  }

  /** Ends the batch without storing the end marker ("EOB"); the stream answers with the batch's PubAck. */
  commit(subject: string): void {
    this.#ctx.nc.publish(subject, EMPTY, {
      reply: `${this.#inbox}.${this.#flow}.fail.${this.seq + 1}.3.$FI`,
    });
  }

  /** Asks the stream to resend its latest flow state (a lost ack) and keeps the batch alive. */
  ping(subject: string): void {
    this.#ctx.nc.publish(subject, EMPTY, { reply: `${this.#inbox}.${this.#flow}.fail.${this.seq}.4.$FI` });
  }

  /** Resolves true when the stream said something, false after `ms` of silence. */
  changed(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        resolve(false);
      }, ms);
      this.#wake = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve(true);
      };
    });
  }

  close(): void {
    this.#sub.unsubscribe();
    this.#wake?.();
  }

  #on(err: Error | null, msg: Msg): void {
    if (err) return;
    let body: {
      type?: string;
      seq?: number;
      msgs?: number;
      stream?: string;
      batch?: string;
      count?: number;
      error?: { code: number; err_code: number; description: string };
    };
    try {
      body = msg.json();
    } catch {
      return;
    }
    if (body.type === "ack") {
      this.started = true;
      if ((body.seq ?? 0) > this.acked) this.acked = body.seq ?? 0;
      if (body.msgs) this.every = body.msgs;
    } else if (body.type === "err") {
      if (body.error && !this.error)
        this.error = { seq: body.seq ?? 0, err: new JetStreamApiError(body.error) };
    } else if (body.type === "gap") {
      // the final PubAck follows and says up to where the batch is stored
    } else if (!this.final) {
      this.started = true;
      const tokens = msg.subject.split(".");
      const seq = Number(tokens[tokens.length - 3]);
      if (body.error) this.final = { err: new JetStreamApiError(body.error), seq };
      else {
        this.final = {
          ack: {
            stream: body.stream ?? "",
            seq: body.seq ?? 0,
            duplicate: false,
            ...(body.batch !== undefined ? { batch: body.batch } : {}),
            ...(body.count !== undefined ? { count: body.count } : {}),
          },
          seq,
        };
      }
    }
    this.#wake?.();
  }
}

/**
 * Publishes the events `read` gives, in order, as fast-ingest batches, yielding the events' acks
 * in order, a chunk each time the stream confirmed more of them persisted. At most `window` events are sent and
 * unconfirmed at once; `acquire`/`release` take and give back the producer's in-flight slots.
 *
 * What an event's ack says: it is in the stream (stored now, or already there under its msg id:
 * the stream drops duplicates without saying which, so `duplicate` is always false) and `batch`
 * names the batch and its place in it; `seq` is 0 (the stream reports no per-event sequence).
 * A refused event ends the run with JK_PRODUCER_BATCH_FAILED: the events before it are stored,
 * it and the ones after it are not. Lost messages and silence are retried in a new batch with
 * the same msg ids (the stream skips what it already has) until no progress was made for the
 * publish deadline (then JK_PRODUCER_BATCH_FAILED caused by JK_PRODUCER_OUTCOME_UNKNOWN). When
 * the stream does not take fast batches (10205), returns the events to publish another way.
 */
export async function* fastPublish(
  ctx: BatchContext,
  window: number,
  read: () => FastRead | Promise<FastRead>,
  acquire: () => Promise<void> | undefined,
  release: () => void,
): AsyncGenerator<PublishAck[], FastFallback | undefined, undefined> {
  const flow = Math.max(1, Math.min(MAX_FLOW, Math.floor(window / 2)));
  const held: Entry[] = [];
  let unsent = 0; // held[unsent..] are not sent in the current batch
  let batch = new FastBatch(ctx, flow);
  let batches = 1;
  let exhausted = false;
  let stop: { index: number; err: unknown } | undefined;
  let committed = false;
  let idle = false;
  let pinged = false;
  let retries = 0;
  let progressAt = Date.now();
  let lastSubject = "";
  let pendingRead: FastRead | Promise<FastRead> | undefined;

  const ackOf = (e: Entry): PublishAck => ({
    stream: e.msg.spec.stream,
    seq: 0,
    duplicate: false,
    msgId: e.msg.msgId,
    subject: e.msg.spec.subject,
    attempts: batches,
    batch: { id: batch.id, seq: e.bseq },
  });
  const restart = () => {
    batch.close();
    batch = new FastBatch(ctx, flow);
    batches++;
    for (const e of held) e.bseq = 0;
    unsent = 0;
    committed = false;
    idle = false;
    pinged = false;
  };

  try {
    for (;;) {
      // Confirmed events, in order.
      const upTo = Math.max(batch.acked, batch.final?.ack?.count ?? 0);
      let confirmed = 0;
      while (confirmed < held.length && held[confirmed]!.bseq > 0 && held[confirmed]!.bseq <= upTo)
        confirmed++;
      if (confirmed > 0) {
        const chunk = held.splice(0, confirmed).map(ackOf);
        unsent -= confirmed;
        for (let i = 0; i < confirmed; i++) release();
        progressAt = Date.now();
        yield chunk;
      }

      if (batch.final) {
        const { err, seq } = batch.final;
        const head = held[0];
        const refused = batch.error ?? (err && head && seq === head.bseq ? { seq, err } : undefined);
        if (head && refused && head.bseq === refused.seq) {
          const code = refused.err.code;
          if (code === FAST_API.DISABLED && batches === 1 && batch.acked === 0 && held.length === 1) {
            ctx.log.warn(
              { stream: head.msg.spec.stream },
              "the stream does not take fast-ingest batches (allow_batched is off on the server): publishing one by one. Run 'jetkit streams apply' to enable them.",
            );
            release();
            held.shift();
            return { fallback: [{ index: head.index, raw: head.raw }] };
          }
          if (code !== FAST_API.TOO_MANY_INFLIGHT && code !== FAST_API.UNKNOWN_BATCH) {
            throw failed(head.index, toProducerError(refused.err, ctxOf(head)), held.length - 1);
          }
        }
        if (held.length === 0 && (exhausted || stop)) {
          if (stop) throw failed(stop.index, stop.err, 0);
          return undefined;
        }
        // The batch ended before what is left (lost messages, an idle commit, a busy stream): a new one.
        const lost = held.length > 0;
        if (lost && Date.now() - progressAt >= ctx.retry.deadlineMs) {
          const why = err ? `${err.message} (JetStream error ${err.code})` : "the batch ended early";
          throw failed(head!.index, outcomeUnknown(ctx, head!, why), held.length - 1);
        }
        restart();
        if (lost) {
          retries++;
          await sleep(backoffDelay(retries, ctx.retry));
        }
        continue;
      }

      // Send what the flow control allows.
      while (!batch.error && !committed && !idle) {
        if (batch.seq >= 1 && !batch.started) break; // the first answer sets the pace
        if (batch.seq > 0 && batch.acked + batch.every * 2 <= batch.seq) break;
        let e: Entry | undefined = held[unsent];
        if (!e) {
          if (exhausted || stop || held.length >= window) break;
          if (!pendingRead) {
            const waited = acquire();
            if (waited) await waited;
            pendingRead = read();
          }
          // a synchronous source gives its event at once; an asynchronous one may keep us waiting
          const r =
            pendingRead instanceof Promise
              ? batch.seq > 0
                ? await raceIdle(pendingRead)
                : await pendingRead
              : pendingRead;
          if (r === undefined) {
            idle = true;
            break;
          }
          pendingRead = undefined;
          if (r.done) {
            exhausted = true;
            release();
            break;
          }
          if ("error" in r) {
            stop = { index: r.index, err: r.error };
            release();
            break;
          }
          e = { msg: r.msg, index: r.index, raw: r.raw, bseq: 0 };
          held.push(e);
        }
        if (ctx.nc.isClosed()) throw failed(e.index, closedError(), held.length - unsent - 1);
        e.bseq = batch.send(e.msg);
        unsent++;
        lastSubject = e.msg.subject;
      }

      if (batch.seq === 0 && held.length === 0 && (exhausted || stop)) {
        if (stop) throw failed(stop.index, stop.err, 0);
        return undefined;
      }
      if (batch.seq === 0 && idle) {
        // nothing open on the server: just wait for the source
        idle = false;
        continue;
      }
      // Everything sent and nothing more coming (for now): end the batch.
      if (
        !committed &&
        !batch.error &&
        batch.started &&
        unsent === held.length &&
        (exhausted || stop || idle)
      ) {
        batch.commit(lastSubject);
        committed = true;
      }

      if (await batch.changed(ctx.retry.attemptTimeoutMs)) {
        pinged = false;
        continue;
      }
      if (ctx.nc.isClosed()) {
        const head = held[0];
        if (head) throw failed(head.index, outcomeUnknown(ctx, head, "connection closed"), held.length - 1);
      }
      if (Date.now() - progressAt >= ctx.retry.deadlineMs) {
        const head = held[0];
        if (head) {
          throw failed(
            head.index,
            outcomeUnknown(ctx, head, "no acknowledgement from the stream"),
            held.length - 1,
          );
        }
      }
      if (!pinged && batch.seq > 0) {
        batch.ping(lastSubject);
        pinged = true;
      } else {
        retries++;
        ctx.log.debug(
          { batch_id: batch.id, acked: batch.acked, sent: batch.seq },
          "fast batch silent; resending in a new batch",
        );
        restart();
      }
    }
  } finally {
    batch.close();
    for (let i = 0; i < held.length; i++) release();
    // a read still pending holds a slot, taken before it started
    if (pendingRead instanceof Promise) void pendingRead.then(release, release);
  }
}

/** Waits for the source, but at most {@link IDLE_COMMIT_MS}: undefined when it took longer. */
async function raceIdle(p: Promise<FastRead>): Promise<FastRead | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const idle = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), IDLE_COMMIT_MS);
  });
  try {
    return await Promise.race([p, idle]);
  } finally {
    clearTimeout(timer);
  }
}

const ctxOf = (e: Entry) => ({ subject: e.msg.spec.subject, stream: e.msg.spec.stream, msgId: e.msg.msgId });

function failed(index: number, cause: unknown, after: number): JetkitError {
  const code = cause instanceof JetkitError ? cause.code : "unknown";
  const unknown = code === ProducerErrorCodes.OUTCOME_UNKNOWN;
  return new JetkitError(
    ProducerErrorCodes.BATCH_FAILED,
    `event ${index} of the batch failed (${code}): ${(cause as Error).message ?? String(cause)} Events before it are stored; ${unknown ? `it and the ${after} event(s) after it that were sent may be stored or not: rerun from it with the same msgIds (the stream drops the copies)` : `${after > 0 ? `it and the ${after} event(s) after it that were sent are` : "it is"} not (the fast-ingest batch stopped there): fix it and publish again from it, with the same msgIds`}.`,
    { cause, details: { index, acked: index, code } },
  );
}

function outcomeUnknown(ctx: BatchContext, e: Entry, reason: string): JetkitError {
  const { stream, subject } = e.msg.spec;
  const windowMs = ctx.duplicateWindowMs(stream);
  const within = windowMs ? ` within the stream's duplicate window (${windowMs / 1000} s)` : "";
  return new JetkitError(
    ProducerErrorCodes.OUTCOME_UNKNOWN,
    `no definite answer from stream ${stream} for ${subject} within ${ctx.retry.deadlineMs} ms (last: ${reason}). The event may be stored: publish it again with the same msgId (${e.msg.msgId})${within}.`,
    { details: { subject, stream, msgId: e.msg.msgId, deadline_ms: ctx.retry.deadlineMs, last: reason } },
  );
}
