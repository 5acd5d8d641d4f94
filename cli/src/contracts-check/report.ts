import type { CheckReport } from "./check.js";

/**
 * The report for humans: what was compared, one line per step, then every problem as
 * `file:line: [RULE] message` with its fix on the next line, then the verdict.
 */
export function formatCheckReport(report: CheckReport): string {
  const lines: string[] = [];
  const b = report.baseline;
  lines.push(
    b
      ? `contracts check against ${b.ref} (${b.commit.slice(0, 12)})`
      : "contracts check (no baseline to compare against)",
  );
  for (const s of report.steps) {
    const count = report.problems.filter((p) => p.step === s.step).length;
    const status = s.status === "fail" ? `FAIL (${count} problem${count === 1 ? "" : "s"})` : s.status;
    lines.push(`  ${s.step.padEnd(9)}${status}${s.note ? `: ${s.note}` : ""}`);
  }
  for (const note of report.notes) lines.push(`note: ${note}`);
  for (const p of report.problems) {
    lines.push(`${p.file}${p.line ? `:${p.line}` : ""}: [${p.rule}] ${p.message}`);
    lines.push(`    fix: ${p.fix}`);
  }
  lines.push(
    report.ok
      ? "ok: the contracts pass lint, the catalog rules and the breaking-change checks."
      : `refused [${report.code}]: ${report.problems.length} problem(s). Fix them, or compare against another ref with --against <ref>.`,
  );
  return lines.join("\n");
}
