import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { after, describe, it } from "node:test";
import type { DrillReport } from "../src/index.js";
import { assertNothingLeft, drillRunner } from "./support.js";

const { run, cleanup } = drillRunner();

/** The verdict of one invariant. */
const held = (r: DrillReport, invariant: string) =>
  r.check.verdicts.find((v) => v.invariant === invariant)?.held;

/** Every invariant named held; the failure message is the whole report. */
async function assertHeld(r: DrillReport, invariants: string[]): Promise<void> {
  for (const inv of invariants)
    assert.equal(held(r, inv), true, `${inv}: ${await readFile(r.files.markdown, "utf8")}`);
}

/** What no drill may break, whatever the consumer does. */
const BROKER_AND_PRODUCER = ["no_acked_lost", "dedup_holds", "all_acked_effected", "no_false_refusals"];

/**
 * What a drill showed that is not asserted today (known SDK gaps being fixed), printed with the
 * test so a run shows it; the report's findings say why.
 */
function report(t: { diagnostic: (m: string) => void }, r: DrillReport): void {
  const c = r.check.counts;
  t.diagnostic(
    `${r.drill.name}: ${r.outcome.toUpperCase()}; duplicated ${c.duplicatedEffects}, order violations ${c.orderViolations}, lost ${c.lost}, false refusals ${c.falseRefusals}, recovery ${r.check.recoveries.map((x) => x.recoveryMs).join("/")} ms; report ${r.files.markdown}`,
  );
  for (const f of r.check.findings) t.diagnostic(`  ${f.count} (${f.n}): ${f.text.slice(0, 400)}`);
}

describe("drills that can fail, on a real 3-node cluster", () => {
  after(cleanup);

  it("negative-control: a consumer without idempotency killed after its effect MUST be VIOLATED with duplicates", async (t) => {
    // Under a seed other than the file's (the run's --seed): it must fail whatever the schedule.
    const r = await run("negative-control", { seed: "negative-control-other-seed" });
    report(t, r);
    assert.equal(r.drill.seed, "negative-control-other-seed", "the report names the seed it ran with");
    const c = r.check.counts;
    assert.equal(r.outcome, "violated", await readFile(r.files.markdown, "utf8"));
    assert.equal(held(r, "no_duplicate_effects"), false);
    assert.ok(c.duplicatedEffects > 0, "the checker did not see the re-run effects");
    assert.ok(c.effects > c.effected, "the effect files hold more lines than events");
    // Each duplicate is explained by a crash of the process that wrote the first effect.
    // (The cause names the crash knob, or the process's exit with the knob's SIGKILL when the
    // exit line reached the history first.)
    for (const d of r.check.duplicatedEffects)
      assert.match(d.cause, /killed right after the effect|exited \(SIGKILL right after the effect/);
    assert.ok(r.faults.filter((f) => /killed itself/.test(f.detail)).length >= 2, JSON.stringify(r.faults));
    // What must still hold while the consumer breaks exactly-once: nothing acked is lost.
    assert.equal(held(r, "no_acked_lost"), true);
    assert.equal(held(r, "all_acked_effected"), true);
    const md = await readFile(r.files.markdown, "utf8");
    assert.match(md, /\*\*duplicatedEffects\*\* \(\d+\): events whose effect line appears more than once/);
    const html = await readFile(r.files.html, "utf8");
    assert.match(html, /aria-label="timeline of crash-after-effect#1"/);
    assert.match(html, /<b>duplicatedEffects<\/b>/);
    await assertNothingLeft(r);
  });

  it("consumer-kill-mid-handler: two competing processes killed after an effect lose nothing (duplicates and order reported)", async (t) => {
    const r = await run("consumer-kill-mid-handler");
    report(t, r);
    assert.ok(
      !["error", "aborted", "not_steady"].includes(r.outcome),
      `${r.outcome}: ${r.error ?? r.abortReason}`,
    );
    assert.equal(r.files.effects.length, 2, "one effect file per consumer process");
    assert.ok(r.faults.filter((f) => /killed itself/.test(f.detail)).length >= 2, JSON.stringify(r.faults));
    await assertHeld(r, BROKER_AND_PRODUCER);
    // Both processes effected events: the durable was shared.
    for (const f of r.files.effects) assert.ok((await readFile(f, "utf8")).length > 0, `${f} is empty`);
    // Not asserted yet, printed above and explained in the report: no_duplicate_effects (a process
    // killed between its effect and the SDK's record runs it again on redelivery) and per_key_order
    // (competing consumers keep a key's order per process only). Assert outcome "held" here once
    // the consumer SDK closes both.
    await assertNothingLeft(r);
  });

  it("idempotency-store-outage: the store's leader frozen, no effect twice and nothing acked lost", async (t) => {
    const r = await run("idempotency-store-outage");
    report(t, r);
    assert.equal(r.faults[0]?.status, "done", JSON.stringify(r.faults));
    assert.match(r.faults[0]?.detail ?? "", /SIGSTOP n\d, the leader of KV_jetkit_chaos_idempotency/);
    const kv = r.check.recoveries[0]?.leadership.find(
      (l) => l.group === "stream:KV_jetkit_chaos_idempotency",
    );
    // The store was really gone: its stream had no reachable leader for most of the 5 s freeze.
    assert.ok(
      (kv?.leaderlessMs ?? 0) >= 2000,
      `the store stayed up: ${await readFile(r.files.markdown, "utf8")}`,
    );
    await assertHeld(r, [...BROKER_AND_PRODUCER, "no_duplicate_effects"]);
    assert.equal(r.outcome, "held", await readFile(r.files.markdown, "utf8"));
    await assertNothingLeft(r);
  });

  it("rolling-restart-per-key: every node through lame duck and back, nothing lost, nothing effected twice, each key in order", async (t) => {
    const r = await run("rolling-restart-per-key");
    report(t, r);
    assert.equal(r.faults[0]?.status, "done", JSON.stringify(r.faults));
    const steps = r.check.recoveries[0]?.timeline.map((x) => x.what) ?? [];
    for (const n of ["n1", "n2", "n3"]) {
      assert.ok(
        steps.includes(`${n}: lame duck (SIGUSR2)`),
        `${n} not put in lame duck: ${steps.join(" | ")}`,
      );
      assert.ok(steps.includes(`${n}: healthy`), `${n} not back: ${steps.join(" | ")}`);
    }
    // The consumer is a partitioned group member: it reads the stream in order from its
    // checkpoints, so no delivery lost while a node goes down can come back behind its key's later
    // events (with a durable, one did after the ack wait in 1 of 3 runs).
    await assertHeld(r, [
      ...BROKER_AND_PRODUCER,
      "no_duplicate_effects",
      "per_key_order",
      "recovery_within_budget",
    ]);
    assert.equal(r.outcome, "held", await readFile(r.files.markdown, "utf8"));
    await assertNothingLeft(r);
  });

  it("group-kill-mid-handler: a partitioned group killed right after committed effects: each event once, each key in order", async (t) => {
    const r = await run("group-kill-mid-handler");
    report(t, r);
    assert.ok(r.faults.filter((f) => /killed itself/.test(f.detail)).length >= 2, JSON.stringify(r.faults));
    // The crashed deliveries were replayed by the next owner of their partition and skipped by the
    // inbox (their effect was committed): the history shows the skips.
    const history = await readFile(r.files.history, "utf8");
    assert.ok(/"kind":"skip"/.test(history), "no replayed delivery was skipped: the crashes hit nothing");
    await assertHeld(r, [...BROKER_AND_PRODUCER, "no_duplicate_effects", "per_key_order"]);
    assert.equal(r.outcome, "held", await readFile(r.files.markdown, "utf8"));
    await assertNothingLeft(r);
  });

  it("outbox-relay-crash: the active relay killed twice and the stream leader once: every committed event stored once, effected once, each key in order", async (t) => {
    const r = await run("outbox-relay-crash");
    report(t, r);
    const kills = r.faults.filter((f) => f.action === "relay_crash");
    assert.equal(kills.length, 2, JSON.stringify(r.faults));
    for (const k of kills) assert.match(k.detail, /kill -9 outbox relay relay-\d pid \d+/);
    // The relays really republished rows they had sent and not marked (dropped by the stream).
    const history = await readFile(r.files.history, "utf8");
    assert.ok(
      /"kind":"ack"[^\n]*"duplicate":true/.test(history),
      "no relay republished anything: the kills hit nothing",
    );
    await assertHeld(r, [
      "outbox_all_relayed",
      "no_acked_lost",
      "dedup_holds",
      "no_duplicate_effects",
      "per_key_order",
      "all_acked_effected",
    ]);
    assert.equal(r.outcome, "held", await readFile(r.files.markdown, "utf8"));
    await assertNothingLeft(r);
  });

  // leader-kill-group ran 14 s once and its after-probe window fell inside the broker's own
  // election (error rate 0.278, nothing lost or repeated); it now runs 20 s (see the drill file).
  for (const name of ["leader-kill-group", "broker-pause-group"]) {
    it(`${name}: the stream leader frozen under a partitioned group: nothing lost, each event once, each key in order`, async (t) => {
      const r = await run(name);
      report(t, r);
      assert.equal(r.faults[0]?.status, "done", JSON.stringify(r.faults));
      await assertHeld(r, [
        ...BROKER_AND_PRODUCER,
        "no_duplicate_effects",
        "per_key_order",
        "recovery_within_budget",
      ]);
      assert.equal(r.outcome, "held", await readFile(r.files.markdown, "utf8"));
      await assertNothingLeft(r);
    });
  }

  it("group-member-hang: a member hung past its lease and resumed touches nothing it lost; each event once, in order", async (t) => {
    const r = await run("group-member-hang");
    report(t, r);
    assert.deepEqual(
      r.faults.map((f) => f.status),
      ["done", "done"],
      JSON.stringify(r.faults),
    );
    assert.match(r.faults[0]?.detail ?? "", /SIGSTOP consumer-1/);
    await assertHeld(r, [...BROKER_AND_PRODUCER, "no_duplicate_effects", "per_key_order"]);
    assert.equal(r.outcome, "held", await readFile(r.files.markdown, "utf8"));
    await assertNothingLeft(r);
  });
});
