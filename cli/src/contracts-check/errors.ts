/** Error codes of `jetkit contracts check`. */
export const ContractsCheckErrorCodes = {
  /** The check ran and refused the contracts (lint, catalog or breaking-change problems). */
  REFUSED: "JK_CONTRACTS_REFUSED",
  /** buf could not be found or started. */
  BUF_MISSING: "JK_CONTRACTS_BUF_MISSING",
  /** buf failed in a way that is not a finding (bad buf.yaml, crash). */
  BUF_FAILED: "JK_CONTRACTS_BUF_FAILED",
  /** git failed, or the root is not inside a git repository. */
  GIT_FAILED: "JK_CONTRACTS_GIT_FAILED",
  /** The ref to compare against does not name a commit. */
  REF_UNKNOWN: "JK_CONTRACTS_REF_UNKNOWN",
  /** The contracts at the ref compared against do not build, so there is nothing sound to compare. */
  BASELINE_BROKEN: "JK_CONTRACTS_BASELINE_BROKEN",
  /** An override (`allow`) without a reason, or naming no rule. */
  ALLOW_INVALID: "JK_CONTRACTS_ALLOW_INVALID",
} as const;
export type ContractsCheckErrorCode =
  (typeof ContractsCheckErrorCodes)[keyof typeof ContractsCheckErrorCodes];
