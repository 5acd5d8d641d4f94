// `jetkit contracts check`: lint, catalog rules, and breaking-change checks against a git ref.

export type { Allowance } from "./allow.js";
export type { BufAnnotation } from "./buf.js";
export { locateBuf } from "./buf.js";
export type {
  AllowedProblem,
  CheckContractsOptions,
  CheckReport,
  CheckStep,
  ContractProblem,
  StepResult,
} from "./check.js";
export { checkContracts } from "./check.js";
export type { CatalogBreak } from "./compat.js";
export { catalogBreaks, duplicateWindowBreaks, streamBreaks } from "./compat.js";
export type { ContractsCheckErrorCode } from "./errors.js";
export { ContractsCheckErrorCodes } from "./errors.js";
export { fieldRuleBreaks } from "./field-rules.js";
export { breakingFix, lintFix } from "./fixes.js";
export type { Baseline } from "./git.js";
export { formatCheckReport, formatGithubAnnotations } from "./report.js";
export type { RuleChange } from "./rule-diff.js";
export { ruleChanges } from "./rule-diff.js";
export { CONTRACT_RULES, type ContractRule } from "./rules.js";
