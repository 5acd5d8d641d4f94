import { createWriteStream, type WriteStream } from "node:fs";

/** One line of a drill's history (JSON lines). Times are ms since the epoch. */
export type HistoryEvent =
  | {
      t: number;
      kind: "publish";
      id: string;
      key: string;
      subject: string;
      attempt: number;
      poison?: PoisonKind;
      repeat?: boolean;
      /** The key's sequence number the producer gave the event (1, 2, ... per key, in publish order). */
      pseq?: number;
      /** Committed to the transactional outbox (published by a relay), not published directly. */
      outbox?: boolean;
    }
  | {
      t: number;
      kind: "ack";
      id: string;
      key: string;
      seq: number;
      stream: string;
      duplicate: boolean;
      latencyMs: number;
    }
  | {
      t: number;
      kind: "publish_error";
      id: string;
      key: string;
      attempt: number;
      error: string;
      final: boolean;
    }
  | { t: number; kind: "delivery"; id: string; key: string; seq: number; delivery: number; consumer: string }
  | EffectEvent
  | { t: number; kind: "skip"; id: string; key: string; seq: number; reason: string }
  | { t: number; kind: "dlq"; id: string; key: string; seq: number; failureClass: string }
  | {
      t: number;
      kind: "sdk";
      /** What the consumer SDK said about a delivery (its log line, by meaning). */
      note: "store_unavailable" | "record_failed";
      id: string;
      key: string;
      seq: number;
      delivery: number;
      consumer: string;
    }
  | { t: number; kind: "fault_start" | "fault_end"; fault: string; action: string; detail?: string }
  | { t: number; kind: "fault_skipped"; fault: string; action: string; reason: string }
  | { t: number; kind: "fault_step"; fault: string; detail: string }
  | { t: number; kind: "phase"; phase: string }
  | {
      t: number;
      kind: "process";
      name: string;
      /** `crash`: the process is about to kill itself (a drill's crash knob), `detail` says where. */
      event: "start" | "exit" | "crash";
      detail?: string;
      pid?: number;
    }
  | {
      t: number;
      kind: "leader";
      /** `stream:<name>` or `consumer:<stream>/<durable>`: the Raft group polled. */
      group: string;
      /** The leader's server name, or null when the group answered without a leader or not at all. */
      leader: string | null;
      /** What the info request answered through each node's connection. */
      views?: string;
    }
  | { t: number; kind: "stored"; stream: string; seq: number; id: string }
  | {
      t: number;
      kind: "stream_read";
      stream: string;
      firstSeq: number;
      lastSeq: number;
      messages: number;
      /** False when the read stopped early (then an event absent from the read may still be stored). */
      complete: boolean;
      error?: string;
    };

/**
 * One effect of the workload's handler, as its effect file has it (a line appended before the
 * handler returns). Effects read from the files are the truth the checker judges; the older
 * histories without the file fields still check (order then falls back to stream sequence).
 */
export interface EffectEvent {
  /** Wall clock, ms since the epoch. */
  t: number;
  kind: "effect";
  id: string;
  key: string;
  /** Stream sequence of the delivery. */
  seq: number;
  /** The consumer process (supervised name, e.g. `consumer-1`). */
  consumer: string;
  /** The key's sequence number the producer gave the event. */
  pseq?: number;
  /** OS process id of the incarnation that wrote the line. */
  pid?: number;
  /** The delivery count the SDK gave the handler. */
  delivery?: number;
  /**
   * CLOCK_MONOTONIC of the host in ns (`process.hrtime.bigint()`), as a decimal string: one clock
   * for every process on the machine, so effects of different processes merge in one order.
   */
  mono?: string;
  /** Line number in its effect file (1-based): breaks ties of `mono`. */
  line?: number;
}

/** How a poison message is broken. */
export type PoisonKind = "undecodable" | "contract_violation";

/** An append-only history kept in memory and, when a path is given, written as JSON lines. */
export class History {
  readonly events: HistoryEvent[] = [];
  #out: WriteStream | undefined;
  #keys = new Map<string, string>();

  constructor(path?: string) {
    if (path) this.#out = createWriteStream(path, { flags: "w" });
  }

  add(event: HistoryEvent): void {
    if (event.kind === "publish") this.#keys.set(event.id, event.key);
    this.events.push(event);
    this.#out?.write(`${JSON.stringify(event)}\n`);
  }

  /** The partition key a message id was published under. */
  keyOf(id: string): string | undefined {
    return this.#keys.get(id);
  }

  /** Flushes and closes the file. */
  async close(): Promise<void> {
    const out = this.#out;
    this.#out = undefined;
    if (out) await new Promise<void>((resolve) => out.end(() => resolve()));
  }
}

/** Parses a JSON-lines history (for re-checking a saved run). */
export function parseHistory(text: string): HistoryEvent[] {
  return text
    .split("\n")
    .filter((l) => l.trim().length > 0)
    .map((l) => JSON.parse(l) as HistoryEvent);
}
