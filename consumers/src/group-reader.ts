import { DeliverPolicy, type JetStreamClient, type JsMsg } from "@nats-io/jetstream";
import type { Logger } from "pino";
import type { PartitionHandler } from "./group.js";

/** One partition this instance owns, from the reader's side. */
export class PartState {
  /** The next stream sequence of this partition to take (earlier ones were taken or skipped). */
  next: number;
  /** Sequences taken and not yet finished, in stream order. */
  readonly #pending: number[] = [];
  #head = 0;
  readonly #done = new Set<number>();
  /** Being handed over: take no more messages. */
  frozen = false;
  /** Taken over by another instance: drop its messages. */
  lost = false;
  /** The reader run from which `readNext` also counts for this partition. */
  run: number;
  /** Events stored until then (epoch ms) may have been run by the previous owner (taken over). */
  replayUntil: number | undefined;
  #drained: (() => void) | undefined;

  constructor(
    readonly partition: number,
    seq: number,
    run: number,
    replayUntil: number | undefined,
  ) {
    this.next = seq;
    this.run = run;
    this.replayUntil = replayUntil;
  }

  take(seq: number): void {
    this.#pending.push(seq);
    this.next = seq + 1;
  }

  /** A taken message finished (handled, dead-lettered, or found already effected). */
  finish(seq: number): void {
    if (this.#pending[this.#head] === seq) {
      this.#head++;
      while (this.#head < this.#pending.length && this.#done.delete(this.#pending[this.#head]!)) this.#head++;
      if (this.#head > 1024 && this.#head * 2 > this.#pending.length) {
        this.#pending.splice(0, this.#head);
        this.#head = 0;
      }
    } else this.#done.add(seq);
    if (this.inFlight === 0) this.#drained?.();
  }

  get inFlight(): number {
    return this.#pending.length - this.#head;
  }

  /** The first sequence not yet finished, if any. */
  get firstPending(): number | undefined {
    return this.#head < this.#pending.length ? this.#pending[this.#head] : undefined;
  }

  /** Ends a wait for {@link drained}: the partition was lost, its messages are dropped. */
  abandon(): void {
    this.#drained?.();
  }

  /** Resolves once every taken message finished. */
  drained(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#drained = resolve;
    });
  }
}

/** What the consumer decides about a message the reader read. */
export interface Routed<T> {
  partition: number;
  token: T;
}

/**
 * Reads one stream for a partitioned consumer group with an ordered consumer (no acks: progress
 * lives in the partitions' checkpoints), from the lowest checkpoint of the partitions this
 * instance owns, and hands each message of an owned partition to the consumer in stream order.
 * Acquiring a partition whose checkpoint lies behind the read position re-reads from there;
 * messages already taken are skipped by each partition's `next`.
 */
export class GroupReader<T> implements PartitionHandler {
  readonly parts = new Map<number, PartState>();
  /** Stream sequence after the last message read in the current run. */
  #readNext = 0;
  #run = 0;
  #restart = false;
  #stopped = false;
  #iter: { stop(): void } | undefined;
  #wake: (() => void) | undefined;
  /** Ends the wait between two failed reads at once (see {@link restart}). */
  #retryNow: (() => void) | undefined;
  #room: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  /** Messages taken and not finished, over every partition. */
  #inFlight = 0;
  /** `num_pending` of the last message read (what the stream holds beyond it). */
  lastPending = 0;

  constructor(
    readonly js: JetStreamClient,
    readonly stream: string,
    readonly subjects: string[],
    readonly o: { batch: number; maxInFlight: number; expiresMs: number },
    readonly route: (m: JsMsg) => Routed<T>,
    readonly deliver: (token: T, part: PartState) => void,
    readonly log: Logger,
  ) {}

  get inFlight(): number {
    return this.#inFlight;
  }

  acquired(partition: number, seq: number, replayUntil: number | undefined): void {
    const behind = this.#loop !== undefined && seq < this.#readNext;
    this.parts.set(partition, new PartState(partition, seq, behind ? this.#run + 1 : this.#run, replayUntil));
    if (behind) {
      this.#restart = true;
      this.#iter?.stop();
    }
    if (!this.#loop) this.#loop = this.#read();
    this.#wake?.();
  }

  async release(partition: number): Promise<number> {
    const part = this.parts.get(partition);
    if (!part) return 0;
    part.frozen = true;
    await part.drained();
    if (this.parts.get(partition) === part) this.parts.delete(partition);
    return part.next;
  }

  lost(partition: number): void {
    const part = this.parts.get(partition);
    if (!part) return;
    part.lost = true;
    this.parts.delete(partition);
    part.abandon(); // a hand-over draining it stops waiting
    this.#inFlight -= part.inFlight;
    this.#room?.();
  }

  checkpoint(partition: number): number {
    const part = this.parts.get(partition);
    if (!part) return 0;
    const first = part.firstPending;
    if (first !== undefined) return first;
    // Every message of the stream before #readNext was seen by a run that started at or before
    // this partition's `next`: none of them is this partition's and untaken.
    return part.frozen || part.run > this.#run ? part.next : Math.max(part.next, this.#readNext);
  }

  /** A message handed to the consumer finished. */
  finish(part: PartState, seq: number): void {
    if (part.lost) return;
    part.finish(seq);
    this.#inFlight--;
    if (this.#inFlight < this.o.maxInFlight) this.#room?.();
  }

  async #read(): Promise<void> {
    let failures = 0;
    while (!this.#stopped) {
      const live = [...this.parts.values()].filter((p) => !p.frozen);
      if (live.length === 0) {
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
        });
        this.#wake = undefined;
        continue;
      }
      // What the run that ends saw counts for the partitions it served from their start.
      for (const p of live) {
        if (p.run <= this.#run && this.#readNext > p.next) p.next = this.#readNext;
      }
      const from = Math.max(1, Math.min(...live.map((p) => p.next)));
      this.#restart = false;
      this.#run++;
      for (const p of live) p.run = this.#run;
      this.#readNext = from;
      try {
        const c = await this.js.consumers.get(this.stream, {
          filter_subjects: this.subjects,
          deliver_policy: DeliverPolicy.StartSequence,
          opt_start_seq: from,
        });
        // Short pulls: the server's idle heartbeats (half of expires) reveal a lost consumer soon.
        const iter = await c.consume({ max_messages: this.o.batch, expires: this.o.expiresMs });
        this.#iter = iter;
        if (this.#restart || this.#stopped) iter.stop();
        failures = 0;
        void (async () => {
          for await (const st of iter.status()) {
            // The ordered consumer's own recovery waits for more; read again from the checkpoints.
            if (st.type === "heartbeats_missed" && st.count >= 2) this.restart("heartbeats missed");
          }
        })().catch(() => {});
        for await (const m of iter) {
          const seq = m.seq;
          this.#readNext = seq + 1;
          this.lastPending = m.info.pending;
          const r = this.route(m);
          const part = this.parts.get(r.partition);
          if (!part || part.frozen || seq < part.next) continue;
          part.take(seq);
          this.#inFlight++;
          this.deliver(r.token, part);
          if (this.#inFlight >= this.o.maxInFlight && !this.#stopped) {
            await new Promise<void>((resolve) => {
              this.#room = resolve;
            });
            this.#room = undefined;
          }
          if (this.#restart || this.#stopped) break;
        }
        iter.stop();
      } catch (err) {
        failures++;
        if (!this.#stopped) this.log.warn({ err, attempt: failures }, "group reader failed; reading again");
        // At most 1 s between attempts (a stream without a leader refuses the read for the whole
        // election), and at once when restart() is called meanwhile (its leader was elected).
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.min(1000, 100 * 2 ** Math.min(failures, 4)));
          this.#retryNow = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.#retryNow = undefined;
      } finally {
        this.#iter = undefined;
      }
    }
  }

  /**
   * Reads again from the owned partitions' positions (after a reconnect or lost heartbeats: the
   * ephemeral consumer behind the ordered read may be gone with the node that held it).
   */
  restart(reason: string): void {
    if (this.#stopped) return;
    if (!this.#iter) {
      // Waiting to read again after a failure (e.g. the stream had no leader): try now.
      this.#retryNow?.();
      return;
    }
    this.log.info({ reason }, "group reader reading again");
    this.#restart = true;
    this.#iter.stop();
  }

  /** Stops reading; taken messages stay with the consumer until they finish or are dropped. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#retryNow?.();
    this.#iter?.stop();
    this.#wake?.();
    this.#room?.();
    await this.#loop;
  }
}
