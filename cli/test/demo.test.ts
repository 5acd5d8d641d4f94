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

test("the demo (short mode) shows the whole platform working and leaves nothing running", {
  timeout: 240_000,
}, async () => {
  const home = mkdtempSync(join(tmpdir(), "jetkit-demo-"));
  const out = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
    (resolve, reject) => {
      const child = spawn(process.execPath, [main, "demo", "--short", "--json"], {
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
  const records = out.stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, unknown> & { kind: string; step?: string; ok?: boolean });
  const step = (name: string) => records.find((r) => r.kind === "step" && r.step === name);
  for (const name of [
    "nats",
    "streams",
    "gateway",
    "services",
    "gateway-allowed",
    "gateway-denied",
    "poison-dead-lettered",
    "refund-dead-lettered",
    "dead-letter-replayed",
  ]) {
    assert.equal(step(name)?.ok, true, `step ${name}: ${JSON.stringify(step(name))}\n${out.stderr}`);
  }
  assert.equal(step("gateway-allowed")?.status, 201);
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
  rmSync(home, { recursive: true, force: true });
});
