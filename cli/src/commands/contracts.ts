import { type CommandDef, ExitCode } from "../command.js";
import { checkContracts, formatCheckReport } from "../contracts-check/index.js";
import { requireWorkspaceRoot } from "../workspace.js";

const check: CommandDef = {
  path: ["contracts", "check"],
  summary: "The CI check: buf lint, catalog rules, and no breaking change against the previous state of main",
  description:
    "Compares the contracts with a git ref (default: HEAD~1 on main, else the merge-base with main; env JETKIT_CONTRACTS_AGAINST) using buf breaking (FILE rules, deleting a field only with its number and name reserved) and the catalog's own rules (no subject removed or renamed, no event moved to another type or stream). Each refusal names the file, the rule and the fix.",
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
  ],
  examples: [
    { command: "jetkit contracts check", description: "what CI runs on main" },
    {
      command: "jetkit contracts check --against origin/main --json",
      description: "for a pull request, machine-readable",
    },
  ],
  exitCodes: [{ code: 1, meaning: "the contracts were refused (lint, catalog or breaking change)" }],
  async run(ctx) {
    const root = requireWorkspaceRoot(ctx.opts.root);
    ctx.progress("checking contracts (buf lint, catalog, breaking)...");
    const report = await checkContracts({
      root,
      ...(typeof ctx.opts.against === "string" ? { against: ctx.opts.against } : {}),
    });
    ctx.stdout.write(ctx.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatCheckReport(report)}\n`);
    return report.ok ? ExitCode.OK : ExitCode.FAILED;
  },
};

export const contractsCommands = [check];
