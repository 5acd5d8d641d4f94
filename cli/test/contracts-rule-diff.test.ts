import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type DescMessage, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { getCatalog } from "@jetkit/contracts";
import { ruleChanges } from "../src/contracts-check/index.js";

// The buf.validate.FieldRules descriptor the catalog resolves validate.proto to (as the check does).
const registry = getCatalog().registry;
const schema = registry.getMessage("buf.validate.FieldRules") as DescMessage;
const rules = (json: JsonValue) => fromJson(schema, json, { registry });

/** The changes from `before` to `after` as `kind rule`, e.g. `tightened string.max_len`. */
const diff = (before: JsonValue | undefined, after: JsonValue) =>
  ruleChanges(schema, before === undefined ? undefined : rules(before), rules(after)).map(
    (c) => `${c.kind} ${c.rule}`,
  );

describe("field rule comparison: what accepts less than before", () => {
  test("lengths: a maximum lowered or a minimum raised is tightened; the opposite is not", () => {
    assert.deepEqual(diff({ string: { maxLen: "10" } }, { string: { maxLen: "5" } }), [
      "tightened string.max_len",
    ]);
    assert.deepEqual(diff({ string: { maxLen: "10" } }, { string: { maxLen: "20" } }), []);
    assert.deepEqual(diff({ string: { minLen: "1" } }, { string: { minLen: "2" } }), [
      "tightened string.min_len",
    ]);
    assert.deepEqual(diff({ string: { minLen: "2" } }, { string: {} }), []);
    assert.deepEqual(diff({ map: { maxPairs: "8" } }, { map: { maxPairs: "4" } }), [
      "tightened map.max_pairs",
    ]);
  });

  test("numeric bounds: a lower upper bound, an exclusive bound at the same value, a higher lower bound", () => {
    assert.deepEqual(diff({ int32: { lt: 10 } }, { int32: { lt: 5 } }), ["tightened int32.lt"]);
    assert.deepEqual(diff({ int32: { lte: 10 } }, { int32: { lt: 10 } }), ["tightened int32.lt"]);
    assert.deepEqual(diff({ int32: { lt: 10 } }, { int32: { lte: 10 } }), []);
    assert.deepEqual(diff({ int32: { gt: 0, lt: 10 } }, { int32: { gte: -5, lt: 20 } }), []);
    assert.deepEqual(diff({ uint64: { gte: "1" } }, { uint64: { gte: "2" } }), ["tightened uint64.gte"]);
    assert.deepEqual(diff({ double: {} }, { double: { gt: 0 } }), ["added double.gt"]);
    // On integers gt 0 is gte 1 and lt 10 is lte 9; on doubles it is not.
    assert.deepEqual(diff({ uint32: { gt: 0, lt: 10 } }, { uint32: { gte: 1, lte: 9 } }), []);
    assert.deepEqual(diff({ int64: { gt: "0" } }, { int64: { gte: "1" } }), []);
    assert.deepEqual(diff({ int64: { gt: "0" } }, { int64: { gte: "2" } }), ["tightened int64.gte"]);
    assert.deepEqual(diff({ double: { gt: 0 } }, { double: { gte: 1 } }), ["tightened double.gte"]);
    // gt above lt means "outside the range": any change to such a pair counts.
    assert.deepEqual(diff({ int32: { gt: 10, lt: 0 } }, { int32: { gt: 20, lt: 0 } }), [
      "tightened int32.gt+lt",
    ]);
  });

  test("durations and timestamps compare by time; lt_now and within count", () => {
    assert.deepEqual(diff({ duration: { lt: "10s" } }, { duration: { lt: "5s" } }), [
      "tightened duration.lt",
    ]);
    assert.deepEqual(diff({ duration: { lt: "10s" } }, { duration: { lt: "20s" } }), []);
    assert.deepEqual(diff({ timestamp: {} }, { timestamp: { ltNow: true } }), ["added timestamp.lt_now"]);
    assert.deepEqual(diff({ timestamp: { within: "3600s" } }, { timestamp: { within: "1800s" } }), [
      "tightened timestamp.within",
    ]);
  });

  test("lists: in shrunk and not_in grown are tightened; in grown and not_in shrunk are not", () => {
    assert.deepEqual(diff({ enum: { in: [1, 2, 3] } }, { enum: { in: [1, 2] } }), ["tightened enum.in"]);
    assert.deepEqual(diff({ enum: { in: [1, 2] } }, { enum: { in: [1, 2, 3] } }), []);
    assert.deepEqual(diff({ string: { notIn: ["a"] } }, { string: { notIn: ["a", "b"] } }), [
      "tightened string.not_in",
    ]);
    assert.deepEqual(diff({ string: { notIn: ["a", "b"] } }, { string: { notIn: ["a"] } }), []);
  });

  test("exact rules, flags and formats: added or changed counts, removed does not", () => {
    assert.deepEqual(diff({ string: { pattern: "^a" } }, { string: { pattern: "^b" } }), [
      "tightened string.pattern",
    ]);
    assert.deepEqual(diff({ string: { pattern: "^a" } }, { string: {} }), []);
    assert.deepEqual(diff({ string: { email: true } }, { string: { uuid: true } }), ["added string.uuid"]);
    assert.deepEqual(diff({ enum: {} }, { enum: { definedOnly: true } }), ["added enum.defined_only"]);
    assert.deepEqual(
      diff({ repeated: { items: { string: {} } } }, { repeated: { items: { string: { uuid: true } } } }),
      ["added repeated.items.string.uuid"],
    );
    assert.deepEqual(diff({ repeated: {} }, { repeated: { unique: true } }), ["added repeated.unique"]);
  });

  test("required, CEL and ignore", () => {
    assert.deepEqual(diff({}, { required: true }), ["required required"]);
    assert.deepEqual(diff({ required: true }, {}), []);
    const cel = { id: "positive", message: "must be positive", expression: "this > 0" };
    assert.deepEqual(diff({}, { cel: [cel] }), ["added cel[positive]"]);
    assert.deepEqual(diff({ cel: [cel] }, { cel: [cel] }), []);
    assert.deepEqual(diff({ cel: [cel] }, {}), []);
    assert.deepEqual(diff({ ignore: "IGNORE_ALWAYS" }, { string: { minLen: "0" } }), ["tightened ignore"]);
    assert.deepEqual(diff({}, { ignore: "IGNORE_IF_ZERO_VALUE" }), []);
  });

  test("a field without rules that gets some: every rule is added", () => {
    assert.deepEqual(diff(undefined, { string: { minLen: "1", maxLen: "8" } }), [
      "added string.min_len",
      "added string.max_len",
    ]);
    assert.deepEqual(diff({ string: { minLen: "1" } }, { bytes: { minLen: "1" } }), ["added bytes.min_len"]);
  });
});
