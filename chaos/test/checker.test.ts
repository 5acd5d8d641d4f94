import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkHistory, type HistoryEvent, sequencesToVerify } from "../src/index.js";

/** A clean history: n messages on two keys, each published, acked, delivered and effected once, in order. */
function clean(n: number, t0 = 1_000_000): HistoryEvent[] {
  const out: HistoryEvent[] = [];
  for (let i = 1; i <= n; i++) {
    const t = t0 + i * 20;
    const id = `m${i}`;
    const key = i % 2 === 0 ? "a" : "b";
    out.push({ t, kind: "publish", id, key, subject: "order.fulfillment.started", attempt: 1 });
    out.push({ t: t + 3, kind: "ack", id, key, seq: i, stream: "ORDER", duplicate: false, latencyMs: 3 });
    out.push({ t: t + 5, kind: "delivery", id, key, seq: i, delivery: 1, consumer: "c" });
    out.push({ t: t + 6, kind: "effect", id, key, seq: i, consumer: "c" });
  }
  return out;
}

const idOf = (e: HistoryEvent) => ("id" in e ? e.id : undefined);
const verdict = (r: ReturnType<typeof checkHistory>, inv: string) =>
  r.verdicts.find((v) => v.invariant === inv);

describe("checkHistory", () => {
  it("passes a clean history with every invariant held", () => {
    const r = checkHistory(clean(200));
    assert.equal(r.held, true);
    assert.equal(r.counts.acked, 200);
    assert.equal(r.counts.effected, 200);
    assert.equal(r.counts.lost, 0);
    assert.ok(r.windows.length >= 4);
    assert.equal(r.latency.publishP99, 3);
  });

  it("finds an acked message that was never delivered and is not in the stream", () => {
    const h = clean(20).filter((e) => !(idOf(e) === "m7" && (e.kind === "delivery" || e.kind === "effect")));
    assert.deepEqual(sequencesToVerify(h), [7]);
    const r = checkHistory(h, { stream: new Map([[7, null]]) });
    assert.equal(verdict(r, "no_acked_lost")?.held, false);
    assert.equal(r.lost[0]?.id, "m7");
    assert.match(r.lost[0]?.reason ?? "", /not in the stream/);
    // Still stored: not lost, only not effected.
    const stored = checkHistory(h, { stream: new Map([[7, "m7"]]) });
    assert.equal(verdict(stored, "no_acked_lost")?.held, true);
    assert.equal(verdict(stored, "all_acked_effected")?.held, false);
    // A different message at that sequence is a loss too.
    const other = checkHistory(h, { stream: new Map([[7, "zz"]]) });
    assert.match(other.lost[0]?.reason ?? "", /holds zz/);
  });

  it("finds a duplicated effect", () => {
    const h = clean(10);
    h.push({ t: 2_000_000, kind: "delivery", id: "m3", key: "b", seq: 3, delivery: 2, consumer: "c" });
    h.push({ t: 2_000_001, kind: "effect", id: "m3", key: "b", seq: 3, consumer: "c" });
    const r = checkHistory(h);
    assert.equal(verdict(r, "no_duplicate_effects")?.held, false);
    assert.deepEqual(r.duplicatedEffects, [{ id: "m3", effects: 2 }]);
  });

  it("counts a handler re-run absorbed by the idempotent effect, without calling it a duplicate", () => {
    const h = clean(10);
    h.push({ t: 2_000_000, kind: "delivery", id: "m4", key: "a", seq: 4, delivery: 2, consumer: "c" });
    h.push({ t: 2_000_001, kind: "skip", id: "m4", key: "a", seq: 4, reason: "effect_exists" });
    const r = checkHistory(h);
    assert.equal(r.counts.rerunsAbsorbed, 1);
    assert.equal(r.counts.duplicatedEffects, 0);
    assert.equal(r.held, true);
  });

  it("finds a per-key order violation and ignores order across keys", () => {
    const h = clean(10).map((e) => (e.kind === "effect" && idOf(e) === "m4" ? { ...e, t: e.t + 1000 } : e));
    const r = checkHistory(h);
    assert.equal(verdict(r, "per_key_order")?.held, false);
    assert.deepEqual(r.orderViolations[0], { key: "a", seq: 4, after: 10 });
  });

  it("reports a message stored without an ack as recovered, not as a failure", () => {
    const h = clean(10).filter((e) => !(e.kind === "ack" && idOf(e) === "m5"));
    h.push({
      t: 1_000_101,
      kind: "publish_error",
      id: "m5",
      key: "b",
      attempt: 1,
      error: "timeout",
      final: true,
    });
    const r = checkHistory(h);
    assert.equal(r.counts.recovered, 1);
    assert.equal(r.counts.failed, 1);
    assert.equal(r.held, true);
  });

  it("finds a message id stored under two sequences (deduplication failed)", () => {
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
    const r = checkHistory(h);
    assert.equal(verdict(r, "dedup_holds")?.held, false);
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

  it("measures the time from a fault's end to steady state", () => {
    // 10 s at 50/s; a fault from 3 s to 5 s makes publishes fail and latency soar until 6 s.
    const h: HistoryEvent[] = [];
    const t0 = 5_000_000;
    for (let i = 0; i < 500; i++) {
      const t = t0 + i * 20;
      const id = `m${i}`;
      h.push({ t, kind: "publish", id, key: "k", subject: "s", attempt: 1 });
      const bad = t >= t0 + 3000 && t < t0 + 6000;
      if (bad)
        h.push({ t: t + 5, kind: "publish_error", id, key: "k", attempt: 1, error: "timeout", final: false });
      const lat = bad ? 2000 : 4;
      h.push({
        t: t + lat,
        kind: "ack",
        id,
        key: "k",
        seq: i + 1,
        stream: "S",
        duplicate: false,
        latencyMs: lat,
      });
    }
    h.push({ t: t0 + 3000, kind: "fault_start", fault: "f", action: "kill" });
    h.push({ t: t0 + 5000, kind: "fault_end", fault: "f", action: "kill" });
    const r = checkHistory(h, { invariants: [] });
    assert.equal(r.recoveries.length, 1);
    assert.equal(r.recoveries[0]?.recoveryMs, 1000);
    assert.ok(r.windows.some((w) => w.fault && w.errors > 0));
  });
});
