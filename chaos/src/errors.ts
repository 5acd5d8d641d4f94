import { JetkitError } from "@jetkit/contracts";

/** Stable codes of every error the chaos suite throws (documented in chaos/README.md). */
export const ChaosErrorCodes = {
  /** A drill file could not be read or parsed as YAML/JSON. */
  DRILL_UNREADABLE: "JK_DRILL_UNREADABLE",
  /** A drill file was parsed but a field is missing or not allowed. */
  DRILL_INVALID: "JK_DRILL_INVALID",
  /** The drills directory does not exist or cannot be listed. */
  DRILL_DIR: "JK_DRILL_DIR",
  /** The drill was aborted (signal or abort condition); faults were rolled back. */
  DRILL_ABORTED: "JK_DRILL_ABORTED",
  /** The steady-state hypothesis did not hold before faults were injected. */
  DRILL_NOT_STEADY: "JK_DRILL_NOT_STEADY",
  /** A fault proxy could not listen or reach its upstream. */
  PROXY: "JK_CHAOS_PROXY",
  /** A fault needs something the target does not offer (e.g. kill on a cluster given by URL). */
  FAULT_UNSUPPORTED: "JK_CHAOS_FAULT_UNSUPPORTED",
  /** The local cluster or the target could not be started or reached. */
  TARGET: "JK_CHAOS_TARGET",
  /** The workload's consumer process failed to start or exited unexpectedly. */
  WORKLOAD: "JK_CHAOS_WORKLOAD",
} as const;
export type ChaosErrorCode = (typeof ChaosErrorCodes)[keyof typeof ChaosErrorCodes];

/** Error of the chaos suite: a JetkitError with one of {@link ChaosErrorCodes}. */
export class ChaosError extends JetkitError {
  override name = "ChaosError";
  constructor(
    code: ChaosErrorCode,
    message: string,
    opts: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(code, message, opts);
  }
}
