import {
  create,
  type DescExtension,
  type DescField,
  type DescMessage,
  getOption,
  hasOption,
  type Message,
} from "@bufbuild/protobuf";
import { type Catalog, ContractValidator, type FieldViolation } from "@jetkit/contracts";
import type { CatalogBreak } from "./compat.js";
import { type RuleChange, ruleChanges } from "./rule-diff.js";
import { fieldPath, lineAt, messagePath, oneofPath } from "./source.js";

/** The protovalidate extensions of one catalog (absent when no contract imports validate.proto). */
interface RuleOptions {
  field: DescExtension;
  message: DescExtension | undefined;
  oneof: DescExtension | undefined;
}

function ruleOptions(catalog: Catalog): RuleOptions | undefined {
  const field = catalog.registry.getExtension("buf.validate.field");
  if (!field) return undefined;
  return {
    field,
    message: catalog.registry.getExtension("buf.validate.message"),
    oneof: catalog.registry.getExtension("buf.validate.oneof"),
  };
}

const rulesOf = (desc: Parameters<typeof hasOption>[0], ext: DescExtension | undefined) =>
  ext && hasOption(desc, ext) ? (getOption(desc, ext) as Message) : undefined;

/** The message type a field holds (singular, list item or map value), if any. */
function messageOf(f: DescField): DescMessage | undefined {
  if (f.fieldKind === "message") return f.message;
  if (f.fieldKind === "list" && f.listKind === "message") return f.message;
  if (f.fieldKind === "map" && f.mapKind === "message") return f.message;
  return undefined;
}

const FIX_TIGHTENED =
  'keep the rule as it was (loosening is accepted); to hold new events to the stricter rule, add a new field (or a new event type in a new versioned package) that carries it and deprecate the old one. If every stored and in-flight event already passes the new rule, accept it with --allow FIELD_RULE_TIGHTENED --reason "...".';
const FIX_ADDED =
  'drop the new rule; to hold new events to it, add a new field (or a new event type in a new versioned package) that carries it and deprecate the old one. If every stored and in-flight event already passes it, accept it with --allow FIELD_RULE_ADDED --reason "...".';
const FIX_REQUIRED =
  'drop required (stored events without the field would fail); validate presence in the producer, or add the field to a new event type in a new versioned package. If every stored and in-flight event has the field, accept it with --allow FIELD_REQUIRED_ADDED --reason "...".';

function describe(c: RuleChange): string {
  if (c.kind === "required") return "required was added";
  if (c.kind === "added") return `${c.rule} = ${c.after} was added`;
  return `${c.rule} went from ${c.before ?? "unset"} to ${c.after}`;
}

function ruleName(c: RuleChange): CatalogBreak["rule"] {
  if (c.kind === "required") return "FIELD_REQUIRED_ADDED";
  return c.kind === "added" ? "FIELD_RULE_ADDED" : "FIELD_RULE_TIGHTENED";
}

const fixOf = (rule: CatalogBreak["rule"]) =>
  rule === "FIELD_REQUIRED_ADDED" ? FIX_REQUIRED : rule === "FIELD_RULE_ADDED" ? FIX_ADDED : FIX_TIGHTENED;

/**
 * The field rules (`buf.validate`) of the events' payloads that accept less than before: an
 * event that was valid yesterday, stored in its stream or retried by a producer, fails today's
 * validation (consumers dead-letter it on replay, producers refuse it). Walks every event type
 * present in both catalogs and every message type its fields reach, matching fields by number:
 * a rule tightened or added on an existing field, `required` added, a message-level CEL rule or
 * a required oneof added, and a new field whose rules its absence breaks (events stored before
 * the field existed lack it).
 */
export function fieldRuleBreaks(before: Catalog, after: Catalog): CatalogBreak[] {
  const now = ruleOptions(after);
  if (!now) return [];
  const was = ruleOptions(before);
  const fieldRulesSchema = now.field.message;
  if (!fieldRulesSchema) return [];
  const breaks: CatalogBreak[] = [];
  const seen = new Set<string>();
  let validator: ContractValidator | undefined;
  /** The rules an event without any field set breaks; undefined when they cannot be evaluated. */
  const emptyViolations = (m: DescMessage): FieldViolation[] | undefined => {
    try {
      validator ??= new ContractValidator(after);
      return validator.violations(m, create(m));
    } catch {
      return undefined;
    }
  };

  const visit = (old: DescMessage, cur: DescMessage) => {
    if (seen.has(cur.typeName)) return;
    seen.add(cur.typeName);
    const file = cur.file;
    const at = (path: number[]) => {
      const line = lineAt(file, path);
      return line === undefined ? {} : { line };
    };

    const oldMessageRules = rulesOf(old, was?.message) as { cel?: unknown[]; oneof?: unknown[] } | undefined;
    const newMessageRules = rulesOf(cur, now.message) as { cel?: unknown[]; oneof?: unknown[] } | undefined;
    const exprs = (rules: { cel?: unknown[] } | undefined) =>
      new Set((rules?.cel ?? []).map((r) => (r as { expression?: string }).expression ?? ""));
    const oldExprs = exprs(oldMessageRules);
    const added = [...exprs(newMessageRules)].filter((e) => !oldExprs.has(e));
    const oneofKey = (o: unknown) => JSON.stringify(o, (_k, v) => (typeof v === "bigint" ? String(v) : v));
    const oldOneofs = new Set((oldMessageRules?.oneof ?? []).map(oneofKey));
    const addedOneofs = (newMessageRules?.oneof ?? []).filter((o) => !oldOneofs.has(oneofKey(o)));
    if (added.length > 0 || addedOneofs.length > 0) {
      breaks.push({
        file: file.proto.name,
        ...at(messagePath(cur)),
        rule: "MESSAGE_RULE_ADDED",
        message: `message ${cur.typeName} has new message-level rules (${[...added.map((e) => `cel ${JSON.stringify(e)}`), ...addedOneofs.map((o) => `oneof ${oneofKey(o)}`)].join("; ")}); events stored before them may fail validation now.`,
        fix: 'drop the new message rule; to hold new events to it, add a new event type in a new versioned package. If every stored and in-flight event already passes it, accept it with --allow MESSAGE_RULE_ADDED --reason "...".',
      });
    }

    for (const oneof of cur.oneofs) {
      const required = (rulesOf(oneof, now.oneof) as { required?: boolean } | undefined)?.required === true;
      if (!required) continue;
      const previous = old.oneofs.find((o) => o.name === oneof.name);
      const wasRequired =
        previous !== undefined &&
        (rulesOf(previous, was?.oneof) as { required?: boolean } | undefined)?.required === true;
      if (wasRequired) continue;
      breaks.push({
        file: file.proto.name,
        ...at(oneofPath(oneof)),
        rule: "FIELD_REQUIRED_ADDED",
        message: `oneof ${cur.typeName}.${oneof.name} is now required; events stored with none of its fields set were valid and now fail.`,
        fix: FIX_REQUIRED,
      });
    }

    let empty: FieldViolation[] | undefined | null = null;
    for (const field of cur.fields) {
      const previous = old.fields.find((f) => f.number === field.number);
      const rules = rulesOf(field, now.field);
      if (!previous) {
        // A new field: events stored before it existed lack it; do its rules refuse that?
        if (!rules) continue;
        if (empty === null) empty = emptyViolations(cur);
        if (empty === undefined) {
          // The rules cannot be evaluated here (e.g. a CEL expression protovalidate refuses): err on the side of history.
          breaks.push({
            file: file.proto.name,
            ...at(fieldPath(field)),
            rule: "FIELD_RULE_ADDED",
            message: `new field ${cur.typeName}.${field.name} has rules the check cannot evaluate on an event without the field; events stored before it existed may fail validation now.`,
            fix: "let the rules pass when the field is unset (e.g. (buf.validate.field).ignore = IGNORE_IF_ZERO_VALUE), or put the field in a new event type in a new versioned package.",
          });
          continue;
        }
        const broken = empty.filter(
          (v) =>
            v.field === field.name ||
            v.field.startsWith(`${field.name}.`) ||
            v.field.startsWith(`${field.name}[`),
        );
        for (const v of broken) {
          const rule = v.rule === "required" ? "FIELD_REQUIRED_ADDED" : "FIELD_RULE_ADDED";
          breaks.push({
            file: file.proto.name,
            ...at(fieldPath(field)),
            rule,
            message: `new field ${cur.typeName}.${field.name} has rule ${v.rule} that an event without the field breaks (${v.message}); events stored before the field existed now fail validation.`,
            fix:
              rule === "FIELD_REQUIRED_ADDED"
                ? FIX_REQUIRED
                : "let the rule pass when the field is unset (e.g. (buf.validate.field).ignore = IGNORE_IF_ZERO_VALUE), or put the field in a new event type in a new versioned package.",
          });
        }
        continue;
      }
      const oldRules = rulesOf(previous, was?.field);
      for (const change of ruleChanges(fieldRulesSchema, oldRules, rules)) {
        const rule = ruleName(change);
        breaks.push({
          file: file.proto.name,
          ...at(fieldPath(field)),
          rule,
          message: `field ${cur.typeName}.${field.name}: ${describe(change)}; events that were valid before may fail validation now (consumers dead-letter them on replay, producers refuse their retries).`,
          fix: fixOf(rule),
        });
      }
      const a = messageOf(previous);
      const b = messageOf(field);
      if (a && b && a.typeName === b.typeName) visit(a, b);
    }
  };

  for (const event of after.events) {
    const old = before.findByType(event.type);
    if (old) visit(old.schema, event.schema);
  }
  return breaks;
}
