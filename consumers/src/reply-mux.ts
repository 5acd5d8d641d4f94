import {
  createInbox,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type Subscription,
} from "@nats-io/nats-core";

interface Pending {
  resolve: (m: Msg) => void;
  reject: (err: Error) => void;
  deadline: number;
}

/**
 * Request/reply over one inbox subscription, for the idempotency store's two requests per message.
 *
 * nats-core's `request()` does the same, but its `RequestOne` ends every answered request with
 * `cancel()`, which builds a `RequestError` (stack trace included) just to reject a promise that
 * is already settled: the largest single cost of a consumer with the store. Replies here are
 * matched by token like nats-core's own mux; a request fails on a no-responders status (503)
 * or when no reply came within `timeoutMs`.
 */
export class ReplyMux {
  readonly #nc: NatsConnection;
  readonly #prefix: string;
  readonly #sub: Subscription;
  readonly #pending = new Map<string, Pending>();
  readonly #timeoutMs: number;
  readonly #sweep: NodeJS.Timeout;
  #next = 0;

  constructor(nc: NatsConnection, timeoutMs: number) {
    this.#nc = nc;
    this.#timeoutMs = timeoutMs;
    // The connection's inbox prefix, so replies reach it under the same permissions as nats-core's.
    const inboxPrefix = (nc as unknown as { options?: { inboxPrefix?: string } }).options?.inboxPrefix;
    this.#prefix = `${createInbox(inboxPrefix)}.`;
    this.#sub = nc.subscribe(`${this.#prefix}*`, {
      callback: (err, m) => {
        if (err) return this.#failAll(err);
        const p = this.#pending.get(m.subject.slice(this.#prefix.length));
        if (!p) return; // late reply of a request that timed out
        this.#pending.delete(m.subject.slice(this.#prefix.length));
        if (m.data.length === 0 && m.headers?.code === 503) {
          p.reject(new Error(`no responders for the request (JetStream or the stream is unavailable)`));
        } else p.resolve(m);
      },
    });
    // One timer for every request (a timer per request costs more than the request).
    this.#sweep = setInterval(
      () => {
        const now = Date.now();
        for (const [token, p] of this.#pending) {
          if (p.deadline > now) continue;
          this.#pending.delete(token);
          p.reject(new Error(`request timed out after ${this.#timeoutMs} ms`));
        }
      },
      Math.min(1000, timeoutMs),
    );
    this.#sweep.unref();
  }

  request(subject: string, data: Uint8Array | string, headers?: MsgHdrs): Promise<Msg> {
    const token = (this.#next++).toString(36);
    return new Promise<Msg>((resolve, reject) => {
      this.#pending.set(token, { resolve, reject, deadline: Date.now() + this.#timeoutMs });
      try {
        this.#nc.publish(
          subject,
          data,
          headers ? { reply: this.#prefix + token, headers } : { reply: this.#prefix + token },
        );
      } catch (err) {
        this.#pending.delete(token);
        reject(err as Error);
      }
    });
  }

  close(): void {
    clearInterval(this.#sweep);
    this.#sub.unsubscribe();
    this.#failAll(new Error("the idempotency store was closed"));
  }

  #failAll(err: Error): void {
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
  }
}
