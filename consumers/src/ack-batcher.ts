import type { JsMsg } from "@nats-io/jetstream";

/**
 * Sends the acks of one event-loop turn together. nats-core flushes its outbound buffer in a
 * microtask after the first write of a turn, so acks issued from separate handler continuations
 * each cost a socket write (a syscall per message, the largest cost of a no-op handler). Acks
 * queued here go out from one `setImmediate`, back to back, in one write. An ack is a
 * fire-and-forget publish either way: deferring it by one turn changes no guarantee, and
 * `flush()` sends what is queued before the consumer drains its connection.
 */
export class AckBatcher {
  #pending: JsMsg[] = [];
  #scheduled: NodeJS.Immediate | undefined;
  readonly #onError: (err: unknown, m: JsMsg) => void;

  constructor(onError: (err: unknown, m: JsMsg) => void) {
    this.#onError = onError;
  }

  ack(m: JsMsg): void {
    this.#pending.push(m);
    this.#scheduled ??= setImmediate(() => this.flush());
  }

  /**
   * Sends the ack of `m` at once: for code running in a turn whose writes already go out
   * together (nats-core flushes once, after the turn's work).
   */
  ackNow(m: JsMsg): void {
    try {
      m.ack();
    } catch (err) {
      this.#onError(err, m);
    }
  }

  /** Sends every queued ack now. */
  flush(): void {
    if (this.#scheduled) clearImmediate(this.#scheduled);
    this.#scheduled = undefined;
    const batch = this.#pending;
    this.#pending = [];
    // A failed ack (closed connection): the server redelivers after ack wait; the idempotency
    // store (if on) then acks without running the handler again.
    for (const m of batch) this.ackNow(m);
  }

  get size(): number {
    return this.#pending.length;
  }
}
