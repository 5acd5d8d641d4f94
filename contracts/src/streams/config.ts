import type { StreamSpec } from "../catalog.js";

/**
 * The stream settings jetkit owns, in JetStream's own field names and units (durations in
 * nanoseconds, -1 for unlimited). Settings not listed here (consumer limits, sources, ...) are
 * left as the server has them.
 */
export interface ManagedStreamConfig {
  name: string;
  subjects: string[];
  retention: "limits" | "interest" | "workqueue";
  storage: "file" | "memory";
  num_replicas: number;
  /** Nanoseconds; 0 keeps messages forever. */
  max_age: number;
  /** Nanoseconds. */
  duplicate_window: number;
  /** -1 is unlimited. */
  max_bytes: number;
  /** -1 is unlimited. The contracts do not declare a message count limit. */
  max_msgs: number;
  /** -1 is the server's max_payload. */
  max_msg_size: number;
  discard: "old" | "new";
  description: string;
  /** Per-message TTLs (Nats-TTL). */
  allow_msg_ttl: boolean;
  /** Message schedules (delayed events); the server cannot turn it off again. */
  allow_msg_schedules: boolean;
  /** Atomic batch publishes (nats-server 2.12+). */
  allow_atomic: boolean;
  /** Fast-ingest batch publishes (nats-server 2.14+). */
  allow_batched: boolean;
}

/** The fields of {@link ManagedStreamConfig} that a plan compares, in display order. */
export const MANAGED_FIELDS = [
  "subjects",
  "retention",
  "storage",
  "num_replicas",
  "max_age",
  "duplicate_window",
  "max_bytes",
  "max_msgs",
  "max_msg_size",
  "discard",
  "description",
  "allow_msg_ttl",
  "allow_msg_schedules",
  "allow_atomic",
  "allow_batched",
] as const;
export type ManagedField = (typeof MANAGED_FIELDS)[number];

const NS_PER_MS = 1_000_000;

/**
 * The JetStream configuration a contract's stream declaration asks for, with `replicas` copies
 * (default: what the file declares, else 1; plans choose it with the cluster's size).
 */
export function streamConfig(spec: StreamSpec, replicas?: number): ManagedStreamConfig {
  return {
    name: spec.name,
    subjects: [...spec.subjects],
    retention: spec.retention,
    storage: spec.storage,
    num_replicas: replicas ?? spec.replicas ?? 1,
    max_age: spec.maxAgeMs * NS_PER_MS,
    duplicate_window: spec.duplicateWindowMs * NS_PER_MS,
    max_bytes: spec.maxBytes > 0 ? spec.maxBytes : -1,
    max_msgs: -1,
    max_msg_size: spec.maxMsgSize > 0 ? spec.maxMsgSize : -1,
    discard: spec.discard,
    description: spec.description,
    allow_msg_ttl: spec.allowMsgTtl,
    allow_msg_schedules: spec.allowMsgSchedules,
    allow_atomic: spec.allowAtomic,
    allow_batched: spec.allowBatched,
  };
}

/** The managed part of a server's stream configuration, with the server's defaults made explicit. */
export function managedPart(server: Record<string, unknown>): ManagedStreamConfig {
  const num = (v: unknown, unset: number) => (typeof v === "number" ? v : unset);
  return {
    name: String(server.name),
    subjects: Array.isArray(server.subjects) ? server.subjects.map(String) : [],
    retention: (server.retention as ManagedStreamConfig["retention"]) ?? "limits",
    storage: (server.storage as ManagedStreamConfig["storage"]) ?? "file",
    num_replicas: num(server.num_replicas, 1) || 1,
    max_age: num(server.max_age, 0),
    duplicate_window: num(server.duplicate_window, 0),
    max_bytes: num(server.max_bytes, -1),
    max_msgs: num(server.max_msgs, -1),
    max_msg_size: num(server.max_msg_size, -1),
    discard: (server.discard as ManagedStreamConfig["discard"]) ?? "old",
    description: typeof server.description === "string" ? server.description : "",
    allow_msg_ttl: server.allow_msg_ttl === true,
    allow_msg_schedules: server.allow_msg_schedules === true,
    allow_atomic: server.allow_atomic === true,
    allow_batched: server.allow_batched === true,
  };
}
