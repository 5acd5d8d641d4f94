import { JetkitError } from "@jetkit/contracts";
import { type CommandDef, ExitCode } from "../command.js";
import {
  type Allowance,
  checkContracts,
  formatCheckReport,
  formatGithubAnnotations,
} from "../contracts-check/index.js";
import { requireWorkspaceRoot } from "../workspace.js";

const check: CommandDef = {
  path: ["contracts", "check"],
  summary: "The CI check: buf lint, catalog rules, and no breaking change against the previous state of main",
  description:
    "Compares the contracts with a git ref (default: HEAD~1 on main, else the merge-base with main; env JETKIT_CONTRACTS_AGAINST) using buf breaking (FILE rules, deleting a field only with its number and name reserved) and the catalog's own rules (no subject removed or renamed, no event moved to another type or stream, no partition key changed, no field rule tightened or added, no stream change that loses stored history, a duplicate window at least the producers' retry deadline). Each refusal names the file, the line, the rule and the fix; --allow RULE --reason TEXT accepts a rule's findings and reports them as allowed.",
  options: [
    {
      name: "against",
      type: "string",
      value: "REF",
      description: "Git ref to compare with, e.g. origin/main for a pull request",
    },
    {
      name: "root",
      type: "string",
      value: "DIR",
      description: "Workspace root (holds buf.yaml); default: found from the current directory",
    },
    {
      name: "allow",
      type: "string",
      value: "RULE",
      multiple: true,
      description:
        "Accept every finding of RULE (e.g. FIELD_RULE_TIGHTENED), reported as allowed with its reason; needs --reason; repeat both for more rules",
    },
    {
      name: "reason",
      type: "string",
      value: "TEXT",
      multiple: true,
      description:
        "Why the allowed change is safe, printed with each allowed finding; one per --allow, in the same order (one reason may cover every --allow)",
    },
    {
      name: "github",
      type: "boolean",
      env: "GITHUB_ACTIONS",
      description:
        "Also print GitHub Actions annotations (::error / ::warning with file, line, rule); on when GITHUB_ACTIONS=true",
    },
  ],
  examples: [
    { command: "jetkit contracts check", description: "what CI runs on main" },
    {
      command: "jetkit contracts check --against origin/main --json",
      description: "for a pull request, machine-readable",
    },
    {
      command:
        'jetkit contracts check --allow STREAM_LIMIT_SHRUNK --reason "audit events older than 30 days are archived to S3"',
      description: "accept a reviewed change; the report lists it as allowed with the reason",
    },
  ],
  exitCodes: [{ code: 1, meaning: "the contracts were refused (lint, catalog or breaking change)" }],
  async run(ctx) {
    const root = requireWorkspaceRoot(ctx.opts.root);
    const allow = allowances(ctx.opts.allow, ctx.opts.reason);
    ctx.progress("checking contracts (buf lint, catalog, breaking)...");
    const report = await checkContracts({
      root,
      ...(typeof ctx.opts.against === "string" ? { against: ctx.opts.against } : {}),
      allow,
    });
    ctx.stdout.write(ctx.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatCheckReport(report)}\n`);
    const annotations = ctx.opts.github === true ? formatGithubAnnotations(report) : "";
    // With --json, stdout stays one JSON document: the annotations go to stderr (the runner reads both).
    if (annotations) (ctx.json ? ctx.stderr : ctx.stdout).write(`${annotations}\n`);
    return report.ok ? ExitCode.OK : ExitCode.FAILED;
  },
};

const list = (v: unknown): string[] => (Array.isArray(v) ? v : typeof v === "string" ? [v] : []);

/** Pairs each --allow with its --reason (by order; one reason may cover all); a missing reason is a usage error. */
export function allowances(allowOpt: unknown, reasonOpt: unknown): Allowance[] {
  const rules = list(allowOpt);
  const reasons = list(reasonOpt);
  if (rules.length === 0 && reasons.length > 0) {
    throw new JetkitError(
      "JK_CLI_USAGE",
      '--reason without --allow: name the rule to accept, e.g. --allow FIELD_RULE_TIGHTENED --reason "...".',
    );
  }
  if (rules.length > 0 && reasons.filter((r) => r.trim() !== "").length === 0) {
    throw new JetkitError(
      "JK_CLI_USAGE",
      `--allow ${rules.join(", ")} without --reason: an override must say why the change is safe, e.g. --allow ${rules[0]} --reason "every stored event already passes the new rule"; the reason is printed with each allowed finding.`,
    );
  }
  if (reasons.length !== 1 && reasons.length !== rules.length) {
    throw new JetkitError(
      "JK_CLI_USAGE",
      `${rules.length} --allow but ${reasons.length} --reason: give one --reason per --allow (in the same order), or a single --reason for all of them.`,
    );
  }
  return rules.map((rule, i) => ({
    rule,
    reason: reasons.length === 1 ? (reasons[0] ?? "") : (reasons[i] ?? ""),
  }));
}

export const contractsCommands = [check];
