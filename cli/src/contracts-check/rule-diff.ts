import { type DescField, type DescMessage, equals, isFieldSet, type Message } from "@bufbuild/protobuf";

/**
 * How one protovalidate rule of a field differs between two versions of the contracts, when the
 * new version accepts less than the old one. Loosened and unchanged rules yield nothing.
 */
export interface RuleChange {
  /** `added`: the rule did not exist; `tightened`: it existed and now accepts less; `required`: `required` was added. */
  readonly kind: "added" | "tightened" | "required";
  /** The rule as protovalidate names it, e.g. `string.max_len`, `repeated.items.string.pattern`, `cel[amount_positive]`. */
  readonly rule: string;
  /** The old value, absent for an added rule. */
  readonly before?: string;
  readonly after: string;
}

type Rules = Message & Record<string, unknown>;
type Bound = { readonly name: string; readonly value: unknown; readonly inclusive: boolean };

/** Rules whose larger value accepts less. */
const MIN = new Set(["min_len", "min_bytes", "min_items", "min_pairs"]);
/** Rules whose smaller value accepts less. */
const MAX = new Set(["max_len", "max_bytes", "max_items", "max_pairs", "within"]);
/** Rules that accept less whenever their value changes. */
const EXACT = new Set([
  "const",
  "len",
  "len_bytes",
  "pattern",
  "prefix",
  "suffix",
  "contains",
  "not_contains",
  "well_known_regex",
]);
/** Nested field rules (list items, map keys and values). */
const NESTED = new Set(["items", "keys", "values"]);
/** Documentation only. */
const IGNORED = new Set(["example"]);
/** `ignore` values from the most to the least lenient (IGNORE_ALWAYS, IGNORE_IF_ZERO_VALUE, IGNORE_UNSPECIFIED). */
const IGNORE_STRICTNESS: Record<number, number> = { 3: 0, 1: 1, 0: 2 };

function get(m: Rules, f: DescField): unknown {
  if (f.oneof) {
    const o = m[f.oneof.localName] as { case?: string; value?: unknown } | undefined;
    return o?.case === f.localName ? o.value : undefined;
  }
  return m[f.localName];
}

const value = (m: Rules | undefined, f: DescField): unknown =>
  m !== undefined && isFieldSet(m, f) ? get(m, f) : undefined;

/** Durations and timestamps as nanoseconds, so bounds compare as numbers. */
function comparable(v: unknown): number | bigint {
  if (typeof v === "number" || typeof v === "bigint") return v;
  if (typeof v === "boolean") return v ? 1 : 0;
  const t = v as { seconds?: bigint; nanos?: number };
  if (typeof t?.seconds === "bigint") return t.seconds * 1_000_000_000n + BigInt(t.nanos ?? 0);
  return Number.NaN;
}

function compare(a: unknown, b: unknown): number {
  const x = comparable(a);
  const y = comparable(b);
  if (typeof x === "bigint" && typeof y === "bigint") return x < y ? -1 : x > y ? 1 : 0;
  const nx = Number(x);
  const ny = Number(y);
  return nx < ny ? -1 : nx > ny ? 1 : 0;
}

/** A rule value as people read it in a proto file. */
export function show(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(show).join(", ")}]`;
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "bigint" || typeof v === "number" || typeof v === "boolean") return String(v);
  if (v instanceof Uint8Array) return `0x${Buffer.from(v).toString("hex")}`;
  const m = v as { $typeName?: string; seconds?: bigint; nanos?: number; paths?: string[] };
  if (m?.$typeName === "google.protobuf.Duration")
    return `${Number(m.seconds ?? 0n) + (m.nanos ?? 0) / 1e9}s`;
  if (m?.$typeName === "google.protobuf.Timestamp")
    return new Date(Number(m.seconds ?? 0n) * 1000 + Math.floor((m.nanos ?? 0) / 1e6)).toISOString();
  if (m?.$typeName === "google.protobuf.FieldMask") return `{paths: ${show(m.paths ?? [])}}`;
  return JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? String(x) : x));
}

const key = (v: unknown) => show(v);

function same(a: unknown, b: unknown, f: DescField): boolean {
  if (f.fieldKind === "message" && f.message && a && b) return equals(f.message, a as Message, b as Message);
  return key(a) === key(b);
}

/**
 * What became stricter from `before` to `after` (both `buf.validate.FieldRules`, either absent
 * when the field has no rules). Every rule protovalidate defines is compared by what it accepts:
 * a minimum raised, a maximum or bound lowered, an `in` list shrunk, a `not_in` list grown, a
 * constant, length, pattern, prefix or format added or changed, a flag such as `defined_only`
 * or `unique` turned on, a CEL expression added, `ignore` made less lenient. A rule this code
 * does not know (a future protovalidate field, a predefined rule extension) counts as tightened
 * when it changes: the check errs on the side of stored history.
 */
export function ruleChanges(
  fieldRulesSchema: DescMessage,
  before: Message | undefined,
  after: Message | undefined,
): RuleChange[] {
  const out: RuleChange[] = [];
  if (after) fieldRules("", fieldRulesSchema, before as Rules | undefined, after as Rules, out);
  return out;
}

function fieldRules(
  prefix: string,
  schema: DescMessage,
  before: Rules | undefined,
  after: Rules,
  out: RuleChange[],
): void {
  if (after.required === true && before?.required !== true) {
    out.push({ kind: "required", rule: `${prefix}required`, after: "true" });
  }
  const was = IGNORE_STRICTNESS[Number(before?.ignore ?? 0)] ?? 2;
  const now = IGNORE_STRICTNESS[Number(after.ignore ?? 0)] ?? 2;
  if (now > was) {
    out.push({
      kind: "tightened",
      rule: `${prefix}ignore`,
      before: String(before?.ignore ?? 0),
      after: String(after.ignore ?? 0),
    });
  }
  celRules(prefix, before, after, out);
  const oldType = before?.type as { case?: string; value?: Rules } | undefined;
  const newType = after.type as { case?: string; value?: Rules } | undefined;
  if (newType?.case && newType.value) {
    const previous = oldType?.case === newType.case ? oldType.value : undefined;
    const typeSchema = schema.fields.find((f) => f.localName === newType.case)?.message;
    if (typeSchema) typeRules(`${prefix}${newType.case}.`, typeSchema, previous, newType.value, out);
    else if (!previous || show(previous) !== show(newType.value))
      out.push({ kind: "tightened", rule: `${prefix}${newType.case}`, after: show(newType.value) });
  }
  unknownRules(prefix, before, after, out);
}

/** `cel` and `cel_expression`: any expression that was not there before. */
function celRules(prefix: string, before: Rules | undefined, after: Rules, out: RuleChange[]): void {
  const expr = (r: unknown) =>
    typeof r === "string" ? r : ((r as { expression?: string }).expression ?? "");
  for (const name of ["cel", "celExpression"] as const) {
    const old = new Set(((before?.[name] as unknown[] | undefined) ?? []).map(expr));
    for (const r of (after[name] as unknown[] | undefined) ?? []) {
      if (old.has(expr(r))) continue;
      const id = typeof r === "string" ? "" : ((r as { id?: string }).id ?? "");
      out.push({ kind: "added", rule: `${prefix}cel${id ? `[${id}]` : ""}`, after: JSON.stringify(expr(r)) });
    }
  }
}

/** Predefined rules (extensions of the rules messages) travel as unknown fields: a new or changed one counts. */
function unknownRules(prefix: string, before: Rules | undefined, after: Rules, out: RuleChange[]): void {
  const fields = (m: Rules | undefined) =>
    new Set(
      ((m?.$unknown as { no: number; data: Uint8Array }[] | undefined) ?? []).map(
        (u) => `${u.no}:${Buffer.from(u.data).toString("hex")}`,
      ),
    );
  const old = fields(before);
  for (const u of fields(after)) {
    if (!old.has(u))
      out.push({ kind: "added", rule: `${prefix}(extension ${u.split(":")[0]})`, after: "set" });
  }
}

/** The rules of one field type (`StringRules`, `Int32Rules`, `RepeatedRules`, ...). */
function typeRules(
  prefix: string,
  schema: DescMessage,
  before: Rules | undefined,
  after: Rules,
  out: RuleChange[],
): void {
  bounds(prefix, schema, before, after, out);
  for (const f of schema.fields) {
    if (IGNORED.has(f.name)) continue;
    if (f.oneof && (f.oneof.name === "less_than" || f.oneof.name === "greater_than")) continue;
    const rule = `${prefix}${f.name}`;
    const o = value(before, f);
    const n = value(after, f);
    if (NESTED.has(f.name)) {
      if (n !== undefined && f.message)
        fieldRules(`${rule}.`, f.message, o as Rules | undefined, n as Rules, out);
      continue;
    }
    if (f.name === "strict") {
      // Unset means true (strict header validation).
      if ((n ?? true) === true && o === false)
        out.push({ kind: "tightened", rule, before: "false", after: "true" });
      continue;
    }
    if (n === undefined) continue;
    if (f.fieldKind === "list") {
      const was = (o as unknown[] | undefined) ?? [];
      const now = n as unknown[];
      if (f.name === "in") {
        const allowed = new Set(now.map(key));
        if (was.length === 0) out.push({ kind: "added", rule, after: show(now) });
        else if (was.some((v) => !allowed.has(key(v))))
          out.push({ kind: "tightened", rule, before: show(was), after: show(now) });
      } else if (f.name === "not_in") {
        const refused = new Set(was.map(key));
        if (was.length === 0) out.push({ kind: "added", rule, after: show(now) });
        else if (now.some((v) => !refused.has(key(v))))
          out.push({ kind: "tightened", rule, before: show(was), after: show(now) });
      } else if (was.length !== now.length || was.some((v, i) => key(v) !== key(now[i]))) {
        out.push({ kind: o === undefined ? "added" : "tightened", rule, after: show(now) });
      }
      continue;
    }
    if (f.fieldKind === "scalar" && f.scalar === 8 /* bool */ && !EXACT.has(f.name)) {
      // Flags: defined_only, unique, finite, the string and bytes formats (email, uuid, ...).
      if (n === true && o !== true) out.push({ kind: "added", rule, after: "true" });
      continue;
    }
    if (o === undefined) {
      if (MIN.has(f.name) && compare(n, 0) <= 0) continue;
      out.push({ kind: "added", rule, after: show(n) });
      continue;
    }
    if (MIN.has(f.name)) {
      if (compare(n, o) > 0) out.push({ kind: "tightened", rule, before: show(o), after: show(n) });
    } else if (MAX.has(f.name)) {
      if (compare(n, o) < 0) out.push({ kind: "tightened", rule, before: show(o), after: show(n) });
    } else if (!same(o, n, f)) {
      // EXACT rules and anything this code does not know: a change accepts other values.
      out.push({ kind: "tightened", rule, before: show(o), after: show(n) });
    }
  }
  unknownRules(prefix, before, after, out);
}

function bound(schema: DescMessage, m: Rules | undefined, oneof: string): Bound | undefined {
  if (!m) return undefined;
  for (const f of schema.fields) {
    if (f.oneof?.name !== oneof || !isFieldSet(m, f)) continue;
    return { name: f.name, value: get(m, f), inclusive: f.name === "lte" || f.name === "gte" };
  }
  return undefined;
}

/**
 * `lt`/`lte`/`lt_now` and `gt`/`gte`/`gt_now`. A lower bound above the upper one means "outside
 * the range" in protovalidate; any change to such a pair counts as tightened.
 */
function bounds(
  prefix: string,
  schema: DescMessage,
  before: Rules | undefined,
  after: Rules,
  out: RuleChange[],
): void {
  const oldUpper = bound(schema, before, "less_than");
  const oldLower = bound(schema, before, "greater_than");
  const upper = bound(schema, after, "less_than");
  const lower = bound(schema, after, "greater_than");
  const described = (b: Bound) => `${b.name} ${show(b.value)}`;
  const exclusiveRange = (l?: Bound, u?: Bound) =>
    l !== undefined && u !== undefined && typeof l.value !== "boolean" && compare(l.value, u.value) > 0;
  const sameBound = (a?: Bound, b?: Bound) =>
    a === b || (a !== undefined && b !== undefined && a.name === b.name && key(a.value) === key(b.value));
  const check = (was: Bound | undefined, now: Bound | undefined, upper: boolean) => {
    if (!now) return;
    const rule = `${prefix}${now.name}`;
    if (!was) {
      out.push({ kind: "added", rule, after: show(now.value) });
      return;
    }
    if (typeof now.value === "boolean" || typeof was.value === "boolean") {
      // lt_now / gt_now against a fixed time: not comparable, so any change counts.
      if (!sameBound(was, now))
        out.push({ kind: "tightened", rule, before: described(was), after: described(now) });
      return;
    }
    const [a, b] = integers ? [inclusive(was, upper), inclusive(now, upper)] : [was, now];
    const c = compare(b.value, a.value);
    if ((upper ? c < 0 : c > 0) || (c === 0 && a.inclusive && !b.inclusive))
      out.push({ kind: "tightened", rule, before: described(was), after: described(now) });
  };
  // On integers an exclusive bound is an inclusive one a step inside: gt 0 is gte 1, lt 10 is lte 9.
  const integers = !/^buf\.validate\.(Float|Double|Duration|Timestamp)Rules$/.test(schema.typeName);
  const inclusive = (x: Bound, upper: boolean): Bound => {
    if (x.inclusive) return x;
    if (typeof x.value === "bigint") return { ...x, value: x.value + (upper ? -1n : 1n), inclusive: true };
    if (typeof x.value === "number") return { ...x, value: x.value + (upper ? -1 : 1), inclusive: true };
    return x;
  };
  if (exclusiveRange(oldLower, oldUpper) || exclusiveRange(lower, upper)) {
    if (!sameBound(oldUpper, upper) || !sameBound(oldLower, lower)) {
      const now = [lower, upper].filter((b) => b !== undefined);
      const was = [oldLower, oldUpper].filter((b) => b !== undefined);
      out.push({
        kind: was.length === 0 ? "added" : "tightened",
        rule: `${prefix}${now.map((b) => b.name).join("+") || "range"}`,
        ...(was.length > 0 ? { before: was.map(described).join(", ") } : {}),
        after: now.map(described).join(", ") || "none",
      });
    }
    return;
  }
  check(oldUpper, upper, true);
  check(oldLower, lower, false);
}
