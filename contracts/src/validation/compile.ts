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

/** The path as protovalidate prints it, of `seg` below `ctx.path`: `items[0].unit_price.currency_code`. */
function at(ctx: CheckContext, seg: string | number): string {
  let s = "";
  for (const p of ctx.path) {
    if (typeof p === "number") s += `[${p}]`;
    else s += s === "" ? p : `.${p}`;
  }
  if (typeof seg === "number") return `${s}[${seg}]`;
  return s === "" ? seg : `${s}.${seg}`;
}

/** Thrown by a check that cannot decide (e.g. a ts-proto string with lone surrogates): use protovalidate. */
export class Undecided extends Error {}

/** Thrown while compiling a message that uses a rule the fast path does not implement. */
class Unsupported extends Error {}

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
    return new Compiler(shape, ext).build(desc);
  } catch (err) {
    if (err instanceof Unsupported) return undefined;
    throw err;
  }
}

/**
 * Generates the source of one JavaScript function per message type (straight-line code: one
 * `if` per rule, constants bound once) and builds them with `new Function`. Chained closures
 * cost a call and a path push/pop per rule; generated code lets V8 inline the whole walk of an
 * event. A field's path segment is only pushed when descending into a nested message or a list,
 * and a path string is only built when a rule is broken.
 */
class Compiler {
  readonly #shape: Shape;
  readonly #ext: RuleExtensions;
  readonly #done = new Map<DescMessage, string | null>();
  readonly #compiling = new Set<DescMessage>();
  /** Values the generated code reads as `K[i]` (regexes, lists, bounds, bigints). */
  readonly #consts: unknown[] = [];
  /** Generated function declarations, one per message type with rules. */
  readonly #fns: string[] = [];
  #vars = 0;

  constructor(shape: Shape, ext: RuleExtensions) {
    this.#shape = shape;
    this.#ext = ext;
  }

  /** The check of `desc` as a function, or null when it has no rules. */
  build(desc: DescMessage): MessageCheck | null {
    const root = this.message(desc);
    if (root === null) return null;
    const body = `"use strict";\n${this.#fns.join("\n")}\nreturn ${root};`;
    // The source comes from descriptor rules only: values reach it through K, names and
    // messages through JSON.stringify, so no event or user input is ever compiled.
    const make = new Function("K", "H", body) as (k: unknown[], h: typeof HELPERS) => MessageCheck;
    return make(this.#consts, HELPERS);
  }

  /** A constant for the generated code. */
  #k(value: unknown): string {
    this.#consts.push(value);
    return `K[${this.#consts.length - 1}]`;
  }

  /** A fresh local variable name. */
  #var(prefix: string): string {
    return `${prefix}${this.#vars++}`;
  }

  /** Code that records a violation of `rule` at the path segment `seg` (a JS expression). */
  #push(seg: string, rule: string, message: string): string {
    return `ctx.out.push({ field: H.at(ctx, ${seg}), rule: ${JSON.stringify(rule)}, message: ${JSON.stringify(message)} });`;
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

  /** The name of the generated function checking `desc`, or null if it has no rules. */
  message(desc: DescMessage): string | null {
    const known = this.#done.get(desc);
    if (known !== undefined) return known;
    if (this.#compiling.has(desc)) throw new Unsupported(`recursive ${desc.typeName}`);
    this.#compiling.add(desc);
    const msgRules = getOption(desc, this.#ext.message) as AnyRules;
    if (hasUnknown(msgRules) || this.#names(msgRules).length > 0) {
      throw new Unsupported(`message rules on ${desc.typeName}`);
    }
    const parts: string[] = [];
    for (const field of desc.fields) {
      const c = this.#field(field);
      if (c) parts.push(c);
    }
    for (const oneof of desc.oneofs) {
      const rules = getOption(oneof, this.#ext.oneof) as AnyRules;
      const names = this.#names(rules);
      if (hasUnknown(rules) || names.some((n) => n !== "required")) {
        throw new Unsupported(`oneof rules on ${oneof.name}`);
      }
      if (!rules.required) continue;
      parts.push(
        `if (${this.#oneofCase(oneof.localName)} === undefined) ${this.#push(JSON.stringify(oneof.name), "required", "exactly one field is required in oneof")}`,
      );
    }
    this.#compiling.delete(desc);
    let name: string | null = null;
    if (parts.length > 0) {
      name = this.#var("check_");
      this.#fns.push(`// ${desc.typeName}\nfunction ${name}(m, ctx) {\n${parts.join("\n")}\n}`);
    }
    this.#done.set(desc, name);
    return name;
  }

  /** The check of one field of a message (`m`): required, presence, then its rules. */
  #field(field: DescField): string | null {
    const rules = getOption(field, this.#ext.field) as AnyRules;
    const names = this.#names(rules);
    if (hasUnknown(rules)) throw new Unsupported(`predefined rules on ${field.name}`);
    for (const n of names) {
      if (n !== "required" && n !== "type") throw new Unsupported(`${n} on ${field.name}`);
    }
    if ((field.presence as number) === 3) throw new Unsupported("legacy required"); // LEGACY_REQUIRED
    const required = rules.required === true;
    const v = this.#var("v");
    const seg = JSON.stringify(field.name);
    const pass = this.#fieldValue(field, rules, v, seg);
    if (!required && !pass) return null;
    // implicit-presence scalars and enums, and lists, are checked even when empty; the rest only when set
    const always =
      field.fieldKind === "list" ||
      ((field.fieldKind === "scalar" || field.fieldKind === "enum") &&
        field.oneof === undefined &&
        (field.presence as number) === 2); // IMPLICIT
    const isSet = this.#isSet(field, v);
    let code = `{ // ${field.name}\nconst ${v} = ${this.#getter(field)};\n`;
    if (required) code += `if (!(${isSet})) ${this.#push(seg, "required", "value is required")}\nelse `;
    if (pass) code += always ? `{\n${pass}\n}` : `if (${isSet}) {\n${pass}\n}`;
    else code += "{}";
    return `${code}\n}`;
  }

  /** The code checking the value rules of a field held in `v`, or null if none. */
  #fieldValue(field: DescField, rules: AnyRules, v: string, seg: string): string | null {
    const type = rules.type as { case: string | undefined; value: AnyRules };
    switch (field.fieldKind) {
      case "scalar":
        return this.#scalar(field.scalar, type, v, seg);
      case "enum":
        return this.#enum(field.enum, type, v, seg);
      case "message": {
        if (type.case !== undefined)
          throw new Unsupported(`${type.case} rules on message field ${field.name}`);
        const nested = this.message(field.message);
        return nested && `ctx.path.push(${seg}); ${nested}(${v}, ctx); ctx.path.pop();`;
      }
      case "list": {
        if (type.case !== undefined && type.case !== "repeated")
          throw new Unsupported(`${type.case} on list`);
        return this.#list(field, type.case === "repeated" ? type.value : undefined, v, seg);
      }
      case "map": {
        if (type.case !== undefined) throw new Unsupported("map rules");
        if (field.mapKind === "message" && this.message(field.message))
          throw new Unsupported("map of validated messages");
        return null;
      }
    }
  }

  #list(
    field: DescField & { fieldKind: "list" },
    rules: AnyRules | undefined,
    v: string,
    seg: string,
  ): string | null {
    const parts: string[] = [];
    let itemRules: AnyRules | undefined;
    if (rules) {
      if (hasUnknown(rules)) throw new Unsupported("predefined repeated rules");
      const names = this.#names(rules);
      for (const n of names) {
        if (n !== "minItems" && n !== "maxItems" && n !== "items") throw new Unsupported(`repeated.${n}`);
      }
      if (names.includes("minItems")) {
        const min = rules.minItems as bigint;
        const message = `must contain at least ${min} item(s)`;
        parts.push(
          `if (${v}.length < ${this.#k(Number(min))}) ${this.#push(seg, "repeated.min_items", message)}`,
        );
      }
      if (names.includes("maxItems")) {
        const max = rules.maxItems as bigint;
        const message = `must contain no more than ${max} item(s)`;
        parts.push(
          `if (${v}.length > ${this.#k(Number(max))}) ${this.#push(seg, "repeated.max_items", message)}`,
        );
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
    const i = this.#var("i");
    const x = this.#var("x");
    let item: string | null;
    if (field.listKind === "message") {
      if (type.case !== undefined) throw new Unsupported("message item rules");
      const nested = this.message(field.message);
      item = nested && `ctx.path.push(${i}); ${nested}(${x}, ctx); ctx.path.pop();`;
    } else if (field.listKind === "scalar") {
      item = this.#scalar(field.scalar, type, x, i);
    } else {
      item = this.#enum(field.enum, type, x, i);
    }
    if (item) {
      parts.push(
        `ctx.path.push(${seg});\nfor (let ${i} = 0; ${i} < ${v}.length; ${i}++) {\nconst ${x} = ${v}[${i}];\n${item}\n}\nctx.path.pop();`,
      );
    }
    return parts.length > 0 ? parts.join("\n") : null;
  }

  #enum(desc: DescEnum, type: { case: string | undefined; value: AnyRules }, v: string, seg: string) {
    if (type.case === undefined) return null;
    if (type.case !== "enum") throw new Unsupported(`${type.case} on enum`);
    const r = type.value;
    if (hasUnknown(r)) throw new Unsupported("predefined enum rules");
    const parts: string[] = [];
    const names = this.#names(r);
    for (const n of names) {
      if (!["definedOnly", "const", "in", "notIn", "example"].includes(n)) throw new Unsupported(`enum.${n}`);
    }
    if (r.definedOnly === true) {
      const defined = this.#k(new Set(desc.values.map((e) => e.number)));
      parts.push(
        `if (!${defined}.has(${v})) ${this.#push(seg, "enum.defined_only", "value must be one of the defined enum values")}`,
      );
    }
    if (names.includes("const")) {
      const c = r.const as number;
      parts.push(`if (${v} !== ${this.#k(c)}) ${this.#push(seg, "enum.const", `must equal ${c}`)}`);
    }
    const inList = r.in as number[];
    if (inList.length > 0) {
      const msg = `must be in list ${formatList(inList, String)}`;
      parts.push(`if (!${this.#k(inList)}.includes(${v})) ${this.#push(seg, "enum.in", msg)}`);
    }
    const notIn = r.notIn as number[];
    if (notIn.length > 0) {
      const msg = `must not be in list ${formatList(notIn, String)}`;
      parts.push(`if (${this.#k(notIn)}.includes(${v})) ${this.#push(seg, "enum.not_in", msg)}`);
    }
    return parts.length > 0 ? parts.join("\n") : null;
  }

  #scalar(
    scalar: ScalarType,
    type: { case: string | undefined; value: AnyRules },
    v: string,
    seg: string,
  ): string | null {
    if (type.case === undefined) return null;
    const expected = RULES_OF_SCALAR[scalar];
    if (type.case !== expected) throw new Unsupported(`${type.case} rules on ${ScalarType[scalar]}`);
    if (hasUnknown(type.value)) throw new Unsupported("predefined rules");
    if (type.case === "string") return this.#string(type.value, v, seg);
    if (NUMERIC.has(type.case)) return this.#numeric(type.case, scalar, type.value, v, seg);
    throw new Unsupported(`${type.case} rules`);
  }

  #string(r: AnyRules, v: string, seg: string): string | null {
    const parts: string[] = [];
    const names = new Set(this.#names(r));
    for (const n of names) {
      if (!STRING_RULES.has(n)) throw new Unsupported(`string.${n}`);
    }
    const wk = r.wellKnown as { case: string | undefined; value: unknown };
    if (wk.case !== undefined && !(wk.case in WELL_KNOWN && wk.value === true)) {
      throw new Unsupported(`string.${wk.case}`);
    }
    const push = (cond: string, rule: string, message: string) =>
      parts.push(`if (${cond}) ${this.#push(seg, rule, message)}`);
    if (this.#shape === "ts-proto") {
      // ts-proto encodes lone surrogates as U+FFFD: the receiver would see another string
      parts.push(`if (!${v}.isWellFormed()) throw new H.Undecided("string with lone surrogates");`);
    }
    if (names.has("const")) {
      const c = r.const as string;
      push(`${v} !== ${this.#k(c)}`, "string.const", `must equal \`${c}\``);
    }
    // A string of n UTF-16 units has between n/2 and n code points: count them only when that decides.
    const count = (name: string) => Number(r[name] as bigint);
    if (names.has("len"))
      push(`H.cpLen(${v}) !== ${count("len")}`, "string.len", `must be ${r.len} characters`);
    if (names.has("minLen")) {
      const x = count("minLen");
      push(
        `${v}.length < ${2 * x} && H.cpLen(${v}) < ${x}`,
        "string.min_len",
        `must be at least ${r.minLen} characters`,
      );
    }
    if (names.has("maxLen")) {
      const x = count("maxLen");
      push(
        `${v}.length > ${x} && H.cpLen(${v}) > ${x}`,
        "string.max_len",
        `must be at most ${r.maxLen} characters`,
      );
    }
    if (names.has("lenBytes"))
      push(`H.byteLen(${v}) !== ${count("lenBytes")}`, "string.len_bytes", `must be ${r.lenBytes} bytes`);
    if (names.has("minBytes"))
      push(
        `H.byteLen(${v}) < ${count("minBytes")}`,
        "string.min_bytes",
        `must be at least ${r.minBytes} bytes`,
      );
    if (names.has("maxBytes"))
      push(
        `H.byteLen(${v}) > ${count("maxBytes")}`,
        "string.max_bytes",
        `must be at most ${r.maxBytes} bytes`,
      );
    if (names.has("pattern")) {
      const src = r.pattern as string;
      const re = translatePattern(src);
      if (!re) throw new Unsupported(`pattern ${src}`);
      push(`!${this.#k(re)}.test(${v})`, "string.pattern", `does not match regex pattern \`${src}\``);
    }
    const str = (name: string, rule: string, cond: (x: string) => string, msg: string) => {
      if (!names.has(name)) return;
      const x = r[name] as string;
      push(cond(this.#k(x)), rule, `${msg} \`${x}\``);
    };
    str("prefix", "string.prefix", (x) => `!${v}.startsWith(${x})`, "does not have prefix");
    str("suffix", "string.suffix", (x) => `!${v}.endsWith(${x})`, "does not have suffix");
    str("contains", "string.contains", (x) => `!${v}.includes(${x})`, "does not contain substring");
    str("notContains", "string.not_contains", (x) => `${v}.includes(${x})`, "contains substring");
    const inList = r.in as string[];
    if (inList.length > 0) {
      push(
        `!${this.#k(inList)}.includes(${v})`,
        "string.in",
        `must be in list ${formatList(inList, (s) => s)}`,
      );
    }
    const notIn = r.notIn as string[];
    if (notIn.length > 0) {
      push(
        `${this.#k(notIn)}.includes(${v})`,
        "string.not_in",
        `must not be in list ${formatList(notIn, (s) => s)}`,
      );
    }
    if (wk.case !== undefined) {
      const spec = WELL_KNOWN[wk.case]!;
      const rule = `string.${snake(wk.case)}`;
      parts.push(
        `if (${v} === "") ${this.#push(seg, `${rule}_empty`, spec.empty)}\nelse if (!${spec.test ? `H.${spec.test}(${v})` : `${this.#k(spec.re)}.test(${v})`}) ${this.#push(seg, rule, spec.msg)}`,
      );
    }
    return parts.length > 0 ? parts.join("\n") : null;
  }

  #numeric(kind: string, scalar: ScalarType, r: AnyRules, v: string, seg: string): string | null {
    const names = this.#names(r);
    for (const n of names) {
      if (!["const", "lessThan", "greaterThan", "in", "notIn", "finite", "example"].includes(n)) {
        throw new Unsupported(`${kind}.${n}`);
      }
    }
    const float = kind === "float" || kind === "double";
    const fmt = float ? printFloat : (x: unknown) => String(x);
    // the value as protovalidate sees it after decoding: bigint for 64-bit, float32-rounded floats
    const value = BIG.has(kind)
      ? `H.toBig(${v})`
      : scalar === ScalarType.FLOAT && this.#shape === "ts-proto"
        ? `Math.fround(${v})`
        : v;
    const x = this.#var("n");
    const parts: string[] = [];
    if (names.includes("const")) {
      const c = r.const as number | bigint;
      parts.push(`if (${x} !== ${this.#k(c)}) ${this.#push(seg, `${kind}.const`, `must equal ${fmt(c)}`)}`);
    }
    const gt = r.greaterThan as { case: "gt" | "gte" | undefined; value: number | bigint };
    const lt = r.lessThan as { case: "lt" | "lte" | undefined; value: number | bigint };
    if ((gt.case && Number.isNaN(gt.value)) || (lt.case && Number.isNaN(lt.value)))
      throw new Unsupported("NaN bound");
    const below = gt.case && `${x} ${gt.case === "gt" ? "<=" : "<"} ${this.#k(gt.value)}`;
    const above = lt.case && `${x} ${lt.case === "lt" ? ">=" : ">"} ${this.#k(lt.value)}`;
    const loMsg =
      gt.case === "gt" ? `greater than ${fmt(gt.value)}` : `greater than or equal to ${fmt(gt.value)}`;
    const hiMsg = lt.case === "lt" ? `less than ${fmt(lt.value)}` : `less than or equal to ${fmt(lt.value)}`;
    const nan = float ? `Number.isNaN(${x}) || ` : "";
    if (gt.case && lt.case) {
      const normal = lt.value >= gt.value;
      const rule = `${kind}.${gt.case}_${lt.case}${normal ? "" : "_exclusive"}`;
      const message = `must be ${loMsg} ${normal ? "and" : "or"} ${hiMsg}`;
      const fail = normal ? `${nan}${above} || ${below}` : `${nan}(${above} && ${below})`;
      parts.push(`if (${fail}) ${this.#push(seg, rule, message)}`);
    } else if (gt.case) {
      parts.push(`if (${nan}${below}) ${this.#push(seg, `${kind}.${gt.case}`, `must be ${loMsg}`)}`);
    } else if (lt.case) {
      parts.push(`if (${nan}${above}) ${this.#push(seg, `${kind}.${lt.case}`, `must be ${hiMsg}`)}`);
    }
    const inList = r.in as (number | bigint)[];
    if (inList.length > 0) {
      const message = `must be in list ${formatList(inList, fmt)}`;
      parts.push(`if (!${this.#k(inList)}.includes(${x})) ${this.#push(seg, `${kind}.in`, message)}`);
    }
    const notIn = r.notIn as (number | bigint)[];
    if (notIn.length > 0) {
      const message = `must not be in list ${formatList(notIn, fmt)}`;
      parts.push(`if (${this.#k(notIn)}.includes(${x})) ${this.#push(seg, `${kind}.not_in`, message)}`);
    }
    if (float && r.finite === true) {
      parts.push(`if (!Number.isFinite(${x})) ${this.#push(seg, `${kind}.finite`, "must be finite")}`);
    }
    if (parts.length === 0) return null;
    return `const ${x} = ${value};\n${parts.join("\n")}`;
  }

  /** An expression reading a field of `m` in this shape (undefined when a oneof member is not the case). */
  #getter(field: DescField): string {
    const key = JSON.stringify(field.localName);
    if (field.oneof) {
      const o = `m[${JSON.stringify(field.oneof.localName)}]`;
      if (this.#shape === "protobuf-es") return `(${o}?.case === ${key} ? ${o}.value : undefined)`;
      return `(${o}?.$case === ${key} ? ${o}[${key}] : undefined)`;
    }
    return `m[${key}]`;
  }

  /** An expression: the case of a oneof of `m` in this shape, or undefined. */
  #oneofCase(local: string): string {
    const o = `m[${JSON.stringify(local)}]`;
    return this.#shape === "protobuf-es" ? `${o}?.case` : `${o}?.$case`;
  }

  /** An expression: whether the field value `v` counts as set (protovalidate's `isSet`). */
  #isSet(field: DescField, v: string): string {
    if (field.fieldKind === "list") return `Array.isArray(${v}) && ${v}.length > 0`;
    if (field.fieldKind === "map") return `${v} != null && Object.keys(${v}).length > 0`;
    if (field.fieldKind === "message" || field.oneof || (field.presence as number) !== 2) {
      return `${v} !== undefined && ${v} !== null`;
    }
    return `H.isSetImplicit(${v})`; // implicit presence: set means not the zero value
  }
}

/** What generated checks call. */
/** A hex digit: 0-9, a-f, A-F (`c | 0x20` folds A-F onto a-f and nothing else onto them). */
function isHexCode(c: number): boolean {
  return (c >= 48 && c <= 57) || ((c | 0x20) >= 97 && (c | 0x20) <= 102);
}

/** `/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(s)` */
export function isUuid(s: string): boolean {
  if (s.length !== 36) return false;
  for (let i = 0; i < 36; i++) {
    const c = s.charCodeAt(i);
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (c !== 45) return false;
    } else if (!isHexCode(c)) return false;
  }
  return true;
}

/** `/^[0-9a-fA-F]{32}$/.test(s)` */
export function isTrimmedUuid(s: string): boolean {
  if (s.length !== 32) return false;
  for (let i = 0; i < 32; i++) if (!isHexCode(s.charCodeAt(i))) return false;
  return true;
}

const HELPERS = {
  at,
  isUuid,
  isTrimmedUuid,
  Undecided,
  cpLen: codepointLength,
  byteLen: (s: string) => Buffer.byteLength(s),
  toBig(v: unknown): bigint {
    if (typeof v === "bigint") return v;
    if (typeof v === "number" && Number.isSafeInteger(v)) return BigInt(v);
    throw new Undecided("64-bit integer that is not a safe integer");
  },
  isSetImplicit(v: unknown): boolean {
    if (v === undefined || v === null) return false;
    if (typeof v === "string") return v !== "";
    if (typeof v === "number") return v !== 0 || Object.is(v, -0);
    if (typeof v === "bigint") return v !== 0n;
    if (typeof v === "boolean") return v;
    if (v instanceof Uint8Array) return v.length > 0;
    return true;
  },
};

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
/**
 * The string formats implemented here, with protovalidate's messages (WHATWG e-mail, RFC 4122 UUID
 * text). `test` names a helper that checks the same as `re` without running a regular expression
 * (a UUID check by char codes costs a fraction of the regex, and events carry several).
 */
const WELL_KNOWN: Record<
  string,
  { re: RegExp; test?: "isUuid" | "isTrimmedUuid"; msg: string; empty: string }
> = {
  email: {
    re: /^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/,
    msg: "must be a valid email address",
    empty: "value is empty, which is not a valid email address",
  },
  uuid: {
    re: /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/,
    test: "isUuid",
    msg: "must be a valid UUID",
    empty: "value is empty, which is not a valid UUID",
  },
  tuuid: {
    re: /^[0-9a-fA-F]{32}$/,
    test: "isTrimmedUuid",
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
