import type { ClusterView } from "./cluster.js";
import type { ManagedField } from "./config.js";
import type { StreamPlan } from "./plan.js";

const NS_PER_MS = 1_000_000;
const UNITS: [string, number][] = [
  ["d", 86_400_000],
  ["h", 3_600_000],
  ["m", 60_000],
  ["s", 1_000],
  ["ms", 1],
];

/** `7776000000000000` ns -> `90d`, `150000000000` -> `2m30s`. */
function duration(ns: number): string {
  let ms = Math.round(ns / NS_PER_MS);
  if (ms === 0) return "0s";
  let out = "";
  for (const [unit, size] of UNITS) {
    if (ms >= size) {
      out += `${Math.floor(ms / size)}${unit}`;
      ms %= size;
    }
  }
  return out;
}

/** A setting's value for humans: durations, "unlimited", quoted text. */
export function formatValue(field: ManagedField, value: unknown): string {
  switch (field) {
    case "max_age":
      return (value as number) > 0 ? duration(value as number) : "unlimited";
    case "duplicate_window":
      return duration(value as number);
    case "max_bytes":
    case "max_msgs":
    case "max_msg_size":
      return (value as number) > 0 ? String(value) : "unlimited";
    case "subjects":
      return `[${(value as string[]).join(", ")}]`;
    case "description":
      return JSON.stringify(value);
    default:
      return String(value);
  }
}

/** The cluster the replicas were sized by, when the server is in one. */
function clusterLine(cluster: ClusterView): string | undefined {
  if (cluster.name === undefined) return undefined;
  const nodes = cluster.nodes.join(", ");
  if (cluster.complete)
    return `cluster "${cluster.name}": ${cluster.nodes.length} JetStream server(s) (${nodes})`;
  const seen = nodes ? `; holding streams: ${nodes}` : "";
  return `cluster "${cluster.name}": size unknown (${cluster.unknownReason ?? "not asked"})${seen}`;
}

/**
 * The plan for humans, one line per stream, replica counts with where they come from:
 * `+ ORDER create (subjects [order.>], file, R3 (cluster of 3 nodes))`,
 * `~ ORDER update (num_replicas: 1 -> 3 (cluster of 3 nodes))`, `= ORDER unchanged`,
 * `! ORDER refused: ...`, `- LEGACY recreate ...`, then `? NAME not in the contracts` lines.
 * A first line names the cluster and its servers when the server is in one.
 */
export function formatPlan(plan: StreamPlan): string {
  const lines: string[] = [];
  const header = clusterLine(plan.cluster);
  if (header) lines.push(header);
  for (const e of plan.entries) {
    const changes = e.changes
      .map(
        (c) =>
          `${c.field}: ${formatValue(c.field, c.from)} -> ${formatValue(c.field, c.to)}${c.field === "num_replicas" ? ` (${e.replicas.reason})` : ""}`,
      )
      .join(", ");
    switch (e.action) {
      case "create":
        lines.push(
          `+ ${e.name} create (subjects ${formatValue("subjects", e.config.subjects)}, ${e.config.storage}, R${e.config.num_replicas} (${e.replicas.reason}))`,
        );
        break;
      case "update":
        lines.push(`~ ${e.name} update (${changes})`);
        break;
      case "recreate":
        lines.push(`- ${e.name} recreate, dropping ${e.messages ?? 0} message(s) (${changes})`);
        break;
      case "unchanged":
        lines.push(`= ${e.name} unchanged`);
        break;
      case "refused":
        lines.push(
          `! ${e.name} refused: ${e.reasons.join("; ")}${changes ? ` (${changes})` : ""}${e.overridable ? " [allowDestructive to force]" : ""}`,
        );
        break;
    }
  }
  for (const u of plan.unmanaged) {
    lines.push(
      `? ${u.name} not in the contracts (${u.subjects.join(", ")}; ${u.messages} message(s)): left alone`,
    );
  }
  lines.push(
    `${plan.pending} to change, ${plan.entries.length - plan.pending - plan.refused} unchanged, ${plan.refused} refused, ${plan.unmanaged.length} unmanaged`,
  );
  return lines.join("\n");
}

/** The plan as plain JSON data (for `--json`): stable field names, JetStream units. */
export function planToJson(plan: StreamPlan): unknown {
  return JSON.parse(JSON.stringify(plan));
}
