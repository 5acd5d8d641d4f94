#!/usr/bin/env node
/**
 * `jetkit-chaos list [dir] | validate <file> | run <file> [--report dir] [--url nats://...] [--seed S]`.
 * Exit codes: 0 held (run) or valid (validate); 1 an invariant or the hypothesis did not hold, or
 * the file is invalid; 2 aborted (Ctrl-C or an abort condition) or the drill could not run.
 */
import { fileURLToPath } from "node:url";
import { listDrills, validateDrill } from "./drill/files.js";
import { runDrill } from "./drill/run.js";

const DEFAULT_DIR = fileURLToPath(new URL("../../drills", import.meta.url));

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  const flag = (name: string) => {
    const i = rest.indexOf(name);
    return i >= 0 ? rest.splice(i, 2)[1] : undefined;
  };
  if (cmd === "list") {
    const drills = await listDrills(rest[0] ?? DEFAULT_DIR);
    for (const d of drills) {
      console.log(
        `${d.name.padEnd(28)} ${d.problems.length ? `INVALID (${d.problems.length} problems)` : d.description.split("\n")[0]}`,
      );
    }
    return drills.some((d) => d.problems.length > 0) ? 1 : 0;
  }
  if (cmd === "validate" && rest[0]) {
    const res = await validateDrill(rest[0]);
    if (res.valid) console.log(`${rest[0]}: valid (${res.drill?.name})`);
    else for (const p of res.problems) console.error(`${rest[0]}: ${p.path}: ${p.message}`);
    return res.valid ? 0 : 1;
  }
  if (cmd === "run") {
    const reportDir = flag("--report");
    const url = flag("--url");
    const seed = flag("--seed");
    const file = rest[0];
    if (!file) return usage();
    const ctl = new AbortController();
    const onSigint = () => {
      console.error("\naborting: rolling back faults and stopping processes (Ctrl-C again to force)");
      process.off("SIGINT", onSigint);
      ctl.abort();
    };
    process.on("SIGINT", onSigint);
    const report = await runDrill(file, {
      signal: ctl.signal,
      ...(reportDir ? { reportDir } : {}),
      ...(url ? { urls: url.split(",") } : {}),
      ...(seed ? { seed } : {}),
      onProgress: (p) =>
        console.error(
          `[${(p.elapsedMs / 1000).toFixed(0).padStart(3)}s] ${p.phase.padEnd(8)} faults: ${p.activeFaults.join(", ") || "-"} | pub ${p.publishPerSec}/s ack ${p.ackPerSec}/s effect ${p.effectPerSec}/s err ${p.errorsPerSec}/s | in flight ${p.inFlight} | acked ${p.acked} effected ${p.effected}`,
        ),
    });
    process.off("SIGINT", onSigint);
    const c = report.check.counts;
    console.log(
      `${report.drill.name}: ${report.outcome.toUpperCase()} — acked ${c.acked}, lost ${c.lost}, duplicated ${c.duplicatedEffects}, order violations ${c.orderViolations}, recovery ${report.check.recoveries.map((r) => (r.recoveryMs === null ? "none" : `${r.recoveryMs}ms`)).join("/") || "n/a"}`,
    );
    console.log(`report: ${report.files.markdown}\n        ${report.files.html}`);
    return report.outcome === "held"
      ? 0
      : report.outcome === "violated" || report.outcome === "not_steady"
        ? 1
        : 2;
  }
  return usage();
}

function usage(): number {
  console.error(
    "usage: jetkit-chaos list [dir] | validate <file> | run <file> [--report dir] [--url nats://a,nats://b] [--seed S]",
  );
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error((err as Error).message);
    process.exit(2);
  },
);
