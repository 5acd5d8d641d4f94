import { type DescField, ScalarType } from "@bufbuild/protobuf";
import type { Catalog, StreamSpec } from "@jetkit/contracts";
import { fieldRuleBreaks } from "../contracts-check/field-rules.js";
import { checkHistory, type HistoryCheck } from "./check.js";
import type { ReadImage } from "./image.js";
import type { CompatibilityMode, Modes } from "./modes.js";

/** One change between two versions' contracts, for people (`text`) and machines (`kind`, `subject`). */
export interface ContractChange {
  readonly kind:
    | "event-added"
    | "event-removed"
    | "event-subject-changed"
    | "event-partition-key-changed"
    | "field-added"
    | "field-removed"
    | "field-changed"
    | "field-rules-stricter"
    | "stream-added"
    | "stream-removed"
    | "stream-changed";
  /** The event type or stream name the change is about. */
  readonly on: string;
  readonly text: string;
}

function fieldType(f: DescField): string {
  const scalar = (s: ScalarType) => ScalarType[s].toLowerCase();
  switch (f.fieldKind) {
    case "scalar":
      return scalar(f.scalar);
    case "enum":
      return f.enum.typeName;
    case "message":
      return f.message.typeName;
    case "list":
      return `repeated ${f.listKind === "scalar" ? scalar(f.scalar) : f.listKind === "enum" ? f.enum.typeName : f.message.typeName}`;
    case "map":
      return `map<${scalar(f.mapKey)}, ${f.mapKind === "scalar" ? scalar(f.scalar) : f.mapKind === "enum" ? f.enum.typeName : f.message.typeName}>`;
  }
}

const STREAM_FIELDS = [
  "subjects",
  "retention",
  "storage",
  "replicas",
  "maxAgeMs",
  "duplicateWindowMs",
  "maxBytes",
  "maxMsgSize",
  "discard",
] as const satisfies readonly (keyof StreamSpec)[];

const shown = (v: unknown) =>
  v === undefined ? "unset" : Array.isArray(v) ? `[${v.join(", ")}]` : String(v);

/** What changed from `before` to `after`: events, their subjects, keys and fields (by number), streams and their settings. */
export function contractChanges(before: Catalog, after: Catalog): ContractChange[] {
  const out: ContractChange[] = [];
  for (const e of after.events) {
    const old = before.findByType(e.type);
    if (!old) {
      out.push({
        kind: "event-added",
        on: e.type,
        text: `event ${e.type} added on subject ${e.subject} (stream ${e.stream})`,
      });
      continue;
    }
    if (old.subject !== e.subject)
      out.push({
        kind: "event-subject-changed",
        on: e.type,
        text: `event ${e.type}: subject ${old.subject} -> ${e.subject}`,
      });
    if (old.partitionKey !== e.partitionKey)
      out.push({
        kind: "event-partition-key-changed",
        on: e.type,
        text: `event ${e.type}: partition key ${shown(old.partitionKey)} -> ${shown(e.partitionKey)}`,
      });
    const was = new Map(old.schema.fields.map((f) => [f.number, f]));
    for (const f of e.schema.fields) {
      const o = was.get(f.number);
      if (!o)
        out.push({
          kind: "field-added",
          on: e.type,
          text: `event ${e.type}: field ${f.name} = ${f.number} (${fieldType(f)}) added`,
        });
      else if (o.name !== f.name || fieldType(o) !== fieldType(f))
        out.push({
          kind: "field-changed",
          on: e.type,
          text: `event ${e.type}: field ${f.number} ${o.name} (${fieldType(o)}) -> ${f.name} (${fieldType(f)})`,
        });
      was.delete(f.number);
    }
    for (const f of was.values())
      out.push({
        kind: "field-removed",
        on: e.type,
        text: `event ${e.type}: field ${f.name} = ${f.number} (${fieldType(f)}) removed`,
      });
  }
  for (const b of fieldRuleBreaks(before, after))
    out.push({ kind: "field-rules-stricter", on: b.file, text: `${b.rule}: ${b.message.split(";")[0]}` });
  for (const e of before.events) {
    if (!after.findByType(e.type))
      out.push({ kind: "event-removed", on: e.type, text: `event ${e.type} (subject ${e.subject}) removed` });
  }
  for (const s of after.streams) {
    const old = before.stream(s.name);
    if (!old) {
      out.push({
        kind: "stream-added",
        on: s.name,
        text: `stream ${s.name} added (${s.subjects.join(", ")})`,
      });
      continue;
    }
    const changed = STREAM_FIELDS.filter((k) => shown(old[k]) !== shown(s[k]));
    if (changed.length > 0)
      out.push({
        kind: "stream-changed",
        on: s.name,
        text: `stream ${s.name}: ${changed.map((k) => `${k} ${shown(old[k])} -> ${shown(s[k])}`).join(", ")}`,
      });
  }
  for (const s of before.streams) {
    if (!after.stream(s.name))
      out.push({ kind: "stream-removed", on: s.name, text: `stream ${s.name} removed` });
  }
  return out;
}

/** What {@link diffVersions} returns: the changes, and whether `b` may follow `a` under `b`'s modes (`none` read as backward), with the rules that say no. */
export interface VersionDiff {
  readonly from: number;
  readonly to: number;
  readonly changes: readonly ContractChange[];
  readonly compatible: boolean;
  /** The rule names of the findings (refused ones), sorted, each once. */
  readonly rules: readonly string[];
  readonly check: HistoryCheck;
}

/** The changes from version `a` to version `b`, checked with the push's rules under `b`'s modes (no overrides). */
export async function diffVersions(
  a: { version: number; catalog: Catalog },
  b: { version: number; image: ReadImage; modes: Modes },
  buf: string,
): Promise<VersionDiff> {
  // `none` waives findings at push time; a diff still says what they are (checked as backward).
  const strict = (m: CompatibilityMode): CompatibilityMode => (m === "none" ? "backward" : m);
  const modes: Modes = {
    default: strict(b.modes.default),
    streams: Object.fromEntries(Object.entries(b.modes.streams).map(([k, v]) => [k, strict(v)])),
    packages: Object.fromEntries(Object.entries(b.modes.packages).map(([k, v]) => [k, strict(v)])),
  };
  const check = await checkHistory({
    image: b.image,
    history: [{ version: a.version, catalog: a.catalog, allowed: [] }],
    modes,
    buf,
  });
  return {
    from: a.version,
    to: b.version,
    changes: contractChanges(a.catalog, b.image.catalog),
    compatible: check.ok,
    rules: [...new Set(check.problems.map((p) => p.rule))].sort(),
    check,
  };
}
