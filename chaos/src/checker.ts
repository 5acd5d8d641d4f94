import type { HistoryEvent } from "./history.js";

/** The invariants a drill can ask for. */
export const INVARIANTS = [
  "no_acked_lost",
  "no_duplicate_effects",
  "per_key_order",
  "dedup_holds",
  "all_acked_effected",
  "poison_quarantined",
] as const;
export type Invariant = (typeof INVARIANTS)[number];

/** What the stream holds at the end, looked up by sequence for the messages the checker asks about. */
export type StreamContents = Map<number, string | null>;

/** Options of {@link checkHistory}. */
export interface CheckOptions {
  /** Invariants to give a verdict on. Default: all. */
  invariants?: readonly Invariant[];
  /** Width of the time windows of the latency/throughput series, ms. Default: 1000. */
  windowMs?: number;
  /** A window is steady when its publish p99 is at most this (ms). Default: 3 x the baseline p99, at least 100 ms. */
  steadyP99Ms?: number;
  /** A window is steady when it acks at least this fraction of the baseline rate. Default: 0.5. */
  steadyThroughputRatio?: number;
  /** Windows in a row that must be steady to call the system recovered. Default: 2. */
  steadyWindows?: number;
  /** Stream contents at the end for the sequences of acked messages that were never delivered. */
  stream?: StreamContents;
}

export interface Window {
  /** Start of the window, ms since the drill started. */
  t: number;
  published: number;
  acked: number;
  errors: number;
  delivered: number;
  publishP50: number | null;
  publishP99: number | null;
  e2eP50: number | null;
  e2eP99: number | null;
  /** A fault was active during (part of) this window. */
  fault: boolean;
}

export interface Verdict {
  invariant: Invariant;
  held: boolean;
  count: number;
  detail: string;
  examples: unknown[];
}

export interface Recovery {
  fault: string;
  action: string;
  startedAt: number;
  endedAt: number;
  /** Time from the fault's end to the first steady window, ms; null when it never became steady. */
  recoveryMs: number | null;
}

export interface CheckResult {
  counts: {
    /** Distinct messages the producer tried to publish. */
    attempted: number;
    acked: number;
    /** Never acked after every attempt. */
    failed: number;
    poison: number;
    delivered: number;
    effected: number;
    deadLettered: number;
    lost: number;
    duplicatedEffects: number;
    orderViolations: number;
    /** Not acked, but delivered anyway (the broker stored it; the ack was lost). */
    recovered: number;
    repeatsAcked: number;
    publishErrors: number;
    /**
     * Handler runs that found their effect already recorded (skip `effect_exists`): the consumer
     * died between the effect and the SDK's idempotency record, and the idempotent effect absorbed
     * the re-run. Not a violation; without an idempotent effect each would be a duplicate.
     */
    rerunsAbsorbed: number;
  };
  lost: { id: string; key: string; seq: number; reason: string }[];
  duplicatedEffects: { id: string; effects: number }[];
  orderViolations: { key: string; seq: number; after: number }[];
  recovered: { id: string; key: string; seq: number }[];
  notEffected: { id: string; seq: number; delivered: boolean }[];
  dedupFailures: { id: string; seqs: number[] }[];
  poisonEffected: { id: string }[];
  poisonNotQuarantined: { id: string }[];
  windows: Window[];
  recoveries: Recovery[];
  latency: {
    publishP50: number | null;
    publishP99: number | null;
    e2eP50: number | null;
    e2eP99: number | null;
  };
  verdicts: Verdict[];
  /** True when every requested invariant held. */
  held: boolean;
  startedAt: number;
  endedAt: number;
}

/** Nearest-rank percentile of `values` (unsorted), or null for none. */
export function percentile(values: number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1] ?? null;
}

interface MessageFacts {
  id: string;
  key: string;
  firstAttempt: number;
  poison: boolean;
  ackSeqs: Set<number>;
  firstAck?: { t: number; seq: number; latencyMs: number };
  deliveries: number;
  firstDelivery?: number;
  deliveredSeq?: number;
  effects: number;
  skips: number;
  dlq: number;
}

/**
 * Checks a drill history, Jepsen style: which acknowledged messages were lost, which effects
 * happened twice, where per-key order broke, what was recovered without an ack, how latency and
 * throughput moved over time, and how long the system took to be steady again after each fault.
 */
export function checkHistory(events: readonly HistoryEvent[], opts: CheckOptions = {}): CheckResult {
  const invariants = opts.invariants ?? INVARIANTS;
  const windowMs = opts.windowMs ?? 1000;
  const msgs = new Map<string, MessageFacts>();
  const sorted = [...events].sort((a, b) => a.t - b.t);
  // Time runs from the first publish (set-up before it is not part of the workload).
  const startedAt = sorted.find((e) => e.kind === "publish")?.t ?? sorted[0]?.t ?? 0;
  const endedAt = sorted.at(-1)?.t ?? startedAt;
  const effectOrder = new Map<string, number[]>();
  let publishErrors = 0;
  let repeatsAcked = 0;
  let rerunsAbsorbed = 0;
  const faults: { fault: string; action: string; startedAt: number; endedAt: number }[] = [];
  const openFaults = new Map<string, { action: string; t: number }>();

  const facts = (id: string, key: string, t: number): MessageFacts => {
    let m = msgs.get(id);
    if (!m) {
      m = {
        id,
        key,
        firstAttempt: t,
        poison: false,
        ackSeqs: new Set(),
        deliveries: 0,
        effects: 0,
        skips: 0,
        dlq: 0,
      };
      msgs.set(id, m);
    }
    return m;
  };

  for (const e of sorted) {
    switch (e.kind) {
      case "publish": {
        const m = facts(e.id, e.key, e.t);
        if (e.poison) m.poison = true;
        break;
      }
      case "ack": {
        const m = facts(e.id, e.key, e.t);
        m.ackSeqs.add(e.seq);
        if (!m.firstAck) m.firstAck = { t: e.t, seq: e.seq, latencyMs: e.latencyMs };
        else if (e.duplicate) repeatsAcked++;
        break;
      }
      case "publish_error":
        publishErrors++;
        break;
      case "delivery": {
        const m = facts(e.id, e.key, e.t);
        m.deliveries++;
        m.firstDelivery ??= e.t;
        m.deliveredSeq = e.seq;
        break;
      }
      case "effect": {
        const m = facts(e.id, e.key, e.t);
        m.effects++;
        const order = effectOrder.get(e.key) ?? [];
        order.push(e.seq);
        effectOrder.set(e.key, order);
        break;
      }
      case "skip":
        facts(e.id, e.key, e.t).skips++;
        if (e.reason === "effect_exists") rerunsAbsorbed++;
        break;
      case "dlq":
        facts(e.id, e.key, e.t).dlq++;
        break;
      case "fault_start":
        openFaults.set(e.fault, { action: e.action, t: e.t });
        break;
      case "fault_end": {
        const open = openFaults.get(e.fault);
        if (open) {
          faults.push({ fault: e.fault, action: open.action, startedAt: open.t, endedAt: e.t });
          openFaults.delete(e.fault);
        }
        break;
      }
      default:
        break;
    }
  }
  for (const [fault, open] of openFaults)
    faults.push({ fault, action: open.action, startedAt: open.t, endedAt });

  const all = [...msgs.values()];
  const acked = all.filter((m) => m.firstAck);
  const lost: CheckResult["lost"] = [];
  const notEffected: CheckResult["notEffected"] = [];
  for (const m of acked) {
    if (m.poison) continue;
    const seq = m.firstAck?.seq ?? 0;
    if (m.deliveries === 0) {
      const inStream = opts.stream?.get(seq);
      if (inStream === undefined && opts.stream === undefined) {
        lost.push({ id: m.id, key: m.key, seq, reason: "never delivered (stream not checked)" });
      } else if (inStream !== m.id) {
        lost.push({
          id: m.id,
          key: m.key,
          seq,
          reason: inStream ? `sequence ${seq} holds ${inStream}` : `sequence ${seq} is not in the stream`,
        });
      }
    }
    if (m.effects + m.skips === 0) notEffected.push({ id: m.id, seq, delivered: m.deliveries > 0 });
  }
  const duplicatedEffects = all.filter((m) => m.effects > 1).map((m) => ({ id: m.id, effects: m.effects }));
  const orderViolations: CheckResult["orderViolations"] = [];
  for (const [key, seqs] of effectOrder) {
    let max = 0;
    for (const s of seqs) {
      if (s < max) orderViolations.push({ key, seq: s, after: max });
      max = Math.max(max, s);
    }
  }
  const recovered = all
    .filter((m) => !m.firstAck && m.deliveries > 0)
    .map((m) => ({ id: m.id, key: m.key, seq: m.deliveredSeq ?? 0 }));
  const dedupFailures = all
    .filter((m) => m.ackSeqs.size > 1)
    .map((m) => ({ id: m.id, seqs: [...m.ackSeqs] }));
  const poison = all.filter((m) => m.poison);
  const poisonEffected = poison.filter((m) => m.effects > 0).map((m) => ({ id: m.id }));
  const poisonNotQuarantined = poison.filter((m) => m.firstAck && m.dlq === 0).map((m) => ({ id: m.id }));

  // Time windows.
  const nWindows = Math.max(1, Math.ceil((endedAt - startedAt + 1) / windowMs));
  const buckets = Array.from({ length: nWindows }, () => ({
    published: 0,
    acked: 0,
    errors: 0,
    delivered: 0,
    pub: [] as number[],
    e2e: [] as number[],
  }));
  const at = (t: number) =>
    buckets[Math.min(nWindows - 1, Math.max(0, Math.floor((t - startedAt) / windowMs)))];
  for (const m of all) {
    const b = at(m.firstAttempt);
    if (!b) continue;
    b.published++;
    if (m.firstAck) {
      b.pub.push(m.firstAck.latencyMs);
      const ab = at(m.firstAck.t);
      if (ab) ab.acked++;
    }
    if (m.firstDelivery !== undefined) {
      b.e2e.push(m.firstDelivery - m.firstAttempt);
      const db = at(m.firstDelivery);
      if (db) db.delivered++;
    }
  }
  for (const e of sorted) if (e.kind === "publish_error") (at(e.t) ?? { errors: 0 }).errors++;
  const windows: Window[] = buckets.map((b, i) => {
    const t0 = startedAt + i * windowMs;
    return {
      t: i * windowMs,
      published: b.published,
      acked: b.acked,
      errors: b.errors,
      delivered: b.delivered,
      publishP50: percentile(b.pub, 50),
      publishP99: percentile(b.pub, 99),
      e2eP50: percentile(b.e2e, 50),
      e2eP99: percentile(b.e2e, 99),
      fault: faults.some((f) => f.startedAt < t0 + windowMs && f.endedAt >= t0),
    };
  });

  // Baseline: the windows before the first fault, without the first (warm-up) and the last partial one.
  const firstFault = Math.min(...faults.map((f) => f.startedAt), Number.POSITIVE_INFINITY);
  const lastPublish = Math.max(...all.map((m) => m.firstAttempt), startedAt);
  const base = windows.filter(
    (w, i) => i > 0 && startedAt + w.t + windowMs <= firstFault && startedAt + w.t + windowMs <= lastPublish,
  );
  const baseRate = percentile(
    base.map((w) => w.acked),
    50,
  );
  const baseP99 = percentile(
    base.map((w) => w.publishP99 ?? 0),
    50,
  );
  const steadyP99 = opts.steadyP99Ms ?? Math.max(100, (baseP99 ?? 0) * 3);
  const ratio = opts.steadyThroughputRatio ?? 0.5;
  const need = opts.steadyWindows ?? 2;
  const steady = (w: Window): boolean => {
    // The producer's last window is partial: judge it on errors and latency only.
    const partial = startedAt + w.t + windowMs > lastPublish;
    return (
      w.errors === 0 &&
      (w.publishP99 === null || w.publishP99 <= steadyP99) &&
      (partial || baseRate === null || w.acked >= baseRate * ratio)
    );
  };
  const recoveries: Recovery[] = faults.map((f) => {
    const first = Math.max(0, Math.floor((f.endedAt - startedAt) / windowMs));
    for (let i = first; i < windows.length; i++) {
      const run = windows.slice(i, i + need);
      if (startedAt + i * windowMs > lastPublish) break;
      if (run.length > 0 && run.every(steady)) {
        return { ...f, recoveryMs: Math.max(0, startedAt + i * windowMs - f.endedAt) };
      }
    }
    return { ...f, recoveryMs: null };
  });

  const pubAll = acked.map((m) => m.firstAck?.latencyMs ?? 0);
  const e2eAll = all
    .filter((m) => m.firstDelivery !== undefined)
    .map((m) => (m.firstDelivery ?? 0) - m.firstAttempt);

  const verdict = (invariant: Invariant, items: unknown[], what: string): Verdict => ({
    invariant,
    held: items.length === 0,
    count: items.length,
    detail: items.length === 0 ? `held: ${what}` : `violated: ${items.length} ${what}`,
    examples: items.slice(0, 10),
  });
  const verdicts: Verdict[] = [];
  for (const inv of invariants) {
    if (inv === "no_acked_lost") verdicts.push(verdict(inv, lost, "acknowledged messages lost"));
    if (inv === "no_duplicate_effects")
      verdicts.push(verdict(inv, duplicatedEffects, "messages with more than one effect"));
    if (inv === "per_key_order")
      verdicts.push(verdict(inv, orderViolations, "effects out of per-key stream order"));
    if (inv === "dedup_holds")
      verdicts.push(verdict(inv, dedupFailures, "message ids stored under more than one sequence"));
    if (inv === "all_acked_effected")
      verdicts.push(verdict(inv, notEffected, "acknowledged messages without an effect"));
    if (inv === "poison_quarantined")
      verdicts.push(
        verdict(
          inv,
          [...poisonEffected, ...poisonNotQuarantined],
          "poison messages effected or not dead-lettered",
        ),
      );
  }

  return {
    counts: {
      attempted: all.length,
      acked: acked.length,
      failed: all.filter((m) => !m.firstAck).length,
      poison: poison.length,
      delivered: all.filter((m) => m.deliveries > 0).length,
      effected: all.filter((m) => m.effects > 0).length,
      deadLettered: all.filter((m) => m.dlq > 0).length,
      lost: lost.length,
      duplicatedEffects: duplicatedEffects.length,
      orderViolations: orderViolations.length,
      recovered: recovered.length,
      repeatsAcked,
      publishErrors,
      rerunsAbsorbed,
    },
    lost,
    duplicatedEffects,
    orderViolations,
    recovered,
    notEffected,
    dedupFailures,
    poisonEffected,
    poisonNotQuarantined,
    windows,
    recoveries,
    latency: {
      publishP50: percentile(pubAll, 50),
      publishP99: percentile(pubAll, 99),
      e2eP50: percentile(e2eAll, 50),
      e2eP99: percentile(e2eAll, 99),
    },
    verdicts,
    held: verdicts.every((v) => v.held),
    startedAt,
    endedAt,
  };
}

/** Sequences the final check must look up: acked, not poison, never delivered. */
export function sequencesToVerify(events: readonly HistoryEvent[]): number[] {
  const delivered = new Set<string>();
  for (const e of events) if (e.kind === "delivery") delivered.add(e.id);
  const poison = new Set<string>();
  for (const e of events) if (e.kind === "publish" && e.poison) poison.add(e.id);
  const seqs = new Set<number>();
  for (const e of events) if (e.kind === "ack" && !delivered.has(e.id) && !poison.has(e.id)) seqs.add(e.seq);
  return [...seqs];
}
