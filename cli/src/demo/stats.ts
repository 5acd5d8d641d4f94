import type { JetStreamManager } from "@nats-io/jetstream";

/** A snapshot of the bus: stored events per subject, consumer lag and redeliveries, dead letters. */
export interface BusSnapshot {
  at: number;
  subjects: Record<string, number>;
  consumers: { stream: string; durable: string; pending: number; ackPending: number; redelivered: number }[];
  deadLetters: number;
}

export async function snapshot(jsm: JetStreamManager, streams: readonly string[]): Promise<BusSnapshot> {
  const subjects: Record<string, number> = {};
  const consumers: BusSnapshot["consumers"] = [];
  let deadLetters = 0;
  for (const name of streams) {
    // Throws when a stream does not answer (e.g. during a leader election): a partial snapshot
    // would show a subject's rate dropping to zero or the dead letters vanishing.
    const info = await jsm.streams.info(name, { subjects_filter: ">" });
    if (name === "DLQ") deadLetters = info.state.messages;
    else Object.assign(subjects, info.state.subjects ?? {});
    for await (const c of jsm.consumers.list(name)) {
      // Durable consumers are the services; ephemeral ones (ordered readers, tools) come and go.
      if (!c.config.durable_name) continue;
      consumers.push({
        stream: name,
        durable: c.name,
        pending: c.num_pending,
        ackPending: c.num_ack_pending,
        redelivered: c.num_redelivered,
      });
    }
  }
  return { at: Date.now(), subjects, consumers, deadLetters };
}

/** Events per second per subject between two snapshots. */
export function rates(prev: BusSnapshot, next: BusSnapshot): Record<string, number> {
  const dt = Math.max(1, next.at - prev.at) / 1000;
  const out: Record<string, number> = {};
  for (const [s, n] of Object.entries(next.subjects))
    out[s] = Math.max(0, (n - (prev.subjects[s] ?? 0)) / dt);
  return out;
}
