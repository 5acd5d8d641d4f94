import { JetkitError } from "@jetkit/contracts";
import type { AllowedProblem, ContractProblem } from "./check.js";
import { ContractsCheckErrorCodes } from "./errors.js";

/** A reviewed override: accept every finding of `rule`, for `reason`. */
export interface Allowance {
  /** A rule name as the report prints it, e.g. `FIELD_RULE_TIGHTENED`, `STREAM_LIMIT_SHRUNK`. */
  readonly rule: string;
  /** Why the change is safe; printed with each accepted finding (text, JSON, annotations). */
  readonly reason: string;
}

const RULE_NAME = /^[A-Z][A-Z0-9_]*$/;

/** Throws `JK_CONTRACTS_ALLOW_INVALID` unless every override names a rule and gives a reason. */
export function validateAllowances(allow: readonly Allowance[]): Allowance[] {
  for (const a of allow) {
    if (!RULE_NAME.test(a.rule)) {
      throw new JetkitError(
        ContractsCheckErrorCodes.ALLOW_INVALID,
        `--allow "${a.rule}" is not a rule name: give the rule exactly as the report prints it in brackets, e.g. --allow FIELD_RULE_TIGHTENED.`,
        { details: { rule: a.rule } },
      );
    }
    if (a.rule === "COMPILE") {
      throw new JetkitError(
        ContractsCheckErrorCodes.ALLOW_INVALID,
        "COMPILE cannot be allowed: contracts that do not compile cannot be checked. Fix the proto.",
        { details: { rule: a.rule } },
      );
    }
    if (a.reason.trim() === "") {
      throw new JetkitError(
        ContractsCheckErrorCodes.ALLOW_INVALID,
        `--allow ${a.rule} has no reason: say why the change is safe with --reason "...", so the reviewer and the changelog see it.`,
        { details: { rule: a.rule } },
      );
    }
  }
  return [...allow];
}

/** Splits the findings into those still refused and those an override accepts. */
export function applyAllowances(
  problems: readonly ContractProblem[],
  allow: readonly Allowance[],
): { refused: ContractProblem[]; allowed: AllowedProblem[]; unused: Allowance[] } {
  const byRule = new Map<string, Allowance>();
  for (const a of allow) if (!byRule.has(a.rule)) byRule.set(a.rule, a);
  const refused: ContractProblem[] = [];
  const allowed: AllowedProblem[] = [];
  const used = new Set<string>();
  for (const p of problems) {
    const a = byRule.get(p.rule);
    if (!a || p.rule === "COMPILE") {
      refused.push(p);
      continue;
    }
    used.add(a.rule);
    allowed.push({ ...p, reason: a.reason });
  }
  return { refused, allowed, unused: [...byRule.values()].filter((a) => !used.has(a.rule)) };
}
