import type { DestinationStream } from "pino";

/**
 * The SDKs report what happens inside them (a retried publish attempt, a delivery acked from the
 * idempotency store, a dead letter) as structured pino lines with stable fields (`msg_id`, `seq`,
 * `delivery`, `attempt`, `reason`, `failure_class`). The workload reads them back into the
 * history: the drill observes the SDKs through their public observability, not by reaching in.
 */
export function sdkLogStream(onLine: (line: Record<string, unknown>) => void): DestinationStream {
  return {
    write(chunk: string) {
      for (const text of chunk.split("\n")) {
        if (!text) continue;
        try {
          onLine(JSON.parse(text) as Record<string, unknown>);
        } catch {}
      }
    },
  };
}

/** A publish attempt that failed inside the producer SDK and is about to be retried. */
export interface SdkAttemptFailure {
  msgId: string;
  subject: string;
  attempt: number;
  reason: string;
}

/** The producer SDK's `publish attempt failed; retrying` lines. */
export function attemptLogStream(onFailure: (f: SdkAttemptFailure) => void): DestinationStream {
  return sdkLogStream((l) => {
    if (l.msg !== "publish attempt failed; retrying" || typeof l.msg_id !== "string") return;
    onFailure({
      msgId: l.msg_id,
      subject: String(l.subject ?? ""),
      attempt: Number(l.attempt ?? 0),
      reason: String(l.reason ?? "").slice(0, 300),
    });
  });
}

/** What the consumer SDK did with a delivery it did not hand to the handler. */
export type SdkDeliveryNote =
  | { kind: "duplicate"; msgId: string; seq: number; delivery: number }
  | { kind: "poison"; msgId: string; seq: number; delivery: number; failureClass: string }
  | { kind: "dead_lettered"; msgId: string; seq: number; delivery: number; failureClass: string }
  | { kind: "store_unavailable"; msgId: string; seq: number; delivery: number }
  | { kind: "record_failed"; msgId: string; seq: number; delivery: number };

const NOTES: Record<string, SdkDeliveryNote["kind"]> = {
  "effect already recorded; acked without running the handler": "duplicate",
  "poison message; dead-lettering it without retries": "poison",
  "message dead-lettered": "dead_lettered",
  "idempotency store unavailable; retrying the message later": "store_unavailable",
  "idempotency store unavailable; retrying in place": "store_unavailable",
  "could not record the effect in the idempotency store; retrying (not acked)": "record_failed",
};

/** The consumer SDK's per-delivery lines (debug and warn); other lines come with `undefined`. */
export function deliveryLogStream(
  onNote: (n: SdkDeliveryNote | undefined, line: Record<string, unknown>) => void,
): DestinationStream {
  return sdkLogStream((l) => {
    const kind = NOTES[String(l.msg)];
    if (!kind) return onNote(undefined, l);
    const base = {
      msgId: String(l.msg_id ?? ""),
      seq: Number(l.seq ?? 0),
      delivery: Number(l.delivery ?? 0),
    };
    if (kind === "poison" || kind === "dead_lettered")
      onNote({ kind, ...base, failureClass: String(l.failure_class ?? "") }, l);
    else onNote({ kind, ...base }, l);
  });
}
