// The compiled validator against protovalidate: the same violations (field, rule, message, order)
// for every catalog event type, valid and broken in turn, as protobuf-es messages and as ts-proto objects.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  clone,
  create,
  createFileRegistry,
  type DescField,
  type DescMessage,
  fromJson,
  type Message,
  setExtension,
  toBinary,
} from "@bufbuild/protobuf";
import { FieldOptionsSchema, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { FieldRulesSchema, field as fieldExt } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import * as audit from "../gen/ts/jetkit/v1/audit.js";
import * as customer from "../gen/ts/shop/customer/v1/events.js";
import * as inventory from "../gen/ts/shop/inventory/v1/events.js";
import * as order from "../gen/ts/shop/order/v1/events.js";
import * as payment from "../gen/ts/shop/payment/v1/events.js";
import {
  ContractValidator,
  type EventType,
  type FieldViolation,
  getCatalog,
  isJetkitError,
} from "../src/index.js";
import {
  compileMessage,
  isTrimmedUuid,
  isUuid,
  RULE_EXTENSIONS,
  runCheck,
} from "../src/validation/compile.js";
import { translatePattern } from "../src/validation/pattern.js";
import { readGolden } from "../tools/vectors.js";

const catalog = getCatalog();
const codecs = new Map<string, EventType<unknown>>(
  [audit, customer, inventory, order, payment]
    .flatMap((m) => Object.values(m))
    .filter((v): v is EventType<unknown> => typeof v === "object" && v !== null && "$type" in v)
    .map((c) => [c.$type, c]),
);
const reference = new ContractValidator(catalog, { fast: false });

const STRINGS = [
  "",
  "a",
  "ab1",
  "abcdefgh",
  "x".repeat(64),
  "x".repeat(65),
  "x".repeat(129),
  "x".repeat(513),
  "DE",
  "EUR",
  "eur",
  "1234",
  "12345",
  "AB12",
  "ab12",
  "not-a-uuid",
  "0d000000-0000-4000-8000-000000000001",
  "0D000000-0000-4000-8000-00000000000G",
  "0d0000000000400080000000000000001",
  // UUID text at the edges of the format: case, digits, dashes, length, non-ASCII
  "0D000000-0000-4000-8000-0000000000AF",
  "0d000000-0000-4000-8000-00000000000g",
  "0d000000-0000-4000-8000+000000000001",
  "0d0000000-000-4000-8000-000000000001",
  "0d000000-0000-4000-8000-0000000000Ł1",
  "0d000000-0000-4000-8000-0000000000011",
  "@d000000-0000-4000-8000-000000000001",
  "`d000000-0000-4000-8000-000000000001",
  "0d000000000040008000000000000001",
  "0D00000000004000800000000000000F",
  "0d00000000004000800000000000000:",
  "a@b.co",
  "bad@",
  "a@-b.co",
  "😀😀😀😀",
  // more UTF-16 units than a max_len but not more code points, and more of both
  "😀".repeat(40),
  "😀".repeat(65),
  "ÄÖÜ",
  "A\nB",
  "12\n",
  "12 4",
];
const INT32 = [0, 1, -1, 999999999, 1000000000, -999999999, -1000000000, 2147483647, -2147483648];
const UINT32 = [0, 1, 4294967295];
const INT64 = [0n, 1n, -1n, 1n << 40n];
const ENUMS = [0, 1, 2, 3, 4, 5, 99, -1];

/** Every value worth trying for a singular field of this kind. */
function valuesFor(f: DescField): unknown[] {
  if (f.fieldKind === "enum") return ENUMS;
  if (f.fieldKind !== "scalar" && f.fieldKind !== "list") return [];
  const scalar = f.fieldKind === "scalar" ? f.scalar : f.listKind === "scalar" ? f.scalar : undefined;
  switch (scalar) {
    case 9: // string
      return STRINGS;
    case 5: // int32
    case 17:
    case 15:
      return INT32;
    case 13: // uint32
    case 7:
      return UINT32;
    case 3: // int64
    case 4:
    case 18:
    case 16:
    case 6:
      return INT64;
    case 8:
      return [true, false];
    case 1:
    case 2:
      return [0, 1.5, -1, Number.NaN, Number.POSITIVE_INFINITY];
    default:
      return [];
  }
}

/** Copies of `msg`, each with one field broken or changed (recursively into nested messages). */
function variants(desc: DescMessage, msg: Message, depth = 0): Message[] {
  const out: Message[] = [];
  const m = msg as unknown as Record<string, unknown>;
  const put = (f: DescField, value: unknown) => {
    const c = clone(desc, msg) as unknown as Record<string, unknown>;
    if (f.oneof)
      c[f.oneof.localName] = value === undefined ? { case: undefined } : { case: f.localName, value };
    else c[f.localName] = value;
    out.push(c as unknown as Message);
  };
  for (const f of desc.fields) {
    const current = f.oneof
      ? (m[f.oneof.localName] as { case?: string; value?: unknown }).case === f.localName
        ? (m[f.oneof.localName] as { value: unknown }).value
        : undefined
      : m[f.localName];
    if (f.fieldKind === "scalar" || f.fieldKind === "enum") {
      for (const v of valuesFor(f)) put(f, v);
      if (f.oneof) put(f, undefined);
    } else if (f.fieldKind === "message") {
      put(f, undefined);
      const empty = create(f.message);
      put(f, empty);
      if (depth < 3) {
        for (const v of variants(f.message, (current as Message | undefined) ?? empty, depth + 1)) put(f, v);
      }
    } else if (f.fieldKind === "list") {
      const list = (current as unknown[]) ?? [];
      put(f, []);
      if (f.listKind === "message") {
        const item = (list[0] as Message | undefined) ?? create(f.message);
        put(f, [item, item, item, item, item]);
        if (depth < 3) for (const v of variants(f.message, item, depth + 1)) put(f, [v, ...list.slice(1)]);
        put(f, [...list, create(f.message)]);
      } else {
        const vals = valuesFor(f);
        put(f, vals.slice(0, 5));
        for (const v of vals) put(f, [v, ...list.slice(1)]);
      }
    }
  }
  return out;
}

const golden = readGolden();
/** Valid events of the types the golden vectors leave out (audit). */
const EXTRA_VALID: Record<string, unknown> = {
  "jetkit.v1.AuditGatewayDecision": {
    requestId: "r-1",
    principal: "CN=checkout",
    action: "AUDIT_ACTION_PUBLISH",
    subject: "customer.checkout.initiated",
    decision: "AUDIT_DECISION_ALLOW",
    decidedAt: "2026-01-02T03:04:05Z",
  },
};
const bases = catalog.events.map((spec) => {
  const vector = golden.vectors.find((v) => v.type === spec.type);
  const json = vector?.event ?? EXTRA_VALID[spec.type];
  assert.ok(json, `a valid ${spec.type} for the differential test`);
  return { spec, base: fromJson(spec.schema, json as never) };
});

const fmt = (vs: FieldViolation[]) => vs.map((v) => `${v.field} [${v.rule}] ${v.message}`);

describe("compiled validator agrees with protovalidate", () => {
  test("every catalog event type is compiled (no fallback needed)", () => {
    const fast = new ContractValidator(catalog);
    const fallback = catalog.events.filter((e) => !fast.isCompiled(e.schema)).map((e) => e.type);
    assert.deepEqual(fallback, []);
  });

  for (const { spec, base } of bases) {
    test(`${spec.type}: same violations for the base event and every broken variant, both shapes`, () => {
      const codec = codecs.get(spec.type);
      assert.ok(codec, `ts-proto codec for ${spec.type}`);
      const es = compileMessage(spec.schema, "protobuf-es", RULE_EXTENSIONS);
      const ts = compileMessage(spec.schema, "ts-proto", RULE_EXTENSIONS);
      assert.ok(es && ts, "compiled");
      const all = [base, ...variants(spec.schema, base)];
      let broken = 0;
      const rules = new Set<string>();
      for (const m of all) {
        const expected = fmt(reference.violations(spec.schema, m));
        const gotEs = runCheck(es, m);
        assert.deepEqual(
          fmt(gotEs),
          expected,
          `protobuf-es shape: ${JSON.stringify(m, (_k, v) => (typeof v === "bigint" ? `${v}n` : v))}`,
        );
        const bytes = toBinary(spec.schema, m);
        const obj: unknown = codec.decode(bytes);
        const gotTs = runCheck(ts, obj);
        assert.deepEqual(fmt(gotTs), expected, `ts-proto shape: ${JSON.stringify(obj)}`);
        if (expected.length > 0) broken++;
        for (const v of gotEs) rules.add(v.rule);
      }
      assert.deepEqual(fmt(reference.violations(spec.schema, base)), [], "the base event is valid");
      assert.ok(broken > 0 && broken < all.length, `${broken} of ${all.length} variants broken`);
      assert.ok(rules.size > 0);
    });
  }

  test("checkEvent throws the same JK_CONTRACT_VIOLATION as check(bytes), and passes valid events", () => {
    const fast = new ContractValidator(catalog);
    let refused = 0;
    for (const { spec, base } of bases) {
      const codec = codecs.get(spec.type)!;
      for (const m of [base, ...variants(spec.schema, base)]) {
        const bytes = toBinary(spec.schema, m);
        const obj: unknown = codec.decode(bytes);
        let want: unknown;
        try {
          reference.check(spec, bytes);
        } catch (err) {
          want = err;
        }
        let got: unknown;
        try {
          fast.checkEvent(spec, obj, () => codec.encode(obj).finish());
        } catch (err) {
          got = err;
        }
        if (want === undefined) assert.equal(got, undefined);
        else {
          refused++;
          assert.ok(isJetkitError(got, "JK_CONTRACT_VIOLATION"));
          assert.deepEqual((got as { details: unknown }).details, (want as { details: unknown }).details);
        }
      }
    }
    assert.ok(refused > 100, `${refused} refused`);
  });

  test("a ts-proto string with a lone surrogate is left to protovalidate (decided on the encoded bytes)", () => {
    const spec = catalog.byType("shop.order.v1.OrderLifecycleCancelled");
    const codec = codecs.get(spec.type)!;
    const base = bases.find((b) => b.spec === spec)!.base;
    const obj = codec.decode(toBinary(spec.schema, base)) as Record<string, unknown>;
    obj.orderId = "\ud800";
    const fast = new ContractValidator(catalog);
    assert.throws(
      () => fast.checkEvent(spec, obj, () => codec.encode(obj).finish()),
      (err: unknown) => isJetkitError(err, "JK_CONTRACT_VIOLATION") && err.details.rule === "string.uuid",
    );
  });

  test("a message with a CEL rule is not compiled: protovalidate evaluates it", () => {
    const options = create(FieldOptionsSchema);
    setExtension(
      options,
      fieldExt,
      create(FieldRulesSchema, {
        cel: [{ id: "short", message: "too long", expression: "this.size() < 3" }],
      }),
    );
    const file = create(FileDescriptorProtoSchema, {
      name: "jetkit/test/cel.proto",
      package: "jetkit.test",
      syntax: "proto3",
      dependency: ["buf/validate/validate.proto"],
      messageType: [
        {
          name: "WithCel",
          field: [{ name: "name", number: 1, type: 9, label: 1, jsonName: "name", options }],
        },
      ],
    });
    const registry = createFileRegistry(file, (name) => catalog.registry.getFile(name));
    const desc = registry.getMessage("jetkit.test.WithCel")!;
    assert.equal(compileMessage(desc, "protobuf-es", RULE_EXTENSIONS), undefined);
    const v = new ContractValidator(catalog);
    assert.equal(v.isCompiled(desc), false);
    const long = create(desc, { name: "abcd" } as never);
    assert.deepEqual(
      v.violations(desc, long).map((x) => x.rule),
      ["short"],
    );
  });

  test("the UUID checks by char code accept exactly what the formats' regular expressions accept", () => {
    const uuid = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
    const tuuid = /^[0-9a-fA-F]{32}$/;
    // Characters next to each hex range (/ : @ G ` g), a dash, a space and non-ASCII ones.
    const alphabet = [..."0123456789abcdefABCDEF/:@G`g- Ł\u0130\u0141😀"];
    let seed = 7;
    const next = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    let accepted = 0;
    for (let n = 0; n < 20_000; n++) {
      const len = 30 + Math.floor(next() * 9);
      let s = Array.from({ length: len }, () => alphabet[Math.floor(next() * 16)]!).join("");
      // Mostly well-formed, then one character replaced: every position and character is tried.
      if (len === 36 && next() < 0.7)
        s = `${s.slice(0, 8)}-${s.slice(9, 13)}-${s.slice(14, 18)}-${s.slice(19, 23)}-${s.slice(24)}`;
      if (next() < 0.5) {
        const at = Math.floor(next() * s.length);
        s = s.slice(0, at) + alphabet[Math.floor(next() * alphabet.length)]! + s.slice(at + 1);
      }
      assert.equal(isUuid(s), uuid.test(s), JSON.stringify(s));
      assert.equal(isTrimmedUuid(s), tuuid.test(s), JSON.stringify(s));
      if (uuid.test(s) || tuuid.test(s)) accepted++;
    }
    assert.ok(accepted > 1000, `only ${accepted} valid ids were generated`);
  });

  test("patterns outside the shared RE2/JavaScript subset fall back", () => {
    for (const ok of ["^[A-Z]{3}$", "^[0-9]{4}$", "^(?:ab|cd)+$", "^a.c$", "^[a-z\\-]+\\.x$"]) {
      assert.ok(translatePattern(ok), ok);
    }
    for (const no of [
      "^\\s+$",
      "(?i)abc",
      "^\\bx",
      "[[:alpha:]]",
      "a{1001}",
      "(?P<n>a)",
      "\\1",
      "[]a]",
      "ä",
    ]) {
      assert.equal(translatePattern(no), undefined, no);
    }
    assert.equal(translatePattern("^a.c$")!.test("a\rc"), true, "RE2's dot matches \\r");
    assert.equal(translatePattern("^a.c$")!.test("a\nc"), false);
  });
});
