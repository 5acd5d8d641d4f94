import { MANAGED_FIELDS, type ManagedField, type ManagedStreamConfig } from "./config.js";

/** One setting that differs between the server and the contracts. */
export interface FieldChange {
  readonly field: ManagedField;
  /** The server's value (JetStream units: nanoseconds, -1 for unlimited). */
  readonly from: unknown;
  /** The value the contracts ask for. */
  readonly to: unknown;
  /** Why the change can lose data or availability; absent when it is safe. */
  readonly destructive?: string;
  /** JetStream cannot change this in place: the stream must be deleted and created again. */
  readonly recreate?: boolean;
}

const unlimitedAtOrBelowZero = (v: unknown) =>
  typeof v === "number" && v > 0 ? v : Number.POSITIVE_INFINITY;

function sameValue(field: ManagedField, a: unknown, b: unknown): boolean {
  if (field === "subjects") {
    const x = new Set(a as string[]);
    const y = new Set(b as string[]);
    return x.size === y.size && [...x].every((s) => y.has(s));
  }
  if (field === "max_bytes" || field === "max_msgs" || field === "max_msg_size" || field === "max_age") {
    return unlimitedAtOrBelowZero(a) === unlimitedAtOrBelowZero(b);
  }
  return a === b;
}

/** Why changing `field` from `from` to `to` loses data, or undefined when it does not. */
function destructiveReason(field: ManagedField, from: unknown, to: unknown): string | undefined {
  switch (field) {
    case "storage":
      return `storage cannot change in place (${String(from)} -> ${String(to)}): the stream would be deleted and created again, dropping its messages`;
    case "retention":
      return `retention cannot change in place (${String(from)} -> ${String(to)}): the stream would be deleted and created again, dropping its messages`;
    case "subjects": {
      const kept = new Set(to as string[]);
      const removed = (from as string[]).filter((s) => !kept.has(s));
      return removed.length > 0
        ? `subjects ${removed.join(", ")} would no longer be captured: publishes on them fail and stored messages on them are orphaned`
        : undefined;
    }
    case "num_replicas":
      return (to as number) < (from as number)
        ? `replicas would drop from ${String(from)} to ${String(to)}, losing copies of every message`
        : undefined;
    case "max_age":
    case "max_bytes":
    case "max_msgs":
      return unlimitedAtOrBelowZero(to) < unlimitedAtOrBelowZero(from)
        ? `${field} would shrink, deleting stored messages beyond the new limit`
        : undefined;
    default:
      return undefined;
  }
}

/** Every managed setting where `server` differs from `desired`, with the data-loss ones marked. */
export function diffStreamConfig(server: ManagedStreamConfig, desired: ManagedStreamConfig): FieldChange[] {
  const changes: FieldChange[] = [];
  for (const field of MANAGED_FIELDS) {
    const from = server[field];
    const to = desired[field];
    if (sameValue(field, from, to)) continue;
    const reason = destructiveReason(field, from, to);
    const recreate = field === "storage" || field === "retention";
    changes.push({
      field,
      from,
      to,
      ...(reason === undefined ? {} : { destructive: reason }),
      ...(recreate ? { recreate } : {}),
    });
  }
  return changes;
}
