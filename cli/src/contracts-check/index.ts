// `jetkit contracts check`: lint, catalog rules, and breaking-change checks against a git ref.

export type { BufAnnotation } from "./buf.js";
export { locateBuf } from "./buf.js";
export type { CheckContractsOptions, CheckReport, CheckStep, ContractProblem, StepResult } from "./check.js";
export { checkContracts } from "./check.js";
export type { CatalogBreak } from "./compat.js";
export { catalogBreaks } from "./compat.js";
export type { ContractsCheckErrorCode } from "./errors.js";
export { ContractsCheckErrorCodes } from "./errors.js";
export { breakingFix, lintFix } from "./fixes.js";
export type { Baseline } from "./git.js";
export { formatCheckReport } from "./report.js";
