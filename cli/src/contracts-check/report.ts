import type { CheckReport, ContractProblem } from "./check.js";

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
    lines.push(`${where(p)}: [${p.rule}] ${p.message}`);
    lines.push(`    fix: ${p.fix}`);
  }
  for (const p of report.allowed) {
    lines.push(`${where(p)}: [${p.rule}] ALLOWED: ${p.message}`);
    lines.push(`    reason: ${p.reason}`);
  }
  const allowed =
    report.allowed.length > 0
      ? ` ${report.allowed.length} finding(s) allowed by override (see ALLOWED above).`
      : "";
  lines.push(
    report.ok
      ? `ok: the contracts pass lint, the catalog rules and the breaking-change checks.${allowed}`
      : `refused [${report.code}]: ${report.problems.length} problem(s). Fix them, or compare against another ref with --against <ref>.${allowed}`,
  );
  return lines.join("\n");
}

const where = (p: ContractProblem) => `${p.file}${p.line ? `:${p.line}` : ""}`;

// Workflow command escaping (GitHub Actions toolkit): data escapes %, CR and LF; properties also : and ,.
const escapeData = (s: string) => s.replace(/%/g, "%25").replace(/\r/g, "%0D").replace(/\n/g, "%0A");
const escapeProperty = (s: string) => escapeData(s).replace(/:/g, "%3A").replace(/,/g, "%2C");

function annotation(level: "error" | "warning", p: ContractProblem, title: string, body: string): string {
  const props = [`file=${escapeProperty(p.file)}`];
  if (p.line) props.push(`line=${p.line}`);
  props.push(`title=${escapeProperty(title)}`);
  return `::${level} ${props.join(",")}::${escapeData(body)}`;
}

/**
 * The report as GitHub Actions workflow commands, one per finding: `::error` for each refusal
 * (file, line, rule as the title, message and fix), `::warning` for each finding an override
 * accepted (with its reason), so both show on the pull request's diff.
 */
export function formatGithubAnnotations(report: CheckReport): string {
  const lines: string[] = [];
  for (const p of report.problems)
    lines.push(annotation("error", p, `[${p.rule}] contracts check`, `${p.message}\nfix: ${p.fix}`));
  for (const p of report.allowed)
    lines.push(
      annotation("warning", p, `[${p.rule}] allowed by override`, `${p.message}\nallowed: ${p.reason}`),
    );
  return lines.join("\n");
}
