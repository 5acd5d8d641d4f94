import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

const main = new URL("../src/main.js", import.meta.url).pathname;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

type DemoRecord = Record<string, unknown> & { kind: string; step?: string; ok?: boolean };

/** Runs `jetkit demo --short --json ...args` as a user would and parses its JSON lines. */
async function runDemo(
  args: string[],
): Promise<{ code: number | null; stderr: string; records: DemoRecord[] }> {
  const home = mkdtempSync(join(tmpdir(), "jetkit-demo-"));
  const out = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
    (resolve, reject) => {
      const child = spawn(process.execPath, [main, "demo", "--short", "--json", ...args], {
        env: { ...process.env, JETKIT_HOME: home },
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (c: Buffer) => {
        stdout += c.toString();
      });
      child.stderr.on("data", (c: Buffer) => {
        stderr += c.toString();
      });
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, stdout, stderr }));
    },
  );
  rmSync(home, { recursive: true, force: true });
  const records = out.stdout
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as DemoRecord);
  return { code: out.code, stderr: out.stderr, records };
}

test("the demo (short mode) shows the whole platform working and leaves nothing running", {
  timeout: 240_000,
}, async () => {
  const out = await runDemo([]);
  const records = out.records;
  const step = (name: string) => records.find((r) => r.kind === "step" && r.step === name);
  for (const name of [
    "nats",
    "streams",
    "gateway",
    "services",
    "gateway-allowed",
    "trace",
    "gateway-denied",
    "poison-dead-lettered",
    "refund-dead-lettered",
    "dead-letter-replayed",
  ]) {
    assert.equal(step(name)?.ok, true, `step ${name}: ${JSON.stringify(step(name))}\n${out.stderr}`);
  }
  assert.equal(step("gateway-allowed")?.status, 201);
  assert.deepEqual(
    step("trace")?.spans,
    [
      "send customer.checkout.initiated",
      "process customer.checkout.initiated",
      "send order.fulfillment.started",
      "send order.fulfillment.completed",
      "process order.fulfillment.completed",
    ],
    "one trace from the gateway's publish through fulfillment to notifications",
  );
  assert.equal(step("gateway-denied")?.status, 403, "RBAC denied the analytics publish");
  assert.equal(step("gateway-denied")?.code, "JK_GATEWAY_FORBIDDEN");
  assert.equal(step("poison-dead-lettered")?.failureClass, "undecodable");
  assert.match(String(step("dead-letter-replayed")?.replayOf), /^DLQ:\d+$/);
  const stats = records.filter((r) => r.kind === "stats");
  assert.ok(stats.length >= 2, "live stats were printed");
  const summary = records.find((r) => r.kind === "summary") as unknown as {
    checkoutsAcked: number;
    fulfilled: number;
    notified: number;
    lagLeft: number;
    ok: boolean;
  };
  assert.ok(summary.checkoutsAcked > 10, `events flowed: ${JSON.stringify(summary)}`);
  assert.ok(
    summary.fulfilled >= summary.checkoutsAcked,
    "every acked checkout was fulfilled (plus the gateway's)",
  );
  assert.ok(summary.notified >= summary.checkoutsAcked, "and notified");
  assert.equal(summary.lagLeft, 0);
  assert.equal(out.code, 0, out.stderr);
  const stopped = records.find((r) => r.kind === "stopped");
  assert.equal(stopped?.ok, true);
  const pids = step("nats")?.pids as number[];
  assert.ok(pids.length > 0);
  assert.deepEqual(pids.filter(alive), [], "no nats-server the demo started is left running");
});

test("the cluster demo kills a broker and the flow recovers", { timeout: 300_000 }, async () => {
  const out = await runDemo(["--cluster"]);
  const step = (name: string) => out.records.find((r) => r.kind === "step" && r.step === name);
  const killed = step("broker-killed");
  assert.equal(killed?.ok, true, `${JSON.stringify(killed)}\n${out.stderr}`);
  assert.ok(typeof killed?.recoveryMs === "number" && killed.recoveryMs > 0);
  assert.notEqual(killed?.newLeader, killed?.killed, "another node leads the stream");
  assert.equal(step("broker-restarted")?.ok, true);
  const summary = out.records.find((r) => r.kind === "summary") as unknown as {
    checkoutsAcked: number;
    fulfilled: number;
    lagLeft: number;
  };
  assert.ok(
    summary.fulfilled >= summary.checkoutsAcked,
    `nothing acked was left behind: ${JSON.stringify(summary)}`,
  );
  assert.equal(summary.lagLeft, 0);
  assert.equal(out.code, 0, out.stderr);
  const pids = step("nats")?.pids as number[];
  assert.equal(pids.length, 3);
  assert.deepEqual(pids.filter(alive), []);
});
