import type { Recovery } from "../checker.js";
import type { DrillReport } from "../drill/run.js";

const ms = (v: number | null | undefined) => (v === null || v === undefined ? "n/a" : `${Math.round(v)} ms`);

/** The broker's share of a recovery (until every polled group had a leader again), as a cell. */
export function brokerShare(rec: Recovery): string {
  if (rec.brokerMs === null) return "n/a";
  return rec.brokerMs === 0 ? "0 ms (never leaderless)" : `${ms(rec.brokerMs)} (${rec.brokerGroup ?? "?"})`;
}

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
    "| fault | action | status | start | end | recovery (end to end) | broker: leader back | SDKs' share | steady after end | detail |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  );
  const rel = (t?: number) => (t === undefined ? "" : `${((t - r.check.startedAt) / 1000).toFixed(1)} s`);
  for (const f of r.faults) {
    const rec = r.check.recoveries.find((x) => x.fault === f.name);
    const recovery = rec ? (rec.recoveryMs === null ? "**not recovered**" : ms(rec.recoveryMs)) : "";
    const broker = rec ? brokerShare(rec) : "";
    lines.push(
      `| ${f.name} | ${f.action} | ${f.status} | ${rel(f.startedAt)} | ${rel(f.endedAt)} | ${recovery} | ${broker} | ${rec ? ms(rec.sdkShareMs) : ""} | ${rec ? ms(rec.steadyAfterEndMs) : ""} | ${f.detail} |`,
    );
  }
  lines.push(
    "",
    "Recovery is end to end: from the fault's start to the first effect of an event first published after the fault started. " +
      "The broker's share is the time until every polled Raft group (workload stream, durable, idempotency store; polled every 100 ms on connections of their own) had a leader again, counting leaderless gaps that began before the recovery; the SDKs' share is the rest.",
  );
  for (const rec of r.check.recoveries) {
    lines.push("", `### Timeline of ${rec.fault}`, "");
    lines.push("| at (from the fault's start) | what |", "| --- | --- |");
    for (const x of rec.timeline) lines.push(`| ${x.atMs >= 0 ? "+" : ""}${ms(x.atMs)} | ${x.what} |`);
    const groups = rec.leadership.map(
      (l) =>
        `${l.group}: leader before ${l.leaderBefore ?? "none"}, leaderless ${ms(l.leaderlessMs)}${l.newLeader ? `, new leader ${l.newLeader.leader} at +${ms(l.newLeader.atMs)}` : ""}`,
    );
    if (groups.length > 0) lines.push("", ...groups.map((g) => `- ${g}`));
  }
  lines.push("", "## Invariants", "");
  lines.push("| invariant | held | count | detail |", "| --- | --- | --- | --- |");
  for (const v of r.check.verdicts)
    lines.push(`| ${v.invariant} | ${v.held ? "yes" : "**no**"} | ${v.count} | ${v.detail} |`);
  lines.push("", "## Counts", "");
  lines.push(
    `attempted ${c.attempted}, acked ${c.acked}, failed ${c.failed}, poison ${c.poison}, delivered ${c.delivered}, ` +
      `effected ${c.effected} (${c.effects} effect lines), dead-lettered ${c.deadLettered}, lost ${c.lost}, duplicated effects ${c.duplicatedEffects}, ` +
      `order violations ${c.orderViolations}, false refusals ${c.falseRefusals}, outcome unknown: stored ${c.outcomeUnknownStored} / not stored ${c.outcomeUnknownNotStored}, ` +
      `refused and not stored ${c.refusedNotStored}, recovered (unacked but stored) ${c.recovered}, not effected ${c.notEffected}, ` +
      `duplicate publishes acked ${c.repeatsAcked}, publish errors ${c.publishErrors}, idempotency store unavailable ${c.storeUnavailable}, records failed ${c.recordFailed}.`,
  );
  const sr = r.check.streamRead;
  lines.push(
    "",
    sr
      ? `Stream ${sr.stream} read at the end: ${sr.messages} messages${sr.complete ? " (complete)" : ` (**incomplete**${sr.error ? `: ${sr.error}` : ""}; absent events were looked up by sequence)`}.`
      : "The stream was not read at the end.",
  );
  const l = r.check.latency;
  lines.push(
    "",
    `Publish latency p50 ${ms(l.publishP50)}, p99 ${ms(l.publishP99)}; publish-to-delivery p50 ${ms(l.e2eP50)}, p99 ${ms(l.e2eP99)}.`,
  );
  lines.push("", "## Findings (every non-zero count explained)", "");
  const findings: string[] = [];
  for (const f of r.check.findings) {
    findings.push(`- **${f.count}** (${f.n}): ${f.text}`);
    if (f.examples.length > 0) findings.push(`  examples: \`${JSON.stringify(f.examples.slice(0, 3))}\``);
  }
  for (const rec of r.check.recoveries.filter((x) => x.recoveryMs === null)) {
    findings.push(
      `- ${rec.fault}: no event published after the fault started was effected before the end of the run`,
    );
  }
  lines.push(...(findings.length > 0 ? findings : ["- none"]));
  lines.push(
    "",
    `Files: \`report.json\`, \`report.html\`, \`history.jsonl\`, effect files \`effects/*.effects.jsonl\` in \`${r.reportDir}\`.`,
    "",
  );
  return lines.join("\n");
}
