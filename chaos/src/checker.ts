import type { EffectEvent, HistoryEvent } from "./history.js";
import { compareEffects } from "./workload/effect-log.js";

/** The invariants a drill can ask for. */
export const INVARIANTS = [
  "no_acked_lost",
  "no_duplicate_effects",
  "per_key_order",
  "dedup_holds",
  "all_acked_effected",
  "poison_quarantined",
  "no_false_refusals",
  "recovery_within_budget",
  "outbox_all_relayed",
] as const;
export type Invariant = (typeof INVARIANTS)[number];

/** What the stream holds at the end, looked up by sequence for the messages the checker asks about. */
export type StreamContents = Map<number, string | null>;

/** Producer error codes that say "no definite answer: the event may be stored" (not a refusal). */
export const OUTCOME_UNKNOWN_CODES: readonly string[] = ["JK_PRODUCER_OUTCOME_UNKNOWN"];

/** Options of {@link checkHistory}. */
export interface CheckOptions {
  /** Invariants to give a verdict on. Default: all. */
  invariants?: readonly Invariant[];
  /**
   * `recovery_within_budget`: the most the SDKs' share of a fault's recovery may be (recovery end
   * to end minus the broker's own leaderless time), ms. Default: 1500.
   */
  recoveryBudgetMs?: number;
  /** Width of the time windows of the latency/throughput series, ms. Default: 1000. */
  windowMs?: number;
  /** A window is steady when its publish p99 is at most this (ms). Default: 3 x the baseline p99, at least 100 ms. */
  steadyP99Ms?: number;
  /** A window is steady when it acks at least this fraction of the baseline rate. Default: 0.5. */
  steadyThroughputRatio?: number;
  /** Windows in a row that must be steady to call the system steady again. Default: 2. */
  steadyWindows?: number;
  /**
   * Stream contents by sequence, when the history has no `stored` lines (an older history, or
   * sequences looked up one by one). The history's own stream read wins.
   */
  stream?: StreamContents;
}

export interface Window {
  /** Start of the window, ms since the drill started. */
  t: number;
  published: number;
  acked: number;
  errors: number;
  delivered: number;
  /** Events whose first effect fell in this window. */
  effected: number;
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

/** One Raft group's leadership around a fault. */
export interface LeadershipAround {
  group: string;
  /** The last leader seen up to the fault's start (null: none, undefined: never polled before). */
  leaderBefore: string | null | undefined;
  /** Fault start to the end of the first leaderless gap that overlaps the recovery; 0: never leaderless. Null: not polled. */
  leaderBackMs: number | null;
  /** Time without a leader from the fault's start to its end or its recovery, whichever is later, ms. */
  leaderlessMs: number;
  /** Leaderless gaps, ms from the fault's start ([from, to]; to null: still leaderless at the end). */
  gaps: { fromMs: number; toMs: number | null }[];
  /** The first leader after the fault's start other than the one before, and when (ms from the start). */
  newLeader?: { leader: string; atMs: number };
}

export interface Recovery {
  fault: string;
  action: string;
  startedAt: number;
  endedAt: number;
  /**
   * End to end: from the fault's start to the first effect of an event first published after the
   * fault started (ms); null when none was effected by the end of the run.
   */
  recoveryMs: number | null;
  /** The same per stream the workload writes to. */
  streams: { stream: string; recoveryMs: number | null; firstAckMs: number | null }[];
  /** From the fault's start to the first ack of an event first published after it started. */
  firstAckMs: number | null;
  /** Leadership of every polled group (streams, the durable) around the fault. */
  leadership: LeadershipAround[];
  /**
   * The broker's share: fault start until every polled group (workload stream, durable, idempotency
   * store) had a leader again, counting only gaps that began before the recovery; 0: none was leaderless.
   */
  brokerMs: number | null;
  /** The group whose leader came back last (the one the broker's share is). */
  brokerGroup?: string;
  /** Recovery minus the broker's share: what the SDKs took. */
  sdkShareMs: number | null;
  /** The older measure: from the fault's end to the first steady windows (no errors, p99 and throughput back). */
  steadyAfterEndMs: number | null;
  /** What happened, in order, in ms from the fault's start. */
  timeline: { atMs: number; what: string }[];
}

/** An explanation of one non-zero count, with examples. */
export interface Finding {
  /** The count it explains (a key of `counts`). */
  count: string;
  n: number;
  text: string;
  examples: unknown[];
}

export interface EffectRecord {
  consumer: string;
  pid?: number;
  delivery?: number;
  t: number;
}

export interface DuplicateEffect {
  id: string;
  key: string;
  pseq?: number;
  effects: number;
  by: EffectRecord[];
  cause: string;
}

export interface OrderViolation {
  key: string;
  /** The key sequence (pseq, else stream sequence) effected late... */
  seq: number;
  /** ...after an effect of this later one. */
  after: number;
  streamSeq: number;
  afterStreamSeq: number;
  consumer: string;
  afterConsumer: string;
  /** The late effect re-ran an event already effected (also a duplicate). */
  rerun: boolean;
  cause: string;
}

export interface Refusal {
  id: string;
  key: string;
  code: string;
  error: string;
  /** The stream holds the event (at these sequences). */
  storedAt: number[];
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
    /** Distinct events with at least one effect. */
    effected: number;
    /** Effect lines in the effect files (one per handler run that reached its effect). */
    effects: number;
    deadLettered: number;
    /** Acked, never effected, and not in the stream: gone. */
    lost: number;
    duplicatedEffects: number;
    orderViolations: number;
    /** Not acked, but stored anyway (the ack was lost). */
    recovered: number;
    repeatsAcked: number;
    publishErrors: number;
    /** The producer's final answer was a refusal or failure code, and the stream holds the event. */
    falseRefusals: number;
    /** Refused or failed, and indeed not stored. */
    refusedNotStored: number;
    /** The final answer was "outcome unknown" (may be stored), and the stream holds it. */
    outcomeUnknownStored: number;
    /** The final answer was "outcome unknown", and the stream does not hold it. */
    outcomeUnknownNotStored: number;
    /** Acked, still stored, not effected by the end of the drain (liveness). */
    notEffected: number;
    /** Deliveries the SDK could not check or record in its idempotency store. */
    storeUnavailable: number;
    recordFailed: number;
  };
  lost: { id: string; key: string; seq: number; reason: string }[];
  duplicatedEffects: DuplicateEffect[];
  orderViolations: OrderViolation[];
  recovered: { id: string; key: string; seq: number }[];
  notEffected: { id: string; seq: number; delivered: boolean }[];
  dedupFailures: { id: string; seqs: number[] }[];
  poisonEffected: { id: string }[];
  poisonNotQuarantined: { id: string }[];
  falseRefusals: Refusal[];
  outcomeUnknown: { stored: Refusal[]; notStored: Refusal[] };
  /** Whether the stream was read completely at the end (the base of false refusals and losses). */
  streamRead: { stream: string; complete: boolean; messages: number; error?: string } | null;
  windows: Window[];
  recoveries: Recovery[];
  latency: {
    publishP50: number | null;
    publishP99: number | null;
    e2eP50: number | null;
    e2eP99: number | null;
  };
  verdicts: Verdict[];
  /** Every non-zero count explained. */
  findings: Finding[];
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
  pseq?: number;
  firstAttempt: number;
  poison: boolean;
  ackSeqs: Set<number>;
  firstAck?: { t: number; seq: number; latencyMs: number; stream: string };
  finalError?: { t: number; error: string };
  deliveries: number;
  /** Delivery numbers that reached a handler (or the SDK's duplicate check), with the process. */
  seenDeliveries: { delivery: number; consumer: string }[];
  firstDelivery?: number;
  deliveredSeq?: number;
  effects: EffectEvent[];
  skips: number;
  dlq: number;
  sdkNotes: string[];
}

interface ProcessEvent {
  t: number;
  name: string;
  event: string;
  pid?: number;
  detail?: string;
}

/** The error code at the start of a recorded publish error (`JK_...: message`), or `failure`. */
function codeOf(error: string): string {
  return /^(JK_[A-Z_]+)/.exec(error)?.[1] ?? "failure";
}

/**
 * Checks a drill history, Jepsen style: which acknowledged messages were lost, which effects
 * happened twice, where per-key order broke, which refusals were false, what was stored without
 * an ack, how latency and throughput moved, and how long each fault took to recover from, end to
 * end and split into the broker's leaderless time and the SDKs' share. Every non-zero count is
 * explained in `findings`.
 */
export function checkHistory(events: readonly HistoryEvent[], opts: CheckOptions = {}): CheckResult {
  const invariants = opts.invariants ?? INVARIANTS;
  const windowMs = opts.windowMs ?? 1000;
  const msgs = new Map<string, MessageFacts>();
  const sorted = [...events].sort((a, b) => a.t - b.t);
  // Time runs from the first publish (set-up before it is not part of the workload).
  const startedAt = sorted.find((e) => e.kind === "publish")?.t ?? sorted[0]?.t ?? 0;
  const endedAt = sorted.at(-1)?.t ?? startedAt;
  let publishErrors = 0;
  let repeatsAcked = 0;
  let storeUnavailable = 0;
  let recordFailed = 0;
  const faults: { fault: string; action: string; startedAt: number; endedAt: number }[] = [];
  const openFaults = new Map<string, { action: string; t: number }>();
  const steps: { t: number; fault: string; detail: string }[] = [];
  const effects: EffectEvent[] = [];
  const processes: ProcessEvent[] = [];
  const leaders = new Map<string, { t: number; leader: string | null }[]>();
  const storedBySeq = new Map<number, string>();
  const storedById = new Map<string, number[]>();
  let streamRead: CheckResult["streamRead"] = null;

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
        seenDeliveries: [],
        effects: [],
        skips: 0,
        dlq: 0,
        sdkNotes: [],
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
        if (e.pseq !== undefined) m.pseq = e.pseq;
        break;
      }
      case "ack": {
        const m = facts(e.id, e.key, e.t);
        m.ackSeqs.add(e.seq);
        if (!m.firstAck) m.firstAck = { t: e.t, seq: e.seq, latencyMs: e.latencyMs, stream: e.stream };
        else if (e.duplicate) repeatsAcked++;
        break;
      }
      case "publish_error":
        publishErrors++;
        if (e.final) facts(e.id, e.key, e.t).finalError = { t: e.t, error: e.error };
        break;
      case "delivery": {
        const m = facts(e.id, e.key, e.t);
        m.deliveries++;
        m.seenDeliveries.push({ delivery: e.delivery, consumer: e.consumer });
        m.firstDelivery ??= e.t;
        m.deliveredSeq = e.seq;
        break;
      }
      case "effect":
        effects.push(e);
        break;
      case "skip":
        facts(e.id, e.key, e.t).skips++;
        break;
      case "dlq":
        facts(e.id, e.key, e.t).dlq++;
        break;
      case "sdk": {
        if (e.note === "store_unavailable") storeUnavailable++;
        else recordFailed++;
        facts(e.id, e.key, e.t).sdkNotes.push(`${e.note} (${e.consumer}, delivery ${e.delivery})`);
        break;
      }
      case "process":
        processes.push(e);
        break;
      case "leader": {
        const list = leaders.get(e.group) ?? [];
        list.push({ t: e.t, leader: e.leader });
        leaders.set(e.group, list);
        break;
      }
      case "stored": {
        storedBySeq.set(e.seq, e.id);
        const seqs = storedById.get(e.id) ?? [];
        seqs.push(e.seq);
        storedById.set(e.id, seqs);
        break;
      }
      case "stream_read":
        streamRead = {
          stream: e.stream,
          complete: e.complete,
          messages: e.messages,
          ...(e.error ? { error: e.error } : {}),
        };
        break;
      case "fault_start":
        openFaults.set(e.fault, { action: e.action, t: e.t });
        break;
      case "fault_step":
        steps.push(e);
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
  faults.sort((a, b) => a.startedAt - b.startedAt);
  effects.sort(compareEffects);
  for (const e of effects) {
    const m = facts(e.id, e.key, e.t);
    m.effects.push(e);
    if (m.pseq === undefined && e.pseq !== undefined) m.pseq = e.pseq;
  }

  // What the stream holds: the history's full read, else the sequences looked up.
  const fullRead = streamRead !== null && (streamRead as { complete: boolean }).complete;
  if (storedBySeq.size === 0 && opts.stream) {
    for (const [seq, id] of opts.stream) {
      if (id === null) continue;
      storedBySeq.set(seq, id);
      storedById.set(id, [...(storedById.get(id) ?? []), seq]);
    }
  }
  /** Where the stream holds `id`: sequences, [] when known absent, undefined when not known. */
  const storedAt = (m: MessageFacts): number[] | undefined => {
    const at = storedById.get(m.id);
    if (at) return at;
    if (fullRead) return [];
    const seq = m.firstAck?.seq;
    if (seq !== undefined && opts.stream?.has(seq)) return [];
    return undefined;
  };

  const all = [...msgs.values()];
  const acked = all.filter((m) => m.firstAck);
  const lost: CheckResult["lost"] = [];
  const notEffected: CheckResult["notEffected"] = [];
  for (const m of acked) {
    if (m.poison || m.dlq > 0) continue;
    const seq = m.firstAck?.seq ?? 0;
    if (m.effects.length > 0) continue;
    const at = storedAt(m);
    if (at === undefined) {
      if (m.deliveries === 0)
        lost.push({ id: m.id, key: m.key, seq, reason: "never effected (stream not checked)" });
      else notEffected.push({ id: m.id, seq, delivered: true });
    } else if (at.length === 0) {
      const holder = storedBySeq.get(seq);
      lost.push({
        id: m.id,
        key: m.key,
        seq,
        reason: holder
          ? `never effected; sequence ${seq} holds ${holder}`
          : `never effected; not in the stream`,
      });
    } else notEffected.push({ id: m.id, seq, delivered: m.deliveries > 0 });
  }

  const exitsOf = (pid: number | undefined, from: number, to: number) =>
    processes.filter(
      (p) => p.pid === pid && (p.event === "exit" || p.event === "crash") && p.t >= from && p.t <= to,
    );

  // Duplicated effects, each with what the history says about why.
  const duplicatedEffects: DuplicateEffect[] = [];
  for (const m of all) {
    if (m.effects.length < 2) continue;
    const [a, b] = m.effects as [EffectEvent, EffectEvent];
    const crash = exitsOf(a.pid, a.t, b.t);
    const knob = crash.find((p) => p.event === "crash" && p.detail?.includes(m.id));
    const idem = m.sdkNotes.length > 0 ? `; the SDK said: ${m.sdkNotes.join(", ")}` : "";
    let cause: string;
    if (knob)
      cause = `${a.consumer} (pid ${a.pid}) was killed right after the effect, before the SDK recorded or acked it (crash knob); redelivered as delivery ${b.delivery ?? "?"} to ${b.consumer} and run again${idem}`;
    else if (crash.length > 0)
      cause = `${a.consumer} (pid ${a.pid}) exited (${crash.map((p) => p.detail ?? p.event).join(", ")}) after the effect and before its ack took; redelivered as delivery ${b.delivery ?? "?"} to ${b.consumer} and run again${idem}`;
    else if (a.consumer !== b.consumer)
      cause = `run by two live processes (${a.consumer} delivery ${a.delivery ?? "?"}, ${b.consumer} delivery ${b.delivery ?? "?"}): redelivered while the first still held it (ack wait passed or the ack was lost)${idem}`;
    else
      cause = `${a.consumer} ran it again (delivery ${a.delivery ?? "?"} then ${b.delivery ?? "?"}) without a crash between: the ack was lost or late${idem}`;
    duplicatedEffects.push({
      id: m.id,
      key: m.key,
      ...(m.pseq !== undefined ? { pseq: m.pseq } : {}),
      effects: m.effects.length,
      by: m.effects.map((e) => ({
        consumer: e.consumer,
        t: e.t,
        ...(e.pid !== undefined ? { pid: e.pid } : {}),
        ...(e.delivery !== undefined ? { delivery: e.delivery } : {}),
      })),
      cause,
    });
  }

  // Per-key order over the merged effect log: an effect of key sequence n after one of m > n.
  const orderViolations: OrderViolation[] = [];
  const highest = new Map<string, EffectEvent>();
  const seen = new Set<string>();
  for (const e of effects) {
    const m = msgs.get(e.id);
    if (!m || m.poison) continue;
    const n = e.pseq ?? m.pseq ?? e.seq;
    const top = highest.get(e.key);
    const topN = top ? (top.pseq ?? msgs.get(top.id)?.pseq ?? top.seq) : 0;
    if (top && n < topN) {
      const rerun = seen.has(e.id);
      let cause: string;
      if (rerun) cause = "a re-run of an event already effected (also counted as a duplicate)";
      else if (e.seq > top.seq)
        cause = `stored out of the key's order (stream sequence ${e.seq} after ${top.seq}): the producer's publish of it had not been acknowledged when the next was sent`;
      else if ((e.delivery ?? 1) > 1) {
        const earlier = m.seenDeliveries.filter((d) => d.delivery < (e.delivery ?? 1));
        const first =
          earlier.length === 0
            ? "its earlier delivery never reached a handler (delivered while a connection or node went away), so nothing held the key"
            : `its earlier delivery reached ${[...new Set(earlier.map((d) => d.consumer))].join(", ")} without an effect (the process died or gave it up)`;
        cause = `redelivered (delivery ${e.delivery}) after a later event of the key was effected${top.consumer !== e.consumer ? ` by another process (${top.consumer})` : ""}: ${first}`;
      } else if (top.consumer !== e.consumer)
        cause = `two processes held the key at once (${top.consumer} effected ${topN}, then ${e.consumer} effected ${n}): competing consumers keep order per process only`;
      else
        cause = `the same process (${e.consumer}) effected it after a later event of the key on its first delivery`;
      orderViolations.push({
        key: e.key,
        seq: n,
        after: topN,
        streamSeq: e.seq,
        afterStreamSeq: top.seq,
        consumer: e.consumer,
        afterConsumer: top.consumer,
        rerun,
        cause,
      });
    }
    if (!top || n > topN) highest.set(e.key, e);
    seen.add(e.id);
  }

  const recovered = all
    .filter((m) => !m.firstAck && !m.poison && (m.deliveries > 0 || (storedById.get(m.id)?.length ?? 0) > 0))
    .map((m) => ({ id: m.id, key: m.key, seq: storedById.get(m.id)?.[0] ?? m.deliveredSeq ?? 0 }));
  const dedupFailures = all
    .map((m) => ({ id: m.id, seqs: [...new Set([...m.ackSeqs, ...(storedById.get(m.id) ?? [])])] }))
    .filter((d) => d.seqs.length > 1);
  const poison = all.filter((m) => m.poison);
  const poisonEffected = poison.filter((m) => m.effects.length > 0).map((m) => ({ id: m.id }));
  const poisonNotQuarantined = poison.filter((m) => m.firstAck && m.dlq === 0).map((m) => ({ id: m.id }));

  // Final refusals and unknown outcomes against what the stream holds.
  const falseRefusals: Refusal[] = [];
  const refusedNotStored: Refusal[] = [];
  const unknownStored: Refusal[] = [];
  const unknownNotStored: Refusal[] = [];
  for (const m of all) {
    if (m.firstAck || !m.finalError || m.poison) continue;
    const at = storedAt(m) ?? (m.deliveries > 0 ? [m.deliveredSeq ?? 0] : undefined);
    if (at === undefined) continue;
    const code = codeOf(m.finalError.error);
    const r: Refusal = { id: m.id, key: m.key, code, error: m.finalError.error.slice(0, 200), storedAt: at };
    const unknown = OUTCOME_UNKNOWN_CODES.includes(code);
    if (unknown) (at.length > 0 ? unknownStored : unknownNotStored).push(r);
    else (at.length > 0 ? falseRefusals : refusedNotStored).push(r);
  }

  // Time windows.
  const nWindows = Math.max(1, Math.ceil((endedAt - startedAt + 1) / windowMs));
  const buckets = Array.from({ length: nWindows }, () => ({
    published: 0,
    acked: 0,
    errors: 0,
    delivered: 0,
    effected: 0,
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
    const fe = m.effects[0];
    if (fe) {
      const eb = at(fe.t);
      if (eb) eb.effected++;
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
      effected: b.effected,
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
  const steadyAfter = (f: { endedAt: number }): number | null => {
    const first = Math.max(0, Math.floor((f.endedAt - startedAt) / windowMs));
    for (let i = first; i < windows.length; i++) {
      const run = windows.slice(i, i + need);
      if (startedAt + i * windowMs > lastPublish) break;
      if (run.length > 0 && run.every(steady)) return Math.max(0, startedAt + i * windowMs - f.endedAt);
    }
    return null;
  };

  const workloadStreams = [...new Set(acked.filter((m) => !m.poison).map((m) => m.firstAck?.stream ?? ""))]
    .filter(Boolean)
    .sort();
  const good = all.filter((m) => !m.poison);
  const recoveries: Recovery[] = faults.map((f) => {
    const after = good.filter((m) => m.firstAttempt >= f.startedAt);
    const firstEffect = (ms: MessageFacts[]) => {
      const ts = ms.flatMap((m) => (m.effects[0] ? [m.effects[0].t] : []));
      return ts.length > 0 ? Math.min(...ts) - f.startedAt : null;
    };
    const firstAck = (ms: MessageFacts[]) => {
      const ts = ms.flatMap((m) => (m.firstAck ? [m.firstAck.t] : []));
      return ts.length > 0 ? Math.min(...ts) - f.startedAt : null;
    };
    const recoveryMs = firstEffect(after);
    const firstAckMs = firstAck(after);
    const horizon = recoveryMs !== null ? f.startedAt + recoveryMs : endedAt;
    const leadership = [...leaders.entries()]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([group, samples]) =>
        leadershipAround(group, samples, f.startedAt, horizon, Math.max(horizon, f.endedAt)),
      );
    const polled = leadership.filter((l) => l.leaderBackMs !== null);
    const broker = polled.reduce<LeadershipAround | undefined>(
      (best, l) => (!best || (l.leaderBackMs ?? 0) > (best.leaderBackMs ?? 0) ? l : best),
      undefined,
    );
    const brokerMs = broker ? (broker.leaderBackMs ?? 0) : null;
    const sdkShareMs = recoveryMs !== null && brokerMs !== null ? Math.max(0, recoveryMs - brokerMs) : null;
    const timeline: { atMs: number; what: string }[] = [
      { atMs: 0, what: `fault ${f.fault} starts (${f.action})` },
    ];
    if (f.endedAt > f.startedAt)
      timeline.push({ atMs: f.endedAt - f.startedAt, what: `fault ${f.fault} ends` });
    for (const s of steps)
      if (s.fault === f.fault) timeline.push({ atMs: s.t - f.startedAt, what: s.detail });
    for (const l of leadership) {
      for (const g of l.gaps)
        timeline.push({
          atMs: g.fromMs,
          what: `${l.group}: no leader${g.toMs === null ? " (still at the end)" : ""}`,
        });
      if (l.newLeader)
        timeline.push({ atMs: l.newLeader.atMs, what: `${l.group}: new leader ${l.newLeader.leader}` });
      else if (l.leaderBackMs !== null && l.leaderBackMs > 0)
        timeline.push({ atMs: l.leaderBackMs, what: `${l.group}: leader ${l.leaderBefore ?? "?"} back` });
    }
    if (firstAckMs !== null)
      timeline.push({ atMs: firstAckMs, what: "first ack of an event published after the fault started" });
    if (recoveryMs !== null)
      timeline.push({ atMs: recoveryMs, what: "first effect of an event published after the fault started" });
    timeline.sort((a, b) => a.atMs - b.atMs);
    return {
      ...f,
      recoveryMs,
      streams: workloadStreams.map((s) => {
        const mine = after.filter((m) => (m.firstAck?.stream ?? workloadStreams[0]) === s);
        return { stream: s, recoveryMs: firstEffect(mine), firstAckMs: firstAck(mine) };
      }),
      firstAckMs,
      leadership,
      brokerMs,
      ...(broker && brokerMs ? { brokerGroup: broker.group } : {}),
      sdkShareMs,
      steadyAfterEndMs: steadyAfter(f),
      timeline,
    };
  });

  const pubAll = acked.map((m) => m.firstAck?.latencyMs ?? 0);
  const e2eAll = all
    .filter((m) => m.firstDelivery !== undefined)
    .map((m) => (m.firstDelivery ?? 0) - m.firstAttempt);

  // Transactional outbox: every committed event is in the stream (once: dedup_holds), whatever
  // happened to the relays and the broker after the commit.
  const committed = sorted.flatMap((e) => (e.kind === "publish" && e.outbox ? [e] : []));
  const notRelayed: { id: string; key: string; committedAt: number; reason: string }[] =
    committed.length === 0
      ? []
      : streamRead === null || !(streamRead as { complete: boolean }).complete
        ? [
            {
              id: "-",
              key: "-",
              committedAt: 0,
              reason: "the stream could not be read to its end: committed events cannot be checked",
            },
          ]
        : committed
            .filter((e) => !storedById.has(e.id))
            .map((e) => ({
              id: e.id,
              key: e.key,
              committedAt: e.t - startedAt,
              reason: "committed to the outbox, not in the stream at the end",
            }));

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
      verdicts.push(verdict(inv, duplicatedEffects, "events effected more than once (across all processes)"));
    if (inv === "per_key_order")
      verdicts.push(
        verdict(inv, orderViolations, "effects after an effect of a later event of the same key"),
      );
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
    if (inv === "no_false_refusals")
      verdicts.push(verdict(inv, falseRefusals, "events refused to the producer that the stream stored"));
    if (inv === "recovery_within_budget")
      verdicts.push(
        verdict(
          inv,
          slowRecoveries(recoveries, opts.recoveryBudgetMs ?? 1500),
          `faults after which the SDKs took more than ${opts.recoveryBudgetMs ?? 1500} ms beyond the broker's own recovery to effect new events (or never did)`,
        ),
      );
    if (inv === "outbox_all_relayed")
      verdicts.push(
        verdict(inv, notRelayed, "events committed to the outbox and never stored in the stream"),
      );
  }

  const counts: CheckResult["counts"] = {
    attempted: all.length,
    acked: acked.length,
    failed: all.filter((m) => !m.firstAck).length,
    poison: poison.length,
    delivered: all.filter((m) => m.deliveries > 0).length,
    effected: all.filter((m) => m.effects.length > 0).length,
    effects: effects.length,
    deadLettered: all.filter((m) => m.dlq > 0).length,
    lost: lost.length,
    duplicatedEffects: duplicatedEffects.length,
    orderViolations: orderViolations.length,
    recovered: recovered.length,
    repeatsAcked,
    publishErrors,
    falseRefusals: falseRefusals.length,
    refusedNotStored: refusedNotStored.length,
    outcomeUnknownStored: unknownStored.length,
    outcomeUnknownNotStored: unknownNotStored.length,
    notEffected: notEffected.length,
    storeUnavailable,
    recordFailed,
  };
  const lists = {
    lost,
    duplicatedEffects,
    orderViolations,
    recovered,
    notEffected,
    dedupFailures,
    poisonEffected,
    poisonNotQuarantined,
    falseRefusals,
  };
  const findings = explain({ counts, ...lists, refusedNotStored, unknownStored, unknownNotStored, fullRead });

  return {
    counts,
    ...lists,
    outcomeUnknown: { stored: unknownStored, notStored: unknownNotStored },
    streamRead,
    windows,
    recoveries,
    latency: {
      publishP50: percentile(pubAll, 50),
      publishP99: percentile(pubAll, 99),
      e2eP50: percentile(e2eAll, 50),
      e2eP99: percentile(e2eAll, 99),
    },
    verdicts,
    findings,
    held: verdicts.every((v) => v.held),
    startedAt,
    endedAt,
  };
}

/** A group's leadership from `from` on; gaps until `until` (or the run's end when it never recovered). */
function leadershipAround(
  group: string,
  samples: { t: number; leader: string | null }[],
  from: number,
  horizon: number,
  until: number,
): LeadershipAround {
  const before = samples.filter((s) => s.t <= from).at(-1);
  // The leader the fault could take away: the last one seen up to its start (a kill is seen as
  // leaderless a moment before the fault is recorded as started, when the node is gone).
  const lastLeader = samples.filter((s) => s.t <= from && s.leader !== null).at(-1);
  const leaderBefore = lastLeader ? lastLeader.leader : before ? null : undefined;
  const gaps: { fromMs: number; toMs: number | null }[] = [];
  let state = before?.leader;
  let gapStart = state === null ? from : undefined;
  let newLeader: { leader: string; atMs: number } | undefined;
  for (const s of samples) {
    if (s.t <= from) continue;
    if (s.t > until && gapStart === undefined) break;
    if (s.leader === null && state !== null) gapStart = s.t;
    if (s.leader !== null) {
      if (gapStart !== undefined) {
        gaps.push({ fromMs: gapStart - from, toMs: s.t - from });
        gapStart = undefined;
      }
      if (!newLeader && s.leader !== leaderBefore) newLeader = { leader: s.leader, atMs: s.t - from };
    }
    state = s.leader;
  }
  if (gapStart !== undefined) gaps.push({ fromMs: gapStart - from, toMs: null });
  const first = gaps.find((g) => g.fromMs <= horizon - from);
  const leaderBackMs = samples.length === 0 ? null : first ? first.toMs : 0;
  const leaderlessMs = gaps.reduce(
    (sum, g) => sum + Math.max(0, Math.min(g.toMs ?? until - from, until - from) - g.fromMs),
    0,
  );
  return {
    group,
    leaderBefore,
    leaderBackMs,
    leaderlessMs,
    gaps,
    ...(newLeader ? { newLeader } : {}),
  };
}

const tally = (xs: string[]) => {
  const m = new Map<string, number>();
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1);
  return [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${n} × ${k}`)
    .join("; ");
};

/** One finding per non-zero count, saying what it means and what the history says caused it. */
function explain(x: {
  counts: CheckResult["counts"];
  lost: CheckResult["lost"];
  duplicatedEffects: DuplicateEffect[];
  orderViolations: OrderViolation[];
  recovered: CheckResult["recovered"];
  notEffected: CheckResult["notEffected"];
  dedupFailures: CheckResult["dedupFailures"];
  poisonEffected: { id: string }[];
  poisonNotQuarantined: { id: string }[];
  falseRefusals: Refusal[];
  refusedNotStored: Refusal[];
  unknownStored: Refusal[];
  unknownNotStored: Refusal[];
  fullRead: boolean;
}): Finding[] {
  const out: Finding[] = [];
  const add = (count: string, items: unknown[], text: string) => {
    if (items.length > 0) out.push({ count, n: items.length, text, examples: items.slice(0, 5) });
  };
  add(
    "lost",
    x.lost,
    `acknowledged by the broker to the producer, never effected, and ${x.fullRead ? "absent from the stream read at the end" : "not found at its sequence"}: gone. Reasons: ${tally(x.lost.map((l) => l.reason.replace(/[0-9a-f-]{36}\S*/g, "<id>").replace(/\d+/g, "n")))}`,
  );
  add(
    "duplicatedEffects",
    x.duplicatedEffects,
    `events whose effect line appears more than once across all effect files (${x.duplicatedEffects.reduce((s, d) => s + d.effects, 0)} lines for ${x.duplicatedEffects.length} events). Causes: ${tally(
      x.duplicatedEffects.map((d) =>
        d.cause
          .replace(/pid \d+/g, "pid n")
          .replace(/delivery \d+/g, "delivery n")
          .replace(/consumer-\d+/g, "consumer-n"),
      ),
    )}`,
  );
  add(
    "orderViolations",
    x.orderViolations,
    `effects of a key's sequence n after an effect of a later sequence m > n in the merged effect log (${x.orderViolations.filter((v) => v.rerun).length} of them re-runs, also counted as duplicates; ${new Set(x.orderViolations.map((v) => v.key)).size} keys). Causes: ${tally(x.orderViolations.map((v) => v.cause.replace(/\d+/g, "n")))}`,
  );
  add(
    "falseRefusals",
    x.falseRefusals,
    `the producer's final answer was a refusal or failure code, yet the stream holds the event (it was stored and the caller was told otherwise). Codes: ${tally(x.falseRefusals.map((r) => r.code))}`,
  );
  add(
    "refusedNotStored",
    x.refusedNotStored,
    `refused or failed and indeed not stored (an honest answer). Codes: ${tally(x.refusedNotStored.map((r) => r.code))}`,
  );
  const unknown = [...x.unknownStored, ...x.unknownNotStored];
  add(
    "outcomeUnknown",
    unknown,
    `the producer said the outcome is unknown (may be stored), never a refusal: stored ${x.unknownStored.length} / not stored ${x.unknownNotStored.length}. A service republishing with the same id would get "duplicate" for the stored ones.`,
  );
  add(
    "recovered",
    x.recovered,
    "stored although the publish was never acknowledged (the ack was lost in the fault); a retry with the same id is deduplicated.",
  );
  add(
    "notEffected",
    x.notEffected,
    `acknowledged and still in the stream, but not effected by the end of the drain (${x.notEffected.filter((n) => n.delivered).length} were delivered at least once): raise the drain, or the consumer is stuck.`,
  );
  add(
    "dedupFailures",
    x.dedupFailures,
    "one message id stored under more than one stream sequence: a retry outside the duplicate window, or deduplication failed across a leader change.",
  );
  add("poisonEffected", x.poisonEffected, "poison messages whose handler effect ran.");
  add(
    "poisonNotQuarantined",
    x.poisonNotQuarantined,
    "poison messages acknowledged by the stream but never dead-lettered.",
  );
  if (x.counts.storeUnavailable > 0)
    out.push({
      count: "storeUnavailable",
      n: x.counts.storeUnavailable,
      text: "deliveries the consumer SDK could not look up in its idempotency store: nak'd and retried later.",
      examples: [],
    });
  if (x.counts.recordFailed > 0)
    out.push({
      count: "recordFailed",
      n: x.counts.recordFailed,
      text: "effects the consumer SDK could not record in its idempotency store (the effect happened, the record did not): a redelivery of those runs the handler again.",
      examples: [],
    });
  if (x.counts.failed > 0)
    out.push({
      count: "failed",
      n: x.counts.failed,
      text: "events never acknowledged after every attempt (see the refusals and unknown outcomes above for what the stream holds of them).",
      examples: [],
    });
  return out;
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

/**
 * The faults whose recovery broke the budget: no event published after the fault started was
 * effected by the end, or the SDKs' share (recovery minus the broker's leaderless time; all of the
 * recovery when no Raft group was polled) is over `budgetMs`.
 */
function slowRecoveries(
  recoveries: readonly Recovery[],
  budgetMs: number,
): { fault: string; recoveryMs: number | null; brokerMs: number | null; sdkShareMs: number | null }[] {
  return recoveries
    .map((r) => ({
      fault: r.fault,
      recoveryMs: r.recoveryMs,
      brokerMs: r.brokerMs,
      sdkShareMs: r.recoveryMs === null ? null : (r.sdkShareMs ?? r.recoveryMs),
    }))
    .filter((r) => r.sdkShareMs === null || r.sdkShareMs > budgetMs);
}
