import { percentile } from "../checker.js";
import type { ChaosTarget } from "../cluster/target.js";
import type { HistoryEvent } from "../history.js";
import type { ProbeSpec } from "./spec.js";

/** The result of one steady-state probe. */
export interface ProbeResult {
  name: string;
  probe: string;
  value: number | boolean | null;
  tolerance: string;
  held: boolean;
}

/**
 * Evaluates the steady-state probes on the history between `from` and `to` (ms since the epoch).
 * `effected` says whether an event has had its effect so far: effects enter the history from the
 * effect files only at the end, so the live view comes from the consumer processes.
 */
export async function runProbes(
  probes: ProbeSpec[],
  events: readonly HistoryEvent[],
  to: number,
  target: ChaosTarget,
  effected: (id: string) => boolean = () => false,
): Promise<ProbeResult[]> {
  const out: ProbeResult[] = [];
  for (const p of probes) {
    const from = to - p.windowMs;
    const inWindow = events.filter((e) => e.t >= from && e.t <= to);
    let value: number | boolean | null = null;
    switch (p.probe) {
      case "cluster_healthy": {
        const healthy = await target.healthyNodes();
        value = healthy.length === target.nodeNames.length;
        break;
      }
      case "publish_p99_ms":
        // Latency of the publishes started in the window (a late ack of an old retry is not today's latency).
        value = percentile(
          events.flatMap((e) =>
            e.kind === "ack" && e.t - e.latencyMs >= from && e.t - e.latencyMs <= to ? [e.latencyMs] : [],
          ),
          99,
        );
        break;
      case "publish_error_rate": {
        const attempts = inWindow.filter((e) => e.kind === "publish").length;
        const errors = inWindow.filter((e) => e.kind === "publish_error").length;
        value = attempts === 0 ? null : errors / attempts;
        break;
      }
      case "throughput":
        value = (inWindow.filter((e) => e.kind === "ack").length * 1000) / p.windowMs;
        break;
      case "consumer_lag": {
        const acked = new Set<string>();
        const done = new Set<string>();
        for (const e of events) {
          if (e.t > to) break;
          if (e.kind === "ack") acked.add(e.id);
          else if (e.kind === "effect" || e.kind === "skip" || e.kind === "dlq") done.add(e.id);
        }
        value = [...acked].filter((id) => !done.has(id) && !effected(id)).length;
        break;
      }
    }
    const tol = [p.min !== undefined ? `>= ${p.min}` : "", p.max !== undefined ? `<= ${p.max}` : ""]
      .filter(Boolean)
      .join(" and ");
    const held =
      typeof value === "boolean"
        ? value
        : value !== null &&
          (p.max === undefined || value <= p.max) &&
          (p.min === undefined || value >= p.min);
    out.push({ name: p.name, probe: p.probe, value, tolerance: tol || "true", held });
  }
  return out;
}
