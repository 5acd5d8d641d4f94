import type { DrillReport } from "../drill/run.js";

const ms = (v: number | null | undefined) => (v === null || v === undefined ? "n/a" : `${Math.round(v)} ms`);

/** The human summary: did the hypothesis hold, which faults ran, invariants with counts, findings. */
export function renderMarkdown(r: DrillReport): string {
  const c = r.check.counts;
  const lines: string[] = [];
  lines.push(`# Drill ${r.drill.name}: ${r.outcome.toUpperCase()}`, "");
  lines.push(r.drill.description.trim(), "");
  lines.push(`- target: ${r.drill.target}; seed: \`${r.drill.seed}\`; file: \`${r.drill.file}\``);
  lines.push(
    `- ran ${new Date(r.startedAt).toISOString()} for ${Math.round((r.endedAt - r.startedAt) / 1000)} s`,
  );
  if (r.network) lines.push(`- network: ${r.network.mode}${r.network.note ? ` (${r.network.note})` : ""}`);
  if (r.abortReason) lines.push(`- **aborted**: ${r.abortReason} (every fault was rolled back)`);
  if (r.error) lines.push(`- **error**: ${r.error}`);
  lines.push("", "## Steady-state hypothesis", "");
  lines.push("| when | probe | value | tolerance | held |", "| --- | --- | --- | --- | --- |");
  for (const [when, probes] of [
    ["before", r.hypothesis.before],
    ["after", r.hypothesis.after],
  ] as const) {
    for (const p of probes) {
      const v = typeof p.value === "number" ? Number(p.value.toFixed(3)) : p.value;
      lines.push(`| ${when} | ${p.name} | ${v} | ${p.tolerance} | ${p.held ? "yes" : "**no**"} |`);
    }
  }
  lines.push("", "## Faults", "");
  lines.push(
    "| fault | action | status | start | end | recovery | detail |",
    "| --- | --- | --- | --- | --- | --- | --- |",
  );
  for (const f of r.faults) {
    const rec = r.check.recoveries.find((x) => x.fault === f.name);
    const rel = (t?: number) => (t === undefined ? "" : `${((t - r.check.startedAt) / 1000).toFixed(1)} s`);
    const recovery = rec ? (rec.recoveryMs === null ? "**not recovered**" : ms(rec.recoveryMs)) : "";
    lines.push(
      `| ${f.name} | ${f.action} | ${f.status} | ${rel(f.startedAt)} | ${rel(f.endedAt)} | ${recovery} | ${f.detail} |`,
    );
  }
  lines.push("", "## Invariants", "");
  lines.push("| invariant | held | count | detail |", "| --- | --- | --- | --- |");
  for (const v of r.check.verdicts)
    lines.push(`| ${v.invariant} | ${v.held ? "yes" : "**no**"} | ${v.count} | ${v.detail} |`);
  lines.push("", "## Counts", "");
  lines.push(
    `attempted ${c.attempted}, acked ${c.acked}, failed ${c.failed}, poison ${c.poison}, delivered ${c.delivered}, ` +
      `effected ${c.effected}, dead-lettered ${c.deadLettered}, lost ${c.lost}, duplicated effects ${c.duplicatedEffects}, ` +
      `order violations ${c.orderViolations}, recovered (unacked but stored) ${c.recovered}, duplicate publishes acked ${c.repeatsAcked}, publish errors ${c.publishErrors}.`,
  );
  const l = r.check.latency;
  lines.push(
    "",
    `Publish latency p50 ${ms(l.publishP50)}, p99 ${ms(l.publishP99)}; publish-to-delivery p50 ${ms(l.e2eP50)}, p99 ${ms(l.e2eP99)}.`,
  );
  lines.push("", "## Findings", "");
  const findings: string[] = [];
  for (const v of r.check.verdicts.filter((x) => !x.held)) {
    findings.push(
      `- ${v.invariant} violated (${v.count}); examples: \`${JSON.stringify(v.examples.slice(0, 3))}\``,
    );
  }
  for (const rec of r.check.recoveries.filter((x) => x.recoveryMs === null)) {
    findings.push(`- ${rec.fault}: the workload did not return to steady state before the end of the run`);
  }
  if (c.rerunsAbsorbed > 0)
    findings.push(
      `- ${c.rerunsAbsorbed} handler runs found their effect already recorded (the consumer died between the effect and the SDK's idempotency record); the idempotent effect absorbed them`,
    );
  if (c.recovered > 0)
    findings.push(
      `- ${c.recovered} messages were stored although their publish was never acknowledged (expected under faults; a retry with the same id would be deduplicated)`,
    );
  if (c.failed > 0)
    findings.push(
      `- ${c.failed} messages were never acknowledged after every attempt (the producer gave up; not a loss: nobody was told they were stored)`,
    );
  lines.push(...(findings.length > 0 ? findings : ["- none"]));
  lines.push("", `Files: \`report.json\`, \`report.html\`, \`history.jsonl\` in \`${r.reportDir}\`.`, "");
  return lines.join("\n");
}
