import { isJetkitError } from "@jetkit/contracts";

/** Options of {@link runPaced}. */
export interface PacedOptions {
  /** Operations started per second (open loop: the schedule does not wait for acks). */
  ratePerSec: number;
  /** How long to run, in ms. */
  durationMs: number;
  /** Stops early when aborted. */
  signal?: AbortSignal | undefined;
  /** Most operations outstanding at once; at the limit the loop waits (it falls behind schedule). */
  maxOutstanding: number;
  /** Starts operation `i`. */
  step: (i: number) => Promise<void>;
}

/** What a workload run did. */
export interface WorkloadSummary {
  /** Operations started. */
  started: number;
  /** Operations that completed. */
  succeeded: number;
  /** Operations that failed, by error code. */
  failed: number;
  failures: Record<string, number>;
  /** Wall time of the run, in ms. */
  elapsedMs: number;
}

/**
 * Runs `step` at `ratePerSec` for `durationMs`: each 10 ms tick starts the operations due by
 * then, so the rate holds above the timer resolution. Waits for every started operation.
 */
export async function runPaced(opts: PacedOptions): Promise<WorkloadSummary> {
  const summary: WorkloadSummary = { started: 0, succeeded: 0, failed: 0, failures: {}, elapsedMs: 0 };
  const t0 = performance.now();
  const outstanding = new Set<Promise<void>>();
  const start = (i: number) => {
    const p = opts.step(i).then(
      () => {
        summary.succeeded++;
      },
      (err: unknown) => {
        summary.failed++;
        const code = isJetkitError(err) ? err.code : err instanceof Error ? err.name : "unknown";
        summary.failures[code] = (summary.failures[code] ?? 0) + 1;
      },
    );
    const tracked = p.finally(() => outstanding.delete(tracked));
    outstanding.add(tracked);
  };
  while (!opts.signal?.aborted) {
    const elapsed = performance.now() - t0;
    if (elapsed >= opts.durationMs) break;
    const due = Math.min(Math.floor((elapsed / 1000) * opts.ratePerSec) + 1, Number.MAX_SAFE_INTEGER);
    while (summary.started < due && !opts.signal?.aborted) {
      if (outstanding.size >= opts.maxOutstanding) await Promise.race(outstanding);
      start(summary.started++);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  await Promise.all(outstanding);
  summary.elapsedMs = Math.round(performance.now() - t0);
  return summary;
}
