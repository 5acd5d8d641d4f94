import {
  type DescEnum,
  type DescExtension,
  type DescField,
  type DescMessage,
  getOption,
  isFieldSet,
  type Message,
  ScalarType,
} from "@bufbuild/protobuf";
import {
  field as fieldRulesExt,
  file_buf_validate_validate,
  message as messageRulesExt,
  oneof as oneofRulesExt,
} from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import type { FieldViolation } from "../validate.js";
import { translatePattern } from "./pattern.js";

/**
 * How event objects look: protobuf-es messages (`{ case, value }` oneofs, 64-bit integers as
 * bigint, Timestamps as messages) or ts-proto objects (`{ $case, <name> }` oneofs, 64-bit
 * integers as number, Timestamps as `Date`). Field names are the same camelCase in both.
 */
export type Shape = "protobuf-es" | "ts-proto";

/**
 * Where checks report: `path` is the field path of the value being checked, kept as a stack
 * of names and indexes (pushed and popped while walking) and turned into a string only when a
 * rule is broken, so a valid event costs no string building.
 */
export interface CheckContext {
  out: FieldViolation[];
  path: (string | number)[];
}

/** Appends the violations of one message to `ctx.out`. */
export type MessageCheck = (message: unknown, ctx: CheckContext) => void;

/** Runs a compiled check on a message and returns its violations. */
export function runCheck(check: MessageCheck, message: unknown): FieldViolation[] {
  const ctx: CheckContext = { out: [], path: [] };
  check(message, ctx);
  return ctx.out;
}

/** The path as protovalidate prints it: `items[0].unit_price.currency_code`. */
function at(ctx: CheckContext): string {
  let s = "";
  for (const seg of ctx.path) {
    if (typeof seg === "number") s += `[${seg}]`;
    else s += s === "" ? seg : `.${seg}`;
  }
  return s;
}

/** Thrown by a check that cannot decide (e.g. a ts-proto string with lone surrogates): use protovalidate. */
export class Undecided extends Error {}

/** Thrown while compiling a message that uses a rule the fast path does not implement. */
class Unsupported extends Error {}

type ValueCheck = (value: unknown, ctx: CheckContext) => void;
type AnyRules = Message & Record<string, unknown> & { $unknown?: unknown[] };

/** The `buf.validate` extensions. */
export interface RuleExtensions {
  field: DescExtension;
  message: DescExtension;
  oneof: DescExtension;
}

export const RULE_EXTENSIONS: RuleExtensions = {
  field: fieldRulesExt,
  message: messageRulesExt,
  oneof: oneofRulesExt,
};

/** Descriptors of the rules messages, by type name. */
const RULE_DESCS = new Map(file_buf_validate_validate.messages.map((d) => [d.typeName, d]));

/**
 * Compiles plain functions that check the standard `buf.validate` rules of `desc`, with the
 * same rule ids, messages, field paths and order as protovalidate. Returns `null` when the
 * message has no rules at all, and `undefined` when it (or a nested message) uses a rule this
 * compiler does not implement (CEL, predefined rules, ignore options, bytes/map/timestamp
 * rules, unusual patterns, ...): callers then use protovalidate for that type.
 */
export function compileMessage(
  desc: DescMessage,
  shape: Shape,
  ext: RuleExtensions,
): MessageCheck | null | undefined {
  try {
    return new Compiler(shape, ext).message(desc);
  } catch (err) {
    if (err instanceof Unsupported) return undefined;
    throw err;
  }
}

class Compiler {
  readonly #shape: Shape;
  readonly #ext: RuleExtensions;
  readonly #done = new Map<DescMessage, MessageCheck | null>();
  readonly #compiling = new Set<DescMessage>();

  constructor(shape: Shape, ext: RuleExtensions) {
    this.#shape = shape;
    this.#ext = ext;
  }

  /** localNames of the fields set in a rules message (a oneof by its name, except string formats). */
  #names(m: AnyRules): string[] {
    const desc = RULE_DESCS.get(m.$typeName);
    if (!desc) throw new Unsupported(`rules type ${m.$typeName}`);
    const names = new Set<string>();
    for (const f of desc.fields) {
      if (!isFieldSet(m, f)) continue;
      names.add(f.oneof && f.oneof.localName !== "wellKnown" ? f.oneof.localName : f.localName);
    }
    return [...names];
  }

  message(desc: DescMessage): MessageCheck | null {
    const known = this.#done.get(desc);
    if (known !== undefined) return known;
    if (this.#compiling.has(desc)) throw new Unsupported(`recursive ${desc.typeName}`);
    this.#compiling.add(desc);
    const msgRules = getOption(desc, this.#ext.message) as AnyRules;
    if (hasUnknown(msgRules) || this.#names(msgRules).length > 0) {
      throw new Unsupported(`message rules on ${desc.typeName}`);
    }
    const checks: MessageCheck[] = [];
    for (const field of desc.fields) {
      const c = this.#field(field);
      if (c) checks.push(c);
    }
    for (const oneof of desc.oneofs) {
      const rules = getOption(oneof, this.#ext.oneof) as AnyRules;
      const names = this.#names(rules);
      if (hasUnknown(rules) || names.some((n) => n !== "required")) {
        throw new Unsupported(`oneof rules on ${oneof.name}`);
      }
      if (!rules.required) continue;
      const get = this.#oneofCase(oneof.localName);
      const name = oneof.name;
      checks.push((m, ctx) => {
        if (get(m) === undefined) {
          ctx.path.push(name);
          ctx.out.push({
            field: at(ctx),
            rule: "required",
            message: "exactly one field is required in oneof",
          });
          ctx.path.pop();
        }
      });
    }
    this.#compiling.delete(desc);
    const result = combine(checks);
    this.#done.set(desc, result);
    return result;
  }

  /** The check of one field of a message: required, presence, then its rules. */
  #field(field: DescField): MessageCheck | null {
    const rules = getOption(field, this.#ext.field) as AnyRules;
    const names = this.#names(rules);
    if (hasUnknown(rules)) throw new Unsupported(`predefined rules on ${field.name}`);
    for (const n of names) {
      if (n !== "required" && n !== "type") throw new Unsupported(`${n} on ${field.name}`);
    }
    if ((field.presence as number) === 3) throw new Unsupported("legacy required"); // LEGACY_REQUIRED
    const required = rules.required === true;
    const get = this.#getter(field);
    const isSet = this.#isSet(field);
    const pass = this.#fieldValue(field, rules);
    if (!required && !pass) return null;
    // implicit-presence scalars and enums, and lists, are checked even when empty; the rest only when set
    const always =
      field.fieldKind === "list" ||
      ((field.fieldKind === "scalar" || field.fieldKind === "enum") &&
        field.oneof === undefined &&
        (field.presence as number) === 2); // IMPLICIT
    const name = field.name;
    return (m, ctx) => {
      const v = get(m);
      if (required && !isSet(v)) {
        ctx.path.push(name);
        ctx.out.push({ field: at(ctx), rule: "required", message: "value is required" });
        ctx.path.pop();
        return;
      }
      if (pass && (always || isSet(v))) {
        ctx.path.push(name);
        pass(v, ctx);
        ctx.path.pop();
      }
    };
  }

  /** The value rules of a field (by kind), or null if none. */
  #fieldValue(field: DescField, rules: AnyRules): ValueCheck | null {
    const type = rules.type as { case: string | undefined; value: AnyRules };
    switch (field.fieldKind) {
      case "scalar":
        return this.#scalar(field.scalar, type);
      case "enum":
        return this.#enum(field.enum, type);
      case "message": {
        if (type.case !== undefined)
          throw new Unsupported(`${type.case} rules on message field ${field.name}`);
        const nested = this.message(field.message);
        return nested;
      }
      case "list": {
        if (type.case !== undefined && type.case !== "repeated")
          throw new Unsupported(`${type.case} on list`);
        return this.#list(field, type.case === "repeated" ? type.value : undefined);
      }
      case "map": {
        if (type.case !== undefined) throw new Unsupported("map rules");
        if (field.mapKind === "message" && this.message(field.message))
          throw new Unsupported("map of validated messages");
        return null;
      }
    }
  }

  #list(field: DescField & { fieldKind: "list" }, rules: AnyRules | undefined): ValueCheck | null {
    const checks: ValueCheck[] = [];
    let itemRules: AnyRules | undefined;
    if (rules) {
      if (hasUnknown(rules)) throw new Unsupported("predefined repeated rules");
      const names = this.#names(rules);
      for (const n of names) {
        if (n !== "minItems" && n !== "maxItems" && n !== "items") throw new Unsupported(`repeated.${n}`);
      }
      if (names.includes("minItems")) {
        const min = rules.minItems as bigint;
        const lo = Number(min);
        const message = `must contain at least ${min} item(s)`;
        checks.push((v, ctx) => {
          if ((v as unknown[]).length < lo)
            ctx.out.push({ field: at(ctx), rule: "repeated.min_items", message });
        });
      }
      if (names.includes("maxItems")) {
        const max = rules.maxItems as bigint;
        const hi = Number(max);
        const message = `must contain no more than ${max} item(s)`;
        checks.push((v, ctx) => {
          if ((v as unknown[]).length > hi)
            ctx.out.push({ field: at(ctx), rule: "repeated.max_items", message });
        });
      }
      if (names.includes("items")) {
        itemRules = rules.items as AnyRules;
        if (hasUnknown(itemRules)) throw new Unsupported("predefined item rules");
        for (const n of this.#names(itemRules)) {
          if (n !== "type") throw new Unsupported(`items.${n}`);
        }
      }
    }
    const type = (itemRules?.type ?? { case: undefined, value: {} }) as {
      case: string | undefined;
      value: AnyRules;
    };
    let item: ValueCheck | null = null;
    if (field.listKind === "message") {
      if (type.case !== undefined) throw new Unsupported("message item rules");
      const nested = this.message(field.message);
      item = nested;
    } else if (field.listKind === "scalar") {
      item = this.#scalar(field.scalar, type);
    } else {
      item = this.#enum(field.enum, type);
    }
    if (item) {
      const each = item;
      checks.push((v, ctx) => {
        const list = v as unknown[];
        for (let i = 0; i < list.length; i++) {
          ctx.path.push(i);
          each(list[i], ctx);
          ctx.path.pop();
        }
      });
    }
    return combineValue(checks);
  }

  #enum(desc: DescEnum, type: { case: string | undefined; value: AnyRules }): ValueCheck | null {
    if (type.case === undefined) return null;
    if (type.case !== "enum") throw new Unsupported(`${type.case} on enum`);
    const r = type.value;
    if (hasUnknown(r)) throw new Unsupported("predefined enum rules");
    const checks: ValueCheck[] = [];
    const names = this.#names(r);
    for (const n of names) {
      if (!["definedOnly", "const", "in", "notIn", "example"].includes(n)) throw new Unsupported(`enum.${n}`);
    }
    if (r.definedOnly === true) {
      const defined = new Set(desc.values.map((v) => v.number));
      checks.push((v, ctx) => {
        if (!defined.has(v as number)) {
          ctx.out.push({
            field: at(ctx),
            rule: "enum.defined_only",
            message: "value must be one of the defined enum values",
          });
        }
      });
    }
    if (names.includes("const")) {
      const c = r.const as number;
      checks.push((v, ctx) => {
        if (v !== c) ctx.out.push({ field: at(ctx), rule: "enum.const", message: `must equal ${c}` });
      });
    }
    const inList = r.in as number[];
    if (inList.length > 0) {
      const msg = `must be in list ${formatList(inList, String)}`;
      checks.push((v, ctx) => {
        if (!inList.includes(v as number)) ctx.out.push({ field: at(ctx), rule: "enum.in", message: msg });
      });
    }
    const notIn = r.notIn as number[];
    if (notIn.length > 0) {
      const msg = `must not be in list ${formatList(notIn, String)}`;
      checks.push((v, ctx) => {
        if (notIn.includes(v as number)) ctx.out.push({ field: at(ctx), rule: "enum.not_in", message: msg });
      });
    }
    return combineValue(checks);
  }

  #scalar(scalar: ScalarType, type: { case: string | undefined; value: AnyRules }): ValueCheck | null {
    if (type.case === undefined) return null;
    const expected = RULES_OF_SCALAR[scalar];
    if (type.case !== expected) throw new Unsupported(`${type.case} rules on ${ScalarType[scalar]}`);
    if (hasUnknown(type.value)) throw new Unsupported("predefined rules");
    if (type.case === "string") return this.#string(type.value);
    if (NUMERIC.has(type.case)) return this.#numeric(type.case, scalar, type.value);
    throw new Unsupported(`${type.case} rules`);
  }

  #string(r: AnyRules): ValueCheck | null {
    const checks: ValueCheck[] = [];
    const names = new Set(this.#names(r));
    for (const n of names) {
      if (!STRING_RULES.has(n)) throw new Unsupported(`string.${n}`);
    }
    const wk = r.wellKnown as { case: string | undefined; value: unknown };
    if (wk.case !== undefined && !(wk.case in WELL_KNOWN && wk.value === true)) {
      throw new Unsupported(`string.${wk.case}`);
    }
    const tsProto = this.#shape === "ts-proto";
    if (tsProto) {
      // ts-proto encodes lone surrogates as U+FFFD: the receiver would see another string
      checks.push((v) => {
        if (!(v as unknown as { isWellFormed(): boolean }).isWellFormed())
          throw new Undecided("string with lone surrogates");
      });
    }
    if (names.has("const")) {
      const c = r.const as string;
      checks.push((v, ctx) => {
        if (v !== c) ctx.out.push({ field: at(ctx), rule: "string.const", message: `must equal \`${c}\`` });
      });
    }
    const lenRule = (name: string, rule: string, bad: (len: number, x: number) => boolean, msg: string) => {
      if (!names.has(name)) return;
      const x = Number(r[name] as bigint);
      const message = msg.replace("#", String(r[name]));
      checks.push((v, ctx) => {
        if (bad(codepointLength(v as string), x)) ctx.out.push({ field: at(ctx), rule, message });
      });
    };
    lenRule("len", "string.len", (l, x) => l !== x, "must be # characters");
    lenRule("minLen", "string.min_len", (l, x) => l < x, "must be at least # characters");
    lenRule("maxLen", "string.max_len", (l, x) => l > x, "must be at most # characters");
    const byteRule = (name: string, rule: string, bad: (len: number, x: number) => boolean, msg: string) => {
      if (!names.has(name)) return;
      const x = Number(r[name] as bigint);
      const message = msg.replace("#", String(r[name]));
      checks.push((v, ctx) => {
        if (bad(Buffer.byteLength(v as string), x)) ctx.out.push({ field: at(ctx), rule, message });
      });
    };
    byteRule("lenBytes", "string.len_bytes", (l, x) => l !== x, "must be # bytes");
    byteRule("minBytes", "string.min_bytes", (l, x) => l < x, "must be at least # bytes");
    byteRule("maxBytes", "string.max_bytes", (l, x) => l > x, "must be at most # bytes");
    if (names.has("pattern")) {
      const src = r.pattern as string;
      const re = translatePattern(src);
      if (!re) throw new Unsupported(`pattern ${src}`);
      const message = `does not match regex pattern \`${src}\``;
      checks.push((v, ctx) => {
        if (!re.test(v as string)) ctx.out.push({ field: at(ctx), rule: "string.pattern", message });
      });
    }
    const strRule = (name: string, rule: string, bad: (v: string, x: string) => boolean, msg: string) => {
      if (!names.has(name)) return;
      const x = r[name] as string;
      const message = `${msg} \`${x}\``;
      checks.push((v, ctx) => {
        if (bad(v as string, x)) ctx.out.push({ field: at(ctx), rule, message });
      });
    };
    strRule("prefix", "string.prefix", (v, x) => !v.startsWith(x), "does not have prefix");
    strRule("suffix", "string.suffix", (v, x) => !v.endsWith(x), "does not have suffix");
    strRule("contains", "string.contains", (v, x) => !v.includes(x), "does not contain substring");
    strRule("notContains", "string.not_contains", (v, x) => v.includes(x), "contains substring");
    const inList = r.in as string[];
    if (inList.length > 0) {
      const message = `must be in list ${formatList(inList, (s) => s)}`;
      checks.push((v, ctx) => {
        if (!inList.includes(v as string)) ctx.out.push({ field: at(ctx), rule: "string.in", message });
      });
    }
    const notIn = r.notIn as string[];
    if (notIn.length > 0) {
      const message = `must not be in list ${formatList(notIn, (s) => s)}`;
      checks.push((v, ctx) => {
        if (notIn.includes(v as string)) ctx.out.push({ field: at(ctx), rule: "string.not_in", message });
      });
    }
    if (wk.case !== undefined) {
      const spec = WELL_KNOWN[wk.case]!;
      const rule = `string.${snake(wk.case)}`;
      checks.push((v, ctx) => {
        if (v === "") ctx.out.push({ field: at(ctx), rule: `${rule}_empty`, message: spec.empty });
        else if (!spec.re.test(v as string)) ctx.out.push({ field: at(ctx), rule, message: spec.msg });
      });
    }
    return combineValue(checks);
  }

  #numeric(kind: string, scalar: ScalarType, r: AnyRules): ValueCheck | null {
    const names = this.#names(r);
    for (const n of names) {
      if (!["const", "lessThan", "greaterThan", "in", "notIn", "finite", "example"].includes(n)) {
        throw new Unsupported(`${kind}.${n}`);
      }
    }
    const float = kind === "float" || kind === "double";
    const big = BIG.has(kind);
    const fmt = float ? printFloat : (x: unknown) => String(x);
    // the value as protovalidate sees it after decoding: bigint for 64-bit, float32-rounded floats
    const toValue: (v: unknown) => number | bigint = big
      ? (v) => {
          if (typeof v === "bigint") return v;
          if (typeof v === "number" && Number.isSafeInteger(v)) return BigInt(v);
          throw new Undecided("64-bit integer that is not a safe integer");
        }
      : scalar === ScalarType.FLOAT && this.#shape === "ts-proto"
        ? (v) => Math.fround(v as number)
        : (v) => v as number;
    const checks: ValueCheck[] = [];
    if (names.includes("const")) {
      const c = r.const as number | bigint;
      const message = `must equal ${fmt(c)}`;
      checks.push((v, ctx) => {
        if (toValue(v) !== c) ctx.out.push({ field: at(ctx), rule: `${kind}.const`, message });
      });
    }
    const gt = r.greaterThan as { case: "gt" | "gte" | undefined; value: number | bigint };
    const lt = r.lessThan as { case: "lt" | "lte" | undefined; value: number | bigint };
    if ((gt.case && Number.isNaN(gt.value)) || (lt.case && Number.isNaN(lt.value)))
      throw new Unsupported("NaN bound");
    const below = (v: number | bigint) => (gt.case === "gt" ? v <= gt.value : v < gt.value);
    const above = (v: number | bigint) => (lt.case === "lt" ? v >= lt.value : v > lt.value);
    const loMsg =
      gt.case === "gt" ? `greater than ${fmt(gt.value)}` : `greater than or equal to ${fmt(gt.value)}`;
    const hiMsg = lt.case === "lt" ? `less than ${fmt(lt.value)}` : `less than or equal to ${fmt(lt.value)}`;
    const nan = (v: number | bigint) => float && Number.isNaN(v);
    if (gt.case && lt.case) {
      const normal = lt.value >= gt.value;
      const rule = `${kind}.${gt.case}_${lt.case}${normal ? "" : "_exclusive"}`;
      const message = `must be ${loMsg} ${normal ? "and" : "or"} ${hiMsg}`;
      checks.push((raw, ctx) => {
        const v = toValue(raw);
        const fail = normal ? nan(v) || above(v) || below(v) : nan(v) || (above(v) && below(v));
        if (fail) ctx.out.push({ field: at(ctx), rule, message });
      });
    } else if (gt.case) {
      const rule = `${kind}.${gt.case}`;
      const message = `must be ${loMsg}`;
      checks.push((raw, ctx) => {
        const v = toValue(raw);
        if (nan(v) || below(v)) ctx.out.push({ field: at(ctx), rule, message });
      });
    } else if (lt.case) {
      const rule = `${kind}.${lt.case}`;
      const message = `must be ${hiMsg}`;
      checks.push((raw, ctx) => {
        const v = toValue(raw);
        if (nan(v) || above(v)) ctx.out.push({ field: at(ctx), rule, message });
      });
    }
    const inList = r.in as (number | bigint)[];
    if (inList.length > 0) {
      const message = `must be in list ${formatList(inList, fmt)}`;
      checks.push((v, ctx) => {
        if (!inList.includes(toValue(v))) ctx.out.push({ field: at(ctx), rule: `${kind}.in`, message });
      });
    }
    const notIn = r.notIn as (number | bigint)[];
    if (notIn.length > 0) {
      const message = `must not be in list ${formatList(notIn, fmt)}`;
      checks.push((v, ctx) => {
        if (notIn.includes(toValue(v))) ctx.out.push({ field: at(ctx), rule: `${kind}.not_in`, message });
      });
    }
    if (float && r.finite === true) {
      checks.push((v, ctx) => {
        if (!Number.isFinite(toValue(v)))
          ctx.out.push({ field: at(ctx), rule: `${kind}.finite`, message: "must be finite" });
      });
    }
    return combineValue(checks);
  }

  /** Reads a field's value from a message of this shape (undefined when a oneof member is not the case). */
  #getter(field: DescField): (m: unknown) => unknown {
    const key = field.localName;
    if (field.oneof) {
      const o = field.oneof.localName;
      if (this.#shape === "protobuf-es") {
        return (m) => {
          const c = (m as Record<string, { case?: string; value?: unknown }>)[o];
          return c?.case === key ? c.value : undefined;
        };
      }
      return (m) => {
        const c = (m as Record<string, Record<string, unknown> | undefined>)[o];
        return c?.$case === key ? c[key] : undefined;
      };
    }
    return (m) => (m as Record<string, unknown>)[key];
  }

  /** The case of a oneof in this shape, or undefined. */
  #oneofCase(local: string): (m: unknown) => unknown {
    if (this.#shape === "protobuf-es") {
      return (m) => (m as Record<string, { case?: string } | undefined>)[local]?.case;
    }
    return (m) => (m as Record<string, { $case?: string } | undefined>)[local]?.$case;
  }

  /** Whether a field value counts as set (protovalidate's `isSet`). */
  #isSet(field: DescField): (v: unknown) => boolean {
    if (field.fieldKind === "list") return (v) => Array.isArray(v) && v.length > 0;
    if (field.fieldKind === "map") return (v) => v != null && Object.keys(v).length > 0;
    if (field.fieldKind === "message" || field.oneof || (field.presence as number) !== 2) {
      return (v) => v !== undefined && v !== null;
    }
    // implicit presence: set means not the zero value
    return (v) => {
      if (v === undefined || v === null) return false;
      if (typeof v === "string") return v !== "";
      if (typeof v === "number") return v !== 0 || Object.is(v, -0);
      if (typeof v === "bigint") return v !== 0n;
      if (typeof v === "boolean") return v;
      if (v instanceof Uint8Array) return v.length > 0;
      return true;
    };
  }
}

const RULES_OF_SCALAR: Record<ScalarType, string> = {
  [ScalarType.DOUBLE]: "double",
  [ScalarType.FLOAT]: "float",
  [ScalarType.INT64]: "int64",
  [ScalarType.UINT64]: "uint64",
  [ScalarType.INT32]: "int32",
  [ScalarType.FIXED64]: "fixed64",
  [ScalarType.FIXED32]: "fixed32",
  [ScalarType.BOOL]: "bool",
  [ScalarType.STRING]: "string",
  [ScalarType.BYTES]: "bytes",
  [ScalarType.UINT32]: "uint32",
  [ScalarType.SFIXED32]: "sfixed32",
  [ScalarType.SFIXED64]: "sfixed64",
  [ScalarType.SINT32]: "sint32",
  [ScalarType.SINT64]: "sint64",
};
const NUMERIC = new Set([
  "double",
  "float",
  "int32",
  "int64",
  "uint32",
  "uint64",
  "sint32",
  "sint64",
  "fixed32",
  "fixed64",
  "sfixed32",
  "sfixed64",
]);
const BIG = new Set(["int64", "uint64", "sint64", "fixed64", "sfixed64"]);
const STRING_RULES = new Set([
  "const",
  "len",
  "minLen",
  "maxLen",
  "lenBytes",
  "minBytes",
  "maxBytes",
  "pattern",
  "prefix",
  "suffix",
  "contains",
  "notContains",
  "in",
  "notIn",
  "email",
  "uuid",
  "tuuid",
  "example",
]);
/** The string formats implemented here, with protovalidate's messages (WHATWG e-mail, RFC 4122 UUID text). */
const WELL_KNOWN: Record<string, { re: RegExp; msg: string; empty: string }> = {
  email: {
    re: /^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/,
    msg: "must be a valid email address",
    empty: "value is empty, which is not a valid email address",
  },
  uuid: {
    re: /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/,
    msg: "must be a valid UUID",
    empty: "value is empty, which is not a valid UUID",
  },
  tuuid: {
    re: /^[0-9a-fA-F]{32}$/,
    msg: "must be a valid trimmed UUID",
    empty: "value is empty, which is not a valid trimmed UUID",
  },
};

function snake(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function hasUnknown(m: AnyRules): boolean {
  return (m.$unknown?.length ?? 0) > 0;
}

function combine(checks: MessageCheck[]): MessageCheck | null {
  if (checks.length === 0) return null;
  if (checks.length === 1) return checks[0]!;
  return (m, ctx) => {
    for (let i = 0; i < checks.length; i++) checks[i]!(m, ctx);
  };
}

function combineValue(checks: ValueCheck[]): ValueCheck | null {
  if (checks.length === 0) return null;
  if (checks.length === 1) return checks[0]!;
  return (v, ctx) => {
    for (let i = 0; i < checks.length; i++) checks[i]!(v, ctx);
  };
}

/** Code points, as CEL's size(string). */
function codepointLength(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d < 0xe000) {
        n--;
        i++;
      }
    }
  }
  return n;
}

function printFloat(n: unknown): string {
  const x = n as number;
  if (Number.isNaN(x)) return "NaN";
  if (x === Number.POSITIVE_INFINITY) return "Infinity";
  if (x === Number.NEGATIVE_INFINITY) return "-Infinity";
  return x.toString();
}

function formatList<T>(vs: readonly T[], fmt: (v: T) => string): string {
  return `[${vs.map(fmt).join(", ")}]`;
}
