import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { checkHistory, type HistoryEvent, sequencesToVerify } from "../src/index.js";
import { EffectLog, effectFile, readEffectLogs } from "../src/workload/effect-log.js";

/**
 * A clean history: n events on two keys (key sequence 1, 2, ... per key), each published, acked,
 * delivered and effected once, in order, by one process; the stream read at the end holds all.
 */
function clean(n: number, t0 = 1_000_000): HistoryEvent[] {
  const out: HistoryEvent[] = [];
  const next = { a: 0, b: 0 };
  for (let i = 1; i <= n; i++) {
    const t = t0 + i * 20;
    const id = `m${i}`;
    const key = i % 2 === 0 ? "a" : "b";
    const pseq = ++next[key];
    out.push({ t, kind: "publish", id, key, subject: "order.fulfillment.started", attempt: 1, pseq });
    out.push({ t: t + 3, kind: "ack", id, key, seq: i, stream: "ORDER", duplicate: false, latencyMs: 3 });
    out.push({ t: t + 5, kind: "delivery", id, key, seq: i, delivery: 1, consumer: "consumer-1" });
    out.push(effect(t + 6, id, key, pseq, i, "consumer-1"));
  }
  out.push(...readAll(out));
  return out;
}

/** An effect line as read from an effect file; `mono` follows the wall clock unless given. */
function effect(
  t: number,
  id: string,
  key: string,
  pseq: number,
  seq: number,
  consumer: string,
  more: { delivery?: number; pid?: number; mono?: bigint } = {},
): HistoryEvent {
  return {
    t,
    kind: "effect",
    id,
    key,
    seq,
    pseq,
    consumer,
    pid: more.pid ?? 100,
    delivery: more.delivery ?? 1,
    mono: String(more.mono ?? BigInt(t) * 1_000_000n),
  };
}

/** The stream read at the end: every acked sequence holds its event (overrides drop or replace). */
function readAll(h: HistoryEvent[], overrides: Map<number, string | null> = new Map()): HistoryEvent[] {
  const bySeq = new Map<number, string>();
  for (const e of h) if (e.kind === "ack") bySeq.set(e.seq, e.id);
  for (const [seq, id] of overrides) {
    if (id === null) bySeq.delete(seq);
    else bySeq.set(seq, id);
  }
  const t = Math.max(...h.map((e) => e.t)) + 1000;
  const seqs = [...bySeq.keys()].sort((a, b) => a - b);
  return [
    {
      t,
      kind: "stream_read",
      stream: "ORDER",
      firstSeq: seqs[0] ?? 0,
      lastSeq: seqs.at(-1) ?? 0,
      messages: seqs.length,
      complete: true,
    },
    ...seqs.map(
      (seq): HistoryEvent => ({ t, kind: "stored", stream: "ORDER", seq, id: bySeq.get(seq) ?? "" }),
    ),
  ];
}

const withoutRead = (h: HistoryEvent[]): HistoryEvent[] =>
  h.filter((e) => e.kind !== "stored" && e.kind !== "stream_read");
const idOf = (e: HistoryEvent) => ("id" in e ? e.id : undefined);
const verdict = (r: ReturnType<typeof checkHistory>, inv: string) =>
  r.verdicts.find((v) => v.invariant === inv);

describe("checkHistory", () => {
  it("passes a clean history with every invariant held and nothing to explain", () => {
    const r = checkHistory(clean(200));
    assert.equal(r.held, true, JSON.stringify(r.findings));
    assert.equal(r.counts.acked, 200);
    assert.equal(r.counts.effected, 200);
    assert.equal(r.counts.effects, 200);
    assert.equal(r.counts.lost, 0);
    assert.deepEqual(r.findings, []);
    assert.equal(r.streamRead?.complete, true);
    assert.ok(r.windows.length >= 4);
    assert.equal(r.latency.publishP99, 3);
  });

  it("finds an acked event that was never effected and is not in the stream read at the end", () => {
    const base: HistoryEvent[] = withoutRead(clean(20)).filter(
      (e) => !(idOf(e) === "m7" && (e.kind === "delivery" || e.kind === "effect")),
    );
    assert.deepEqual(sequencesToVerify(base), [7]);
    const r = checkHistory([...base, ...readAll(base, new Map([[7, null]]))]);
    assert.equal(verdict(r, "no_acked_lost")?.held, false);
    assert.equal(r.lost[0]?.id, "m7");
    assert.match(r.lost[0]?.reason ?? "", /not in the stream/);
    assert.equal(r.findings.find((f) => f.count === "lost")?.n, 1);
    // Still stored: not lost, only not effected (liveness).
    const stored = checkHistory([...base, ...readAll(base)]);
    assert.equal(verdict(stored, "no_acked_lost")?.held, true);
    assert.equal(verdict(stored, "all_acked_effected")?.held, false);
    assert.match(stored.findings.find((f) => f.count === "notEffected")?.text ?? "", /not effected/);
    // A different event at that sequence is a loss too.
    const other = checkHistory([...base, ...readAll(base, new Map([[7, "zz"]]))]);
    assert.match(other.lost[0]?.reason ?? "", /holds zz/);
    // Sequences looked up one by one (no full read) still decide.
    const looked = checkHistory(base, { stream: new Map([[7, null]]) });
    assert.equal(looked.counts.lost, 1);
  });

  it("finds an effect that happened twice across two processes and says the first process was killed after it", () => {
    const h = clean(10);
    // consumer-1 (pid 100) effected m3 and killed itself before the ack; consumer-2 ran it again.
    h.push({
      t: 1_000_067,
      kind: "process",
      name: "consumer-1",
      event: "crash",
      pid: 100,
      detail: "SIGKILL right after the effect of m3 (seq 3, delivery 1), before the SDK recorded or acked it",
    });
    h.push({
      t: 1_000_068,
      kind: "process",
      name: "consumer-1",
      event: "exit",
      pid: 100,
      detail: "signal SIGKILL",
    });
    h.push(effect(1_003_000, "m3", "b", 2, 3, "consumer-2", { pid: 200, delivery: 2 }));
    const r = checkHistory(h);
    assert.equal(verdict(r, "no_duplicate_effects")?.held, false);
    assert.equal(r.duplicatedEffects.length, 1);
    const d = r.duplicatedEffects[0];
    assert.equal(d?.id, "m3");
    assert.equal(d?.effects, 2);
    assert.deepEqual(
      d?.by.map((b) => b.consumer),
      ["consumer-1", "consumer-2"],
    );
    assert.match(d?.cause ?? "", /killed right after the effect.*crash knob.*delivery 2 to consumer-2/);
    assert.match(r.findings.find((f) => f.count === "duplicatedEffects")?.text ?? "", /2 lines for 1 events/);
  });

  it("finds a per-key order violation across processes by the host's monotonic clock, not the wall clock", () => {
    const h: HistoryEvent[] = withoutRead(clean(6)).filter((e) => e.kind !== "effect");
    // Key a: events m2 (pseq 1), m4 (pseq 2), m6 (pseq 3). consumer-2 effects pseq 2 before consumer-1 effects pseq 1.
    // Wall clocks say otherwise (consumer-2's is behind), the monotonic clock is the truth.
    h.push(effect(1_000_100, "m4", "a", 2, 4, "consumer-2", { mono: 5_000n }));
    h.push(effect(1_000_090, "m2", "a", 1, 2, "consumer-1", { mono: 6_000n }));
    h.push(effect(1_000_200, "m6", "a", 3, 6, "consumer-1", { mono: 7_000n }));
    for (const [id, pseq, seq] of [
      ["m1", 1, 1],
      ["m3", 2, 3],
      ["m5", 3, 5],
    ] as const)
      h.push(effect(1_000_000 + seq * 30, id, "b", pseq, seq, "consumer-1", { mono: BigInt(seq) }));
    h.push(...readAll(h));
    const r = checkHistory(h);
    assert.equal(verdict(r, "per_key_order")?.held, false);
    assert.equal(r.orderViolations.length, 1);
    const v = r.orderViolations[0];
    assert.equal(v?.key, "a");
    assert.equal(v?.seq, 1);
    assert.equal(v?.after, 2);
    assert.equal(v?.rerun, false);
    assert.match(v?.cause ?? "", /two processes held the key at once/);
    // The same effects in wall-clock order would hide it: the clock used matters.
    const byWall: HistoryEvent[] = h.map((e) =>
      e.kind === "effect" ? { ...e, mono: String(BigInt(e.t) * 1000n) } : e,
    );
    assert.equal(checkHistory(byWall).counts.orderViolations, 0);
  });

  it("says when a redelivery overtaken by a later event of its key had never reached a handler before", () => {
    // m4 (key a, pseq 2): delivery 1 never reached the handler; delivery 2 came after m6 (pseq 3).
    const h = withoutRead(clean(6)).filter(
      (e) => !(idOf(e) === "m4" && (e.kind === "delivery" || e.kind === "effect")),
    );
    h.push({
      t: 1_002_000,
      kind: "delivery",
      id: "m4",
      key: "a",
      seq: 4,
      delivery: 2,
      consumer: "consumer-1",
    });
    h.push(effect(1_002_001, "m4", "a", 2, 4, "consumer-1", { delivery: 2 }));
    h.push(...readAll(h));
    const v = checkHistory(h).orderViolations;
    assert.equal(v.length, 1);
    assert.match(v[0]?.cause ?? "", /redelivered \(delivery 2\).*never reached a handler/);
  });

  it("counts a re-run of an older event after a newer one as an order violation and a duplicate", () => {
    const h = clean(10);
    h.push(effect(1_005_000, "m4", "a", 2, 4, "consumer-1", { delivery: 2 }));
    const r = checkHistory(h);
    assert.equal(r.counts.duplicatedEffects, 1);
    assert.equal(r.counts.orderViolations, 1);
    assert.equal(r.orderViolations[0]?.rerun, true);
    assert.match(r.findings.find((f) => f.count === "orderViolations")?.text ?? "", /1 of them re-runs/);
  });

  it("finds a false refusal (JK_PRODUCER_REJECTED for a stored event) and reports unknown outcomes apart", () => {
    const h: HistoryEvent[] = withoutRead(clean(10)).filter(
      (e) => !(e.kind === "ack" && ["m5", "m6", "m7", "m8"].includes(idOf(e) ?? "")),
    );
    const fail = (id: string, key: string, error: string): HistoryEvent => ({
      t: 1_000_300,
      kind: "publish_error",
      id,
      key,
      attempt: 3,
      error,
      final: true,
    });
    h.push(
      fail("m5", "b", "JK_PRODUCER_REJECTED: duplicate message id is in process (JetStream error 10158)"),
    );
    h.push(fail("m6", "a", "JK_PRODUCER_REJECTED: maximum payload exceeded"));
    h.push(fail("m7", "b", "JK_PRODUCER_OUTCOME_UNKNOWN: no definite answer"));
    h.push(fail("m8", "a", "JK_PRODUCER_OUTCOME_UNKNOWN: no definite answer"));
    // m5 and m7 are stored (and effected); m6 and m8 are not (never delivered either).
    const rest: HistoryEvent[] = h.filter(
      (e) => !((e.kind === "effect" || e.kind === "delivery") && ["m6", "m8"].includes(idOf(e) ?? "")),
    );
    const stored = new Map<number, string | null>([
      [5, "m5"],
      [7, "m7"],
    ]);
    const r = checkHistory([...rest, ...readAll(rest, stored)]);
    assert.equal(verdict(r, "no_false_refusals")?.held, false);
    assert.deepEqual(
      r.falseRefusals.map((x) => [x.id, x.code, x.storedAt]),
      [["m5", "JK_PRODUCER_REJECTED", [5]]],
    );
    assert.equal(r.counts.refusedNotStored, 1);
    assert.equal(r.counts.outcomeUnknownStored, 1);
    assert.equal(r.counts.outcomeUnknownNotStored, 1);
    assert.equal(r.counts.recovered, 2, "m5 and m7 are stored without an ack");
    assert.match(
      r.findings.find((f) => f.count === "outcomeUnknown")?.text ?? "",
      /stored 1 \/ not stored 1/,
    );
    // Unknown outcomes alone are honest: no invariant fails for them.
    const honest = checkHistory(
      [
        ...rest.filter((e) => idOf(e) !== "m5"),
        ...readAll(
          rest,
          new Map([
            [7, "m7"],
            [5, null],
          ]),
        ),
      ],
      { invariants: ["no_false_refusals", "no_acked_lost", "no_duplicate_effects"] },
    );
    assert.equal(honest.held, true, JSON.stringify(honest.verdicts));
  });

  it("finds a message id stored under two sequences (deduplication failed), also when only the stream shows it", () => {
    const h = clean(10);
    h.push({
      t: 2_000_000,
      kind: "ack",
      id: "m2",
      key: "a",
      seq: 99,
      stream: "ORDER",
      duplicate: false,
      latencyMs: 2,
    });
    assert.equal(verdict(checkHistory(h), "dedup_holds")?.held, false);
    const fromStream = clean(10);
    fromStream.push({ t: 2_000_000, kind: "stored", stream: "ORDER", seq: 11, id: "m2" });
    assert.deepEqual(checkHistory(fromStream).dedupFailures, [{ id: "m2", seqs: [2, 11] }]);
  });

  it("finds poison that was effected or not dead-lettered", () => {
    const h = clean(4);
    const poison = (id: string, seq: number): HistoryEvent[] => [
      {
        t: 1_000_200,
        kind: "publish",
        id,
        key: "a",
        subject: "order.fulfillment.started",
        attempt: 1,
        poison: "undecodable",
      },
      { t: 1_000_201, kind: "ack", id, key: "a", seq, stream: "ORDER", duplicate: false, latencyMs: 1 },
      { t: 1_000_202, kind: "delivery", id, key: "a", seq, delivery: 1, consumer: "c" },
    ];
    h.push(...poison("p1", 5), {
      t: 1_000_203,
      kind: "dlq",
      id: "p1",
      key: "a",
      seq: 5,
      failureClass: "undecodable",
    });
    assert.equal(verdict(checkHistory(h), "poison_quarantined")?.held, true);
    h.push(...poison("p2", 6));
    const r = checkHistory(h);
    assert.equal(verdict(r, "poison_quarantined")?.held, false);
    assert.deepEqual(r.poisonNotQuarantined, [{ id: "p2" }]);
  });

  it("measures recovery from the fault's start to the first effect of an event published after it, split into the broker's leaderless time and the SDKs' share", () => {
    // 10 s at 50/s on key k. A fault from 3 s to 5 s: events published from 3 s on are acked
    // from 4.2 s and effected from 6 s (in order). The stream is leaderless from 3.05 s to 4.1 s.
    const h: HistoryEvent[] = [];
    const t0 = 5_000_000;
    for (let i = 0; i < 500; i++) {
      const t = t0 + i * 20;
      const id = `m${i}`;
      h.push({ t, kind: "publish", id, key: "k", subject: "s", attempt: 1, pseq: i + 1 });
      const bad = t >= t0 + 3000 && t < t0 + 6000;
      if (bad)
        h.push({ t: t + 5, kind: "publish_error", id, key: "k", attempt: 1, error: "timeout", final: false });
      const ackAt = bad ? Math.max(t + 4, t0 + 4200) : t + 4;
      h.push({
        t: ackAt,
        kind: "ack",
        id,
        key: "k",
        seq: i + 1,
        stream: "S",
        duplicate: false,
        latencyMs: ackAt - t,
      });
      h.push(
        effect(
          bad ? Math.max(ackAt + 1, t0 + 6000 + (i - 150)) : ackAt + 1,
          id,
          "k",
          i + 1,
          i + 1,
          "consumer-1",
        ),
      );
    }
    h.push({ t: t0 + 3000, kind: "fault_start", fault: "f", action: "kill" });
    h.push({ t: t0 + 5000, kind: "fault_end", fault: "f", action: "kill" });
    h.push({ t: t0 + 100, kind: "leader", group: "stream:S", leader: "n1" });
    h.push({ t: t0 + 3050, kind: "leader", group: "stream:S", leader: null, views: "n1: timeout" });
    h.push({ t: t0 + 4100, kind: "leader", group: "stream:S", leader: "n2" });
    h.push({ t: t0 + 100, kind: "leader", group: "consumer:S/d", leader: "n3" });
    const r = checkHistory(h, { invariants: [] });
    assert.equal(r.recoveries.length, 1);
    const rec = r.recoveries[0];
    // The first event published at or after 3 s is m150 (t0 + 3000); its effect is at t0 + 6000.
    assert.equal(rec?.recoveryMs, 3000);
    assert.equal(rec?.firstAckMs, 1200);
    const s = rec?.leadership.find((l) => l.group === "stream:S");
    assert.equal(s?.leaderBefore, "n1");
    assert.equal(s?.leaderBackMs, 1100);
    assert.equal(s?.leaderlessMs, 1050);
    assert.deepEqual(s?.newLeader, { leader: "n2", atMs: 1100 });
    assert.equal(rec?.brokerMs, 1100);
    assert.equal(rec?.brokerGroup, "stream:S");
    assert.equal(rec?.sdkShareMs, 3000 - 1100);
    const c = rec?.leadership.find((l) => l.group === "consumer:S/d");
    assert.equal(c?.leaderBackMs, 0, "the durable never lost its leader");
    assert.deepEqual(
      rec?.timeline.map((x) => x.what),
      [
        "fault f starts (kill)",
        "stream:S: no leader",
        "stream:S: new leader n2",
        "first ack of an event published after the fault started",
        "fault f ends",
        "first effect of an event published after the fault started",
      ],
    );
    // recovery_within_budget judges the SDKs' share (1900 ms here) against the drill's budget.
    const judged = (budget: number) =>
      checkHistory(h, { invariants: ["recovery_within_budget"], recoveryBudgetMs: budget }).verdicts[0];
    assert.equal(judged(1500)?.held, false);
    assert.deepEqual(judged(1500)?.examples, [
      { fault: "f", recoveryMs: 3000, brokerMs: 1100, sdkShareMs: 1900 },
    ]);
    assert.equal(judged(2000)?.held, true);
    // The older measure still exists: steady windows after the fault's end.
    assert.equal(rec?.steadyAfterEndMs, 1000);
    assert.ok(r.windows.some((w) => w.fault && w.errors > 0));
  });
});

describe("outbox_all_relayed", () => {
  it("is violated by an event committed to the outbox and never stored, held when every commit is in the stream", () => {
    const t = 1_000_000;
    const commit = (id: string, dt: number): HistoryEvent => ({
      t: t + dt,
      kind: "publish",
      id,
      key: "k",
      subject: "order.fulfillment.started",
      attempt: 1,
      pseq: 1,
      outbox: true,
    });
    const read = (ids: string[], complete = true): HistoryEvent[] => [
      ...ids.map((id, i): HistoryEvent => ({ t: t + 5000, kind: "stored", stream: "ORDER", seq: i + 1, id })),
      {
        t: t + 5000,
        kind: "stream_read",
        stream: "ORDER",
        firstSeq: 1,
        lastSeq: ids.length,
        messages: ids.length,
        complete,
      },
    ];
    const judged = (h: HistoryEvent[]) =>
      checkHistory(h, { invariants: ["outbox_all_relayed"] }).verdicts[0]!;
    const missing = judged([commit("a", 0), commit("b", 10), ...read(["a"])]);
    assert.equal(missing.held, false);
    assert.deepEqual(missing.examples, [
      { id: "b", key: "k", committedAt: 10, reason: "committed to the outbox, not in the stream at the end" },
    ]);
    assert.equal(judged([commit("a", 0), commit("b", 10), ...read(["a", "b"])]).held, true);
    // An incomplete read cannot vouch for the commits.
    assert.equal(judged([commit("a", 0), ...read(["a"], false)]).held, false);
    // Direct publishes are not outbox commits: nothing to relay.
    assert.equal(judged(read([])).held, true);
  });
});

describe("effect files", () => {
  it("keep every handler run of every process and merge them in the host's monotonic order", async () => {
    const dir = await mkdtemp(join(tmpdir(), "jetkit-effects-test-"));
    try {
      const one = new EffectLog(effectFile(dir, "consumer-1"));
      const two = new EffectLog(effectFile(dir, "consumer-2"));
      const line = (id: string, consumer: string, pid: number) => ({
        t: Date.now(),
        mono: process.hrtime.bigint().toString(),
        id,
        key: "k",
        pseq: 1,
        seq: 1,
        delivery: 1,
        consumer,
        pid,
      });
      one.append(line("e1", "consumer-1", 1));
      two.append(line("e1", "consumer-2", 2));
      one.append(line("e2", "consumer-1", 1));
      one.close();
      // A restarted process appends to the same file.
      const again = new EffectLog(effectFile(dir, "consumer-1"));
      again.append(line("e3", "consumer-1", 3));
      again.close();
      two.close();
      await writeFile(join(dir, "consumer-3.effects.jsonl"), '{"t":1,"mono":"1"\n');
      const { effects, unreadable } = await readEffectLogs(dir);
      assert.deepEqual(
        effects.map((e) => [e.id, e.consumer, e.pid]),
        [
          ["e1", "consumer-1", 1],
          ["e1", "consumer-2", 2],
          ["e2", "consumer-1", 1],
          ["e3", "consumer-1", 3],
        ],
      );
      assert.equal(unreadable, 1);
      const r = checkHistory(effects, { invariants: ["no_duplicate_effects"] });
      assert.equal(r.counts.duplicatedEffects, 1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
