import type { CatalogBreak } from "./compat.js";

/** One of jetkit's own rules (beyond buf lint and buf breaking): a stable name and what it protects. */
export interface ContractRule {
  /** The step that reports it. */
  readonly step: "catalog" | "compat";
  /** What a change breaking it would break, for people. */
  readonly protects: string;
}

/**
 * jetkit's compatibility and stored-history rules, by their stable names. Every rule the check
 * can report beyond buf's own has an entry (the type makes a new rule without one a compile
 * error), and `contracts/README.md` lists each: names never change, so `--allow` and CI
 * configurations keep working.
 */
export const CONTRACT_RULES: Readonly<Record<CatalogBreak["rule"], ContractRule>> = {
  EVENT_SUBJECT_REMOVED: { step: "compat", protects: "consumers subscribed to the subject" },
  EVENT_SUBJECT_RENAMED: { step: "compat", protects: "consumers subscribed to the old subject" },
  EVENT_TYPE_CHANGED: { step: "compat", protects: "decoding of stored and in-flight events" },
  EVENT_STREAM_MOVED: { step: "compat", protects: "one history per subject; consumers of the old stream" },
  STREAM_REMOVED: { step: "compat", protects: "the stream's stored events" },
  EVENT_PARTITION_KEY_CHANGED: { step: "compat", protects: "the per-key order promised to consumers" },
  FIELD_RULE_TIGHTENED: { step: "compat", protects: "stored events that passed yesterday's field rules" },
  FIELD_RULE_ADDED: { step: "compat", protects: "stored events that passed yesterday's field rules" },
  FIELD_REQUIRED_ADDED: { step: "compat", protects: "stored events that lack the field" },
  MESSAGE_RULE_ADDED: { step: "compat", protects: "stored events that passed yesterday's message rules" },
  STREAM_RETENTION_CHANGED: { step: "compat", protects: "the stream's stored events and replay" },
  STREAM_STORAGE_CHANGED: {
    step: "compat",
    protects: "the stream's stored events (a change means recreate)",
  },
  STREAM_DISCARD_CHANGED: {
    step: "compat",
    protects: "stored events (discard old) or producers (discard new)",
  },
  STREAM_LIMIT_SHRUNK: {
    step: "compat",
    protects: "stored events within the old limits; accepted event sizes",
  },
  STREAM_REPLICAS_LOWERED: { step: "compat", protects: "the history surviving a node loss" },
  STREAM_DUPLICATE_WINDOW_SHORT: { step: "catalog", protects: "exactly-once storage of producers' retries" },
};
