import assert from "node:assert/strict";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, beforeEach, describe, test } from "node:test";
import { isJetkitError } from "@jetkit/contracts";
import { ContractsCheckErrorCodes, checkContracts, formatCheckReport } from "../src/contracts-check/index.js";
import { buf, edit, ORDER, passes, refuses, tempRepo } from "./contracts-check-fixture.js";

describe("contracts check against HEAD (real buf, real git)", () => {
  let dir: string;
  let git: (...args: string[]) => string;
  let baseline: string;
  const check = () => checkContracts({ root: dir, against: "HEAD", buf, env: {} });

  before(() => {
    ({ dir, git } = tempRepo());
    baseline = git("rev-parse", "HEAD");
  });
  beforeEach(() => {
    git("reset", "-q", "--hard", baseline);
    git("clean", "-q", "-fd");
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("the unchanged contracts pass every step", async () => {
    const report = await check();
    passes(report);
    assert.deepEqual(
      report.steps.map((s) => `${s.step}:${s.status}`),
      ["lint:pass", "catalog:pass", "breaking:pass", "compat:pass"],
    );
    assert.equal(report.baseline?.commit, baseline);
    assert.match(formatCheckReport(report), /^ok: /m);
  });

  test("refuses a deleted field, naming the number and name to reserve", async () => {
    edit(dir, ORDER, /\n\s*string note = 3[^;]*;/, "");
    const report = await check();
    const p = refuses(
      report,
      "breaking",
      "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED",
      /reserved 3; reserved "note";/,
    );
    assert.ok(p.line && p.line > 1);
    refuses(report, "breaking", "FIELD_NO_DELETE_UNLESS_NAME_RESERVED", /OrderLifecycleCancelled/);
  });

  test("refuses a changed field type", async () => {
    edit(dir, ORDER, /string note = 3[^;]*;/, "int64 note = 3;");
    refuses(await check(), "breaking", "FIELD_SAME_TYPE", /add a new field with a new number/);
  });

  test("refuses a renumbered field", async () => {
    edit(dir, ORDER, /string note = 3 /, "string note = 6 ");
    refuses(
      await check(),
      "breaking",
      "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED",
      /reserved 3; reserved "note";/,
    );
  });

  test("refuses a removed enum value", async () => {
    edit(dir, ORDER, /\n\s*CARRIER_POSTAL = 4;/, "");
    refuses(
      await check(),
      "breaking",
      "ENUM_VALUE_NO_DELETE",
      /restore the value 4 of enum Carrier.*deprecated = true/,
    );
  });

  test("refuses a renamed subject (a rule buf cannot see)", async () => {
    edit(dir, ORDER, /subject: "order\.lifecycle\.cancelled"/, 'subject: "order.lifecycle.canceled"');
    const report = await check();
    const p = refuses(
      report,
      "compat",
      "EVENT_SUBJECT_RENAMED",
      /keep subject: "order\.lifecycle\.cancelled"/,
    );
    assert.match(p.message, /"order\.lifecycle\.cancelled" to "order\.lifecycle\.canceled"/);
    const source = readFileSync(join(dir, ORDER), "utf8").split("\n");
    assert.match(
      source[(p.line ?? 0) - 1] ?? "",
      /order\.lifecycle\.canceled/,
      "the line of the renamed subject",
    );
    assert.equal(report.steps.find((s) => s.step === "breaking")?.status, "pass", "buf alone sees nothing");
  });

  test("refuses an event moved to another message type", async () => {
    edit(dir, ORDER, /message OrderLifecycleCancelled \{/, "message OrderCancelled {");
    const report = await check();
    refuses(
      report,
      "compat",
      "EVENT_TYPE_CHANGED",
      /bind "order\.lifecycle\.cancelled" back to shop\.order\.v1\.OrderLifecycleCancelled/,
    );
    refuses(report, "breaking", "MESSAGE_NO_DELETE", /option deprecated = true;/);
  });

  test("refuses a renamed stream: the stream is removed and its subjects move", async () => {
    edit(dir, ORDER, /name: "ORDER"/, 'name: "ORDERS"');
    const report = await check();
    refuses(report, "compat", "STREAM_REMOVED", /restore option \(jetkit\.v1\.stream\)/);
    refuses(report, "compat", "EVENT_STREAM_MOVED", /keep "order\.[a-z.]+" inside stream ORDER's subjects/);
  });

  test("refuses a lint error with buf's suggestion as the fix", async () => {
    edit(dir, ORDER, /(google\.protobuf\.Timestamp cancelled_at = 5[^;]*;)/, "$1\n  string operatorId = 6;");
    refuses(await check(), "lint", "FIELD_LOWER_SNAKE_CASE", /rename it to "operator_id"/);
  });

  test("accepts an added field", async () => {
    edit(dir, ORDER, /(google\.protobuf\.Timestamp cancelled_at = 5[^;]*;)/, "$1\n  string operator_id = 6;");
    passes(await check());
  });

  test("accepts a field first deprecated, then deleted with its number and name reserved", async () => {
    edit(dir, ORDER, /string note = 3 \[/, "string note = 3 [deprecated = true, ");
    passes(await check());
    git("commit", "-q", "-am", "deprecate note");

    edit(dir, ORDER, /string note = 3[^;]*;/, "reserved 3;");
    refuses(
      await check(),
      "breaking",
      "FIELD_NO_DELETE_UNLESS_NAME_RESERVED",
      /reserved 3; reserved "note";/,
    );

    edit(dir, ORDER, /reserved 3;/, 'reserved 3;\n  reserved "note";');
    passes(await check());
  });
});

describe("contracts check: which baseline", () => {
  let dir: string;
  let git: (...args: string[]) => string;

  before(() => {
    ({ dir, git } = tempRepo());
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("on the first commit there is nothing to compare: a pass with a note", async () => {
    const report = await checkContracts({ root: dir, buf, env: {} });
    passes(report);
    assert.equal(report.baseline, undefined);
    assert.match(report.notes.join("\n"), /nothing to compare: HEAD is the first commit of main/);
    assert.equal(report.steps.find((s) => s.step === "breaking")?.status, "skipped");
  });

  test("on main the baseline is HEAD~1; on a branch the merge-base with main; the env var overrides", async () => {
    edit(dir, ORDER, /\n\s*CARRIER_POSTAL = 4;/, "");
    git("commit", "-q", "-am", "drop a carrier");
    const onMain = await checkContracts({ root: dir, buf, env: {} });
    assert.equal(onMain.baseline?.ref, "HEAD~1");
    refuses(onMain, "breaking", "ENUM_VALUE_NO_DELETE", /deprecated = true/);

    const fromEnv = await checkContracts({ root: dir, buf, env: { JETKIT_CONTRACTS_AGAINST: "HEAD" } });
    assert.equal(fromEnv.baseline?.source, "env");
    passes(fromEnv);

    git("checkout", "-q", "-b", "feature", "HEAD~1");
    edit(dir, ORDER, /subject: "order\.lifecycle\.cancelled"/, 'subject: "order.lifecycle.canceled"');
    git("commit", "-q", "-am", "rename a subject");
    git("commit", "-q", "--allow-empty", "-m", "later work");
    const onBranch = await checkContracts({ root: dir, buf, env: {} });
    assert.equal(onBranch.baseline?.source, "merge-base");
    assert.equal(onBranch.baseline?.commit, git("rev-parse", "main~1"));
    refuses(onBranch, "compat", "EVENT_SUBJECT_RENAMED", /keep subject/);
  });

  test("an unknown ref is a coded error, not a pass", async () => {
    await assert.rejects(checkContracts({ root: dir, buf, against: "origin/nope", env: {} }), (err) =>
      isJetkitError(err, ContractsCheckErrorCodes.REF_UNKNOWN),
    );
  });

  test("a ref without contracts: nothing to compare", async () => {
    const empty = git("commit-tree", "-m", "empty", git("mktree", "--missing"));
    const report = await checkContracts({ root: dir, buf, against: empty, env: {} });
    assert.equal(report.ok, true, formatCheckReport(report));
    assert.match(report.notes.join("\n"), /has no contracts\/proto/);
  });
});
