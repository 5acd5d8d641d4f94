import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { listDrills, runDrill, validateDrill } from "@jetkit/chaos";
import { JetkitError } from "@jetkit/contracts";
import { type CommandDef, ExitCode } from "../command.js";

/** The drills shipped with @jetkit/chaos. */
function shippedDrills(): string {
  return fileURLToPath(new URL("../../drills", import.meta.resolve("@jetkit/chaos")));
}

/** A drill file path, or the name of a shipped drill (`leader-kill`). */
function resolveDrill(file: string): string {
  if (existsSync(file)) return file;
  const shipped = `${shippedDrills()}/${file.replace(/\.ya?ml$/, "")}.yaml`;
  if (!existsSync(shipped))
    throw new JetkitError(
      "JK_CLI_FILE",
      `no drill file ${file}; 'jetkit drill list' shows the shipped drills.`,
    );
  return shipped;
}

const list: CommandDef = {
  path: ["drill", "list"],
  summary: "List chaos drills (the shipped ones, or those in a directory) and whether each file is valid",
  args: [{ name: "dir", description: "directory of drill files (default: the shipped drills)" }],
  examples: [
    { command: "jetkit drill list", description: "the shipped drills with their one-line descriptions" },
    { command: "jetkit drill list ./drills --json", description: "your own drills, for scripts" },
  ],
  exitCodes: [{ code: 1, meaning: "a drill file is invalid" }],
  async run(ctx) {
    const dir = ctx.args[0] ?? shippedDrills();
    const drills = await listDrills(dir);
    if (ctx.json) ctx.stdout.write(`${JSON.stringify(drills, null, 2)}\n`);
    else {
      for (const d of drills) {
        const state = d.problems.length
          ? ctx.color.red(`INVALID (${d.problems.length} problems)`)
          : d.description.split("\n")[0];
        ctx.stdout.write(`${ctx.color.bold(d.name.padEnd(24))} ${state}\n  ${ctx.color.dim(d.file)}\n`);
      }
    }
    return drills.some((d) => d.problems.length > 0) ? ExitCode.FAILED : ExitCode.OK;
  },
};

const validate: CommandDef = {
  path: ["drill", "validate"],
  summary: "Check a drill file: every problem with its path and what is allowed",
  args: [{ name: "file", description: "drill YAML or JSON, or the name of a shipped drill", required: true }],
  examples: [
    { command: "jetkit drill validate chaos/drills/leader-kill.yaml", description: "exit 0 when valid" },
  ],
  exitCodes: [{ code: 1, meaning: "the file is invalid" }],
  async run(ctx) {
    const res = await validateDrill(resolveDrill(ctx.args[0]!));
    if (ctx.json)
      ctx.stdout.write(
        `${JSON.stringify({ valid: res.valid, name: res.drill?.name, problems: res.problems }, null, 2)}\n`,
      );
    else if (res.valid)
      ctx.stdout.write(`${ctx.args[0]}: ${ctx.color.green("valid")} (${res.drill?.name})\n`);
    else
      for (const p of res.problems)
        ctx.stdout.write(`${ctx.args[0]}: ${ctx.color.red(p.path)}: ${p.message}\n`);
    return res.valid ? ExitCode.OK : ExitCode.FAILED;
  },
};

const run: CommandDef = {
  path: ["drill", "run"],
  summary: "Run a drill: workload, faults on schedule, checks; writes JSON, Markdown and HTML reports",
  description:
    "Starts what the drill's target says (a local 3-node cluster by default), runs the workload, injects the faults on schedule, and checks the recorded history (acked but lost, duplicated effects, per-key order, latency, recovery time). Ctrl-C aborts: every fault is rolled back and every process stopped. A drill name (e.g. leader-kill) runs the shipped drill.",
  args: [{ name: "file", description: "drill file, or the name of a shipped drill", required: true }],
  options: [
    {
      name: "report",
      type: "string",
      value: "DIR",
      description: "Where report.json/.md/.html and history.jsonl go (default: a temp dir)",
    },
    {
      name: "url",
      type: "string",
      value: "URLS",
      description: "Run against an existing cluster (process faults are then reported as skipped)",
    },
    {
      name: "seed",
      type: "string",
      value: "SEED",
      description: "Run with this seed instead of the file's: another fault schedule, keys and jitter",
    },
  ],
  examples: [
    {
      command: "jetkit drill run leader-kill --report reports/leader-kill",
      description: "kill the stream leader under load and prove nothing acked was lost",
    },
    {
      command: "jetkit drill run leader-kill-group --seed lkg-2",
      description: "the same drill on another seeded schedule",
    },
    {
      command: "jetkit drill run ./my-drill.yaml --url nats://10.0.0.5:4222",
      description: "network faults against a staging cluster",
    },
  ],
  exitCodes: [
    {
      code: 1,
      meaning: "an invariant or the steady-state hypothesis did not hold, or an abort condition fired",
    },
    { code: 3, meaning: "the drill could not run (file, target)" },
  ],
  async run(ctx) {
    const file = resolveDrill(ctx.args[0]!);
    const report = await runDrill(file, {
      signal: ctx.signal,
      ...(typeof ctx.opts.report === "string" ? { reportDir: ctx.opts.report } : {}),
      ...(typeof ctx.opts.url === "string" ? { urls: ctx.opts.url.split(",") } : {}),
      ...(typeof ctx.opts.seed === "string" ? { seed: ctx.opts.seed } : {}),
      onProgress: (p) =>
        ctx.progress(
          `[${(p.elapsedMs / 1000).toFixed(0).padStart(3)}s] ${p.phase.padEnd(8)} faults: ${p.activeFaults.join(", ") || "-"} | pub ${p.publishPerSec}/s ack ${p.ackPerSec}/s effect ${p.effectPerSec}/s err ${p.errorsPerSec}/s | acked ${p.acked} effected ${p.effected}`,
        ),
    });
    const c = report.check.counts;
    if (ctx.json)
      ctx.stdout.write(
        `${JSON.stringify({ outcome: report.outcome, held: report.held, counts: c, recoveries: report.check.recoveries, files: report.files }, null, 2)}\n`,
      );
    else {
      const verdict = report.held ? ctx.color.green("HELD") : ctx.color.red(report.outcome.toUpperCase());
      ctx.stdout.write(
        `${report.drill.name}: ${verdict} — acked ${c.acked}, lost ${c.lost}, duplicated effects ${c.duplicatedEffects}, order violations ${c.orderViolations}\n`,
      );
      if (report.abortReason) ctx.stdout.write(`  aborted: ${report.abortReason}\n`);
      if (report.error) ctx.stdout.write(`  error: ${report.error}\n`);
      ctx.stdout.write(`report: ${report.files.markdown}\n        ${report.files.html}\n`);
    }
    if (ctx.signal.aborted) return ExitCode.INTERRUPTED;
    if (ctx.signal.aborted) return ExitCode.INTERRUPTED; // Ctrl-C: rolled back, report written
    if (report.outcome === "error") return ExitCode.UNAVAILABLE;
    return report.held ? ExitCode.OK : ExitCode.FAILED;
  },
};

export const drillCommands = [list, validate, run];
