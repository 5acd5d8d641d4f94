import { JetStreamApiError, JetStreamError, type PubAck } from "@nats-io/jetstream";
import {
  createInbox,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  NoRespondersError,
  RequestError,
  TimeoutError,
} from "@nats-io/transport-node";

/** A PubAck with the batch fields of a batch commit's ack (ADR-50). */
export interface BatchPubAck extends PubAck {
  batch?: string;
  count?: number;
}

/** JetStream's "not enabled for account" error code: not worth retrying. */
const JS_NOT_ENABLED = 10039;

interface Pending {
  /** `null`: the empty reply an atomic batch gets for each message before its commit. */
  resolve: (ack: PubAck | null) => void;
  reject: (err: unknown) => void;
  subject: string;
  /** performance.now() after which the attempt times out. */
  deadline: number;
  /** An empty reply is an answer (atomic batch parts), not an unreadable ack. */
  emptyOk: boolean;
}

interface AckBody {
  stream?: string;
  seq?: number;
  duplicate?: boolean;
  domain?: string;
  batch?: string;
  count?: number;
  error?: { code: number; err_code: number; description: string };
}

/**
 * Sends JetStream publishes and matches their acks, like `js.publish` but over one wildcard
 * reply subscription owned by the producer, the way the Go client's PublishAsync works.
 * `js.publish` goes through nats.js's per-request machinery (a request object, a timer and a
 * deferred per message, and a stack-capturing `RequestError("cancelled")` built after every
 * ack): a quarter of the client's CPU when pipelining. Here an attempt is one PUB with a reply
 * subject and one map entry; one timer sweeps the attempts whose ack is late.
 *
 * Same outcomes as `js.publish`: the PubAck; JetStreamApiError for a JetStream refusal;
 * RequestError caused by NoRespondersError when no stream leader answers; TimeoutError when
 * no ack arrived in time; RequestError("connection disconnected") for the attempts in flight
 * when the connection drops (their acks cannot arrive on the new connection: nats.js would let
 * them time out, so a retry after a reconnect waited a whole attempt timeout);
 * RequestError("connection closed") once the connection is closed.
 */
export class AckInbox {
  readonly #nc: NatsConnection;
  readonly #prefix: string;
  readonly #pending = new Map<string, Pending>();
  #next = 0;
  #timer: NodeJS.Timeout | undefined;
  /** When the armed timer fires (performance.now()). */
  #timerAt = Number.POSITIVE_INFINITY;
  #connected = true;

  constructor(nc: NatsConnection, inboxPrefix?: string) {
    this.#nc = nc;
    this.#prefix = `${createInbox(inboxPrefix)}.`;
    nc.subscribe(`${this.#prefix}*`, { callback: (err, msg) => this.#onAck(err, msg) });
    void nc.closed().then(() => this.#failAll(new RequestError("connection closed")));
    void this.#watch();
  }

  /** False from a disconnect until the reconnect (publishes meanwhile wait in nats.js's buffer). */
  get connected(): boolean {
    return this.#connected && !this.#nc.isClosed();
  }

  async #watch(): Promise<void> {
    for await (const s of this.#nc.status()) {
      if (s.type === "disconnect") {
        this.#connected = false;
        this.#failAll(new RequestError("connection disconnected"));
      } else if (s.type === "reconnect") {
        this.#connected = true;
      }
    }
  }

  /** Publishes `payload` to `subject` and resolves with the stream's ack (see the class doc). */
  publish(subject: string, payload: Uint8Array, headers: MsgHdrs, timeoutMs: number): Promise<PubAck> {
    return this.#send(subject, payload, headers, timeoutMs, false) as Promise<PubAck>;
  }

  /**
   * Like {@link publish}, for the messages of an atomic batch: resolves with `null` for the
   * empty reply the stream sends for a message it staged, with the PubAck for the commit.
   */
  publishPart(
    subject: string,
    payload: Uint8Array,
    headers: MsgHdrs,
    timeoutMs: number,
  ): Promise<PubAck | null> {
    return this.#send(subject, payload, headers, timeoutMs, true);
  }

  #send(
    subject: string,
    payload: Uint8Array,
    headers: MsgHdrs,
    timeoutMs: number,
    emptyOk: boolean,
  ): Promise<PubAck | null> {
    const token = (this.#next++).toString(36);
    return new Promise<PubAck | null>((resolve, reject) => {
      try {
        this.#nc.publish(subject, payload, { reply: this.#prefix + token, headers });
      } catch (err) {
        reject(err); // closed or draining connection, invalid subject
        return;
      }
      const deadline = performance.now() + timeoutMs;
      this.#pending.set(token, { resolve, reject, subject, deadline, emptyOk });
      if (deadline < this.#timerAt) this.#arm(deadline);
    });
  }

  #onAck(err: Error | null, msg: Msg): void {
    if (err) {
      // the subscription itself failed (e.g. a permissions violation): no ack can arrive
      this.#failAll(err);
      return;
    }
    const token = msg.subject.slice(this.#prefix.length);
    const p = this.#pending.get(token);
    if (!p) return; // late ack of an attempt that already timed out
    this.#pending.delete(token);
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      p.reject(new RequestError("no responders", { cause: new NoRespondersError(p.subject) }));
      return;
    }
    if (msg.data.length === 0 && p.emptyOk) {
      p.resolve(null);
      return;
    }
    let body: AckBody;
    try {
      body = msg.json<AckBody>();
    } catch (e) {
      p.reject(new JetStreamError("invalid ack response", { cause: e }));
      return;
    }
    if (body.error) {
      const api = new JetStreamApiError(body.error);
      p.reject(
        body.error.err_code === JS_NOT_ENABLED ? new JetStreamError(api.message, { cause: api }) : api,
      );
      return;
    }
    if (!body.stream) {
      p.reject(new JetStreamError("invalid ack response"));
      return;
    }
    const ack: PubAck = { stream: body.stream, seq: body.seq ?? 0, duplicate: body.duplicate ?? false };
    if (body.domain !== undefined) ack.domain = body.domain;
    if (body.batch !== undefined) (ack as BatchPubAck).batch = body.batch;
    if (body.count !== undefined) (ack as BatchPubAck).count = body.count;
    p.resolve(ack);
  }

  #arm(at: number): void {
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => this.#sweep(), Math.max(0, at - performance.now()));
    this.#timer.unref();
  }

  /** Times out the late attempts and re-arms the timer for the next deadline. */
  #sweep(): void {
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    const now = performance.now();
    let next = Number.POSITIVE_INFINITY;
    for (const [token, p] of this.#pending) {
      if (p.deadline <= now) {
        this.#pending.delete(token);
        p.reject(new TimeoutError());
      } else if (p.deadline < next) next = p.deadline;
    }
    if (next !== Number.POSITIVE_INFINITY) this.#arm(next);
  }

  #failAll(err: unknown): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.reject(err);
  }
}
