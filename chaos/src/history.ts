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
  | { t: number; kind: "effect"; id: string; key: string; seq: number; consumer: string }
  | { t: number; kind: "skip"; id: string; key: string; seq: number; reason: string }
  | { t: number; kind: "dlq"; id: string; key: string; seq: number; failureClass: string }
  | { t: number; kind: "fault_start" | "fault_end"; fault: string; action: string; detail?: string }
  | { t: number; kind: "fault_skipped"; fault: string; action: string; reason: string }
  | { t: number; kind: "phase"; phase: string }
  | { t: number; kind: "process"; name: string; event: "start" | "exit"; detail?: string };

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
