import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { isJetkitError } from "@jetkit/contracts";
import { listDrills, loadDrill, validateDrill } from "../src/index.js";

const DRILLS = fileURLToPath(new URL("../../drills", import.meta.url));

describe("drill files", () => {
  let dir: string | undefined;
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("every shipped drill validates (listed in file order)", async () => {
    const drills = await listDrills(DRILLS);
    assert.deepEqual(
      drills.map((d) => d.name),
      [
        "broker-pause-group",
        "broker-pause",
        "client-latency",
        "consumer-crash-loop",
        "consumer-kill-mid-handler",
        "group-kill-mid-handler",
        "group-member-hang",
        "idempotency-store-outage",
        "leader-kill-group",
        "leader-kill",
        "minority-partition",
        "negative-control",
        "outbox-relay-crash",
        "poison-storm",
        "rolling-restart-per-key",
        "rolling-restart",
        "slow-consumer",
      ],
    );
    for (const d of drills) assert.deepEqual(d.problems, [], d.name);
  });

  it("every drill that asks for per-key ordering requires per-key order", async () => {
    for (const d of await listDrills(DRILLS)) {
      const drill = await loadDrill(d.file);
      if (drill.workload.consumer.ordering === "per-key")
        assert.ok(
          drill.invariants.includes("per_key_order"),
          `${drill.name} orders per key but does not require it`,
        );
    }
  });

  it("reads the crash knob, consumer processes and lame-duck restarts", async () => {
    const mid = await loadDrill(join(DRILLS, "consumer-kill-mid-handler.yaml"));
    assert.equal(mid.workload.consumer.processes, 2);
    assert.equal(mid.workload.consumer.group, "competing");
    assert.deepEqual(
      [mid.faults[0]?.action, mid.faults[0]?.point, mid.faults[0]?.consumer],
      ["consumer_crash", "after_effect", "random"],
    );
    const neg = await loadDrill(join(DRILLS, "negative-control.yaml"));
    assert.equal(neg.workload.consumer.idempotency, false);
    assert.ok(neg.invariants.includes("no_duplicate_effects"));
    const roll = await loadDrill(join(DRILLS, "rolling-restart-per-key.yaml"));
    assert.deepEqual([roll.faults[0]?.shutdown, roll.faults[0]?.lameDuckMs], ["lame_duck", 1500]);
  });

  it("fills defaults and parses durations", async () => {
    const d = await loadDrill(join(DRILLS, "client-latency.yaml"));
    assert.equal(d.workload.durationMs, 14_000);
    assert.equal(d.faults[0]?.atMs, 4000);
    assert.deepEqual(d.faults[0]?.toxic, {
      type: "latency",
      direction: "both",
      toxicity: 1,
      attributes: { latency: 200, jitter: 50 },
    });
    assert.equal(d.workload.consumer.idempotency, true);
  });

  it("names the path of every bad field and what is allowed", async () => {
    dir = await mkdtemp(join(tmpdir(), "jetkit-drill-test-"));
    const file = join(dir, "bad.yaml");
    await writeFile(
      file,
      [
        "name: Bad Name",
        "description: x",
        "workload: { duration: 10 parsecs, rate: -1, consumer: { ackWait: 500ms, idempotency: false, processes: 9 } }",
        "faults:",
        "  - { action: explode, at: 5s }",
        "  - { action: toxic, at: 1s, for: 2s, toxic: { type: latency, attributes: { latncy: 5 } } }",
        "  - { action: partition, at: 5s, for: 2s, nodes: [n1, n2] }",
        "  - { action: consumer_crash, at: 5s, point: later, consumer: consumer-3 }",
        "  - { action: rolling_restart, at: 5s, lameDuck: 2s }",
        "  - { action: store_outage, at: 5s }",
        "invariants: [no_acked_lost, everything_fine, per_key_order]",
        "extra: 1",
      ].join("\n"),
    );
    const res = await validateDrill(file);
    assert.equal(res.valid, false);
    const paths = res.problems.map((p) => p.path);
    for (const p of [
      "name",
      "workload.duration",
      "workload.rate",
      "faults[0].action",
      "faults[1].at",
      "faults[1].toxic.attributes.latncy",
      "faults[2].nodes",
      "invariants[1]",
      "extra",
      "workload.consumer.ordering",
      "workload.consumer.ackWait",
      "workload.consumer.processes",
      "faults[3].point",
      "faults[3].consumer",
      "faults[4].lameDuck",
      "faults[5].for",
      "faults[5].action",
    ]) {
      assert.ok(paths.includes(p), `missing problem at ${p}: ${JSON.stringify(res.problems)}`);
    }
    assert.match(
      res.problems.find((p) => p.path === "faults[0].action")?.message ?? "",
      /one of: kill, terminate/,
    );
    await assert.rejects(loadDrill(file), (err: unknown) => isJetkitError(err, "JK_DRILL_INVALID"));
    await writeFile(file, "name: [unclosed");
    await assert.rejects(loadDrill(file), (err: unknown) => isJetkitError(err, "JK_DRILL_UNREADABLE"));
    await assert.rejects(listDrills(join(dir, "nope")), (err: unknown) => isJetkitError(err, "JK_DRILL_DIR"));
  });
});
