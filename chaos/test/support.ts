import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { rm } from "node:fs/promises";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { JetStreamManager } from "@nats-io/jetstream";
import { type Drill, type DrillReport, runDrill, waitFor } from "../src/index.js";

/** The shipped drills. */
export const DRILLS = fileURLToPath(new URL("../../drills", import.meta.url));

function childProcesses(): string[] {
  const out = execFileSync("ps", ["-o", "pid=,comm=", "--ppid", String(process.pid)], { encoding: "utf8" });
  return out
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !/\bps$/.test(l));
}

const refused = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = createConnection({ port, host: "127.0.0.1" });
    s.once("connect", () => {
      s.destroy();
      resolve(false);
    });
    s.once("error", () => resolve(true));
  });

/** No child process, proxy or node of the drill is left running. */
export async function assertNothingLeft(report: DrillReport): Promise<void> {
  assert.deepEqual(childProcesses(), [], "child processes left running");
  assert.ok(report.endpoints.proxies.length >= 9, "3 client proxies and 6 route links");
  for (const p of report.endpoints.proxies)
    assert.ok(await refused(p.port), `proxy ${p.name} still listening`);
  for (const n of report.endpoints.nodes)
    assert.ok(await refused(n.clientPort), `node ${n.name} still listening`);
}

/** Runs drills (by shipped name, or loaded) with report dirs that `cleanup` removes. */
export function drillRunner(): {
  run: (drill: string | Drill, opts?: Parameters<typeof runDrill>[1]) => Promise<DrillReport>;
  cleanup: () => Promise<void>;
} {
  const dirs: string[] = [];
  return {
    run: (drill, opts = {}) => {
      const name = typeof drill === "string" ? drill : drill.name;
      const reportDir = join(tmpdir(), `jetkit-drill-e2e-${name}-${process.pid}`);
      dirs.push(reportDir);
      return runDrill(typeof drill === "string" ? join(DRILLS, `${drill}.yaml`) : drill, {
        reportDir,
        ...opts,
      });
    },
    cleanup: async () => {
      for (const d of dirs) await rm(d, { recursive: true, force: true });
    },
  };
}

/**
 * Creates stream T (`t.>`, three replicas) on a freshly started cluster. Right after start a
 * peer may not be placeable yet ("no suitable peers"): retry until it is, for up to 20 s.
 */
export async function createReplicatedStream(jsm: JetStreamManager): Promise<void> {
  const created = await waitFor(
    () =>
      jsm.streams.add({ name: "T", subjects: ["t.>"], num_replicas: 3 }).then(
        () => true,
        () => false,
      ),
    20_000,
    250,
  );
  assert.ok(created, "stream T could not be created");
}
