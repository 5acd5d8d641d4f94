import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, beforeEach, describe, test } from "node:test";
import { isJetkitError } from "@jetkit/contracts";
import { DEFAULT_RETRY } from "@jetkit/producers";
import {
  type CheckReport,
  CONTRACT_RULES,
  type ContractProblem,
  ContractsCheckErrorCodes,
  checkContracts,
  formatCheckReport,
  formatGithubAnnotations,
} from "../src/contracts-check/index.js";
import { buf, edit, ORDER, passes, refuses, repo, tempRepo } from "./contracts-check-fixture.js";

const COMMERCE = "contracts/proto/shop/common/v1/commerce.proto";

describe("contracts check: rules that protect stored history (real buf, real git)", () => {
  let dir: string;
  let git: (...args: string[]) => string;
  let baseline: string;
  const check = (allow: { rule: string; reason: string }[] = []) =>
    checkContracts({ root: dir, against: "HEAD", buf, env: {}, allow });
  /** The source line a problem points at, so a test can say which declaration it names. */
  const lineOf = (p: ContractProblem) => {
    assert.ok(p.line, `${p.rule} has a line`);
    return readFileSync(join(dir, p.file), "utf8").split("\n")[p.line - 1] ?? "";
  };
  const all = (report: CheckReport, rule: string) => report.problems.filter((p) => p.rule === rule);

  before(() => {
    ({ dir, git } = tempRepo());
    baseline = git("rev-parse", "HEAD");
  });
  beforeEach(() => {
    git("reset", "-q", "--hard", baseline);
    git("clean", "-q", "-fd");
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("FIELD_RULE_TIGHTENED: a lowered max_len, a raised min_len, a narrowed bound, a changed pattern, a grown not_in", async () => {
    edit(
      dir,
      ORDER,
      /string note = 3 \[\(buf\.validate\.field\)\.string\.max_len = 512\]/,
      "string note = 3 [(buf.validate.field).string.max_len = 256]",
    );
    edit(
      dir,
      ORDER,
      /string shipment_id = 1 \[\(buf\.validate\.field\)\.string\.min_len = 1\]/,
      "string shipment_id = 1 [(buf.validate.field).string.min_len = 3]",
    );
    edit(
      dir,
      ORDER,
      /(CancellationReason reason = 2 \[\(buf\.validate\.field\)\.enum = \{\n\s*defined_only: true\n\s*not_in: )\[0\]/,
      "$1[0, 4]",
    );
    edit(
      dir,
      COMMERCE,
      /uint32 quantity = 2 \[\(buf\.validate\.field\)\.uint32\.gt = 0\]/,
      "uint32 quantity = 2 [(buf.validate.field).uint32.gt = 1]",
    );
    edit(
      dir,
      COMMERCE,
      /string currency_code = 1 \[\(buf\.validate\.field\)\.string\.pattern = "\^\[A-Z\]\{3\}\$"\]/,
      'string currency_code = 1 [(buf.validate.field).string.pattern = "^[A-Z]{3}[0-9]?$"]',
    );
    const report = await check();
    const problems = all(report, "FIELD_RULE_TIGHTENED");
    const byField = (name: string) => {
      const p = problems.find((x) => x.message.includes(`.${name}:`));
      assert.ok(p, `FIELD_RULE_TIGHTENED on ${name}:\n${formatCheckReport(report)}`);
      assert.equal(p.step, "compat");
      assert.match(lineOf(p), new RegExp(`\\b${name} = \\d`), `the line declares ${name}`);
      assert.match(p.fix, /loosening is accepted/);
      return p;
    };
    assert.match(byField("note").message, /string\.max_len went from 512 to 256/);
    assert.match(byField("shipment_id").message, /string\.min_len went from 1 to 3/);
    assert.match(byField("reason").message, /enum\.not_in went from \[0\] to \[0, 4\]/);
    const quantity = byField("quantity");
    assert.equal(
      quantity.file,
      COMMERCE,
      "a message reached through the event's fields is checked in its own file",
    );
    assert.match(quantity.message, /uint32\.gt went from gt 0 to gt 1/);
    assert.match(byField("currency_code").message, /string\.pattern went from "\^\[A-Z\]\{3\}\$" to/);
    assert.equal(problems.length, 5, formatCheckReport(report));
    assert.equal(report.steps.find((s) => s.step === "breaking")?.status, "pass", "buf alone sees nothing");
    assert.equal(report.exitCode, 1);
    assert.equal(report.code, ContractsCheckErrorCodes.REFUSED);
  });

  test("FIELD_RULE_TIGHTENED's safe counterpart: loosened rules pass (max_len raised, min_len and pattern dropped, bound widened, not_in shrunk)", async () => {
    edit(dir, ORDER, /string\.max_len = 512/, "string.max_len = 1024");
    edit(
      dir,
      ORDER,
      /string shipment_id = 1 \[\(buf\.validate\.field\)\.string\.min_len = 1\]/,
      "string shipment_id = 1",
    );
    edit(
      dir,
      ORDER,
      /(CancellationReason reason = 2 \[\(buf\.validate\.field\)\.enum = \{\n\s*defined_only: true\n\s*)not_in: \[0\]/,
      "$1not_in: []",
    );
    edit(dir, COMMERCE, /uint32\.gt = 0/, "uint32.gte = 0");
    edit(dir, COMMERCE, /string currency_code = 1 \[.*\];/, "string currency_code = 1;");
    passes(await check());
  });

  test("an in list shrunk is refused; grown is accepted", async () => {
    edit(
      dir,
      ORDER,
      /(Carrier carrier = 2 \[\(buf\.validate\.field\)\.enum = \{\n\s*defined_only: true\n\s*)not_in: \[0\]/,
      "$1in: [1, 2, 3, 4]",
    );
    git("commit", "-q", "-am", "carriers as an in list");
    edit(dir, ORDER, /in: \[1, 2, 3, 4\]/, "in: [1, 2, 3]");
    const p = refuses(await check(), "compat", "FIELD_RULE_TIGHTENED", /loosening is accepted/);
    assert.match(p.message, /Shipment\.carrier: enum\.in went from \[1, 2, 3, 4\] to \[1, 2, 3\]/);
    edit(dir, ORDER, /in: \[1, 2, 3\]/, "in: [1, 2, 3, 4, 5]");
    passes(await check());
  });

  test("FIELD_RULE_ADDED and FIELD_REQUIRED_ADDED: a new rule or required on an existing field", async () => {
    edit(dir, ORDER, /string\.max_len = 512\]/, "string = {max_len: 512, min_len: 1}]");
    edit(
      dir,
      ORDER,
      /shop\.common\.v1\.Money shipping_cost = 4;/,
      "shop.common.v1.Money shipping_cost = 4 [(buf.validate.field).required = true];",
    );
    const report = await check();
    const added = refuses(report, "compat", "FIELD_RULE_ADDED", /drop the new rule/);
    assert.match(added.message, /OrderLifecycleCancelled\.note: string\.min_len = 1 was added/);
    assert.match(lineOf(added), /string note = 3/);
    const required = refuses(report, "compat", "FIELD_REQUIRED_ADDED", /drop required/);
    assert.match(required.message, /OrderFulfillmentCompleted\.shipping_cost: required was added/);
    assert.match(lineOf(required), /shipping_cost = 4/);
  });

  test("MESSAGE_RULE_ADDED and a required oneof: refused when added, accepted when removed", async () => {
    const CUSTOMER = "contracts/proto/shop/customer/v1/events.proto";
    edit(dir, CUSTOMER, /\n\s*option \(buf\.validate\.oneof\)\.required = true;/, "");
    passes(await check());
    git("commit", "-q", "-am", "payment method optional");
    git("checkout", "-q", baseline, "--", CUSTOMER);
    const oneof = refuses(await check(), "compat", "FIELD_REQUIRED_ADDED", /drop required/, CUSTOMER);
    assert.match(
      oneof.message,
      /oneof shop\.customer\.v1\.CustomerCheckoutInitiated\.payment_method is now required/,
    );
    assert.match(lineOf(oneof), /oneof payment_method/);

    git("reset", "-q", "--hard", baseline);
    edit(
      dir,
      ORDER,
      /(message OrderLifecycleCancelled \{\n)/,
      `$1  option (buf.validate.message).cel = {\n    id: "refunded"\n    message: "a cancellation refunds"\n    expression: "has(this.refund)"\n  };\n`,
    );
    const cel = refuses(await check(), "compat", "MESSAGE_RULE_ADDED", /drop the new message rule/);
    assert.match(
      cel.message,
      /message shop\.order\.v1\.OrderLifecycleCancelled has new message-level rules \(cel "has\(this\.refund\)"\)/,
    );
    assert.match(lineOf(cel), /message OrderLifecycleCancelled/);
    git("commit", "-q", "-am", "a message rule");
    git("checkout", "-q", baseline, "--", ORDER);
    passes(await check());
  });

  test("a new field whose rules its absence breaks is refused; one that may be unset is accepted", async () => {
    const field = (decl: string) =>
      edit(dir, ORDER, /(google\.protobuf\.Timestamp cancelled_at = 5[^;]*;)/, `$1\n  ${decl}`);
    field("string operator_id = 6 [(buf.validate.field).required = true];");
    field("string desk = 7 [(buf.validate.field).string.min_len = 2];");
    const report = await check();
    const required = refuses(report, "compat", "FIELD_REQUIRED_ADDED", /drop required/);
    assert.match(required.message, /new field shop\.order\.v1\.OrderLifecycleCancelled\.operator_id/);
    assert.match(lineOf(required), /operator_id = 6/);
    const rule = refuses(report, "compat", "FIELD_RULE_ADDED", /IGNORE_IF_ZERO_VALUE/);
    assert.match(rule.message, /new field .*\.desk has rule string\.min_len/);

    git("checkout", "-q", "--", ORDER);
    field(
      "string desk = 7 [(buf.validate.field).string.min_len = 2, (buf.validate.field).ignore = IGNORE_IF_ZERO_VALUE];",
    );
    field("optional string shift = 8 [(buf.validate.field).string.min_len = 2];");
    passes(await check());
  });

  test("EVENT_PARTITION_KEY_CHANGED: another key or none is refused; a key where there was none is accepted", async () => {
    const started = /(subject: "order\.fulfillment\.started"\n\s*)partition_key: "order_id"/;
    edit(dir, ORDER, started, '$1partition_key: "checkout_id"');
    const p = refuses(
      await check(),
      "compat",
      "EVENT_PARTITION_KEY_CHANGED",
      /keep partition_key: "order_id" on shop\.order\.v1\.OrderFulfillmentStarted/,
    );
    assert.match(p.message, /ordered by "checkout_id" instead of "order_id"/);
    assert.match(lineOf(p), /partition_key: "checkout_id"/);

    git("checkout", "-q", "--", ORDER);
    edit(dir, ORDER, started, "$1");
    const removed = refuses(await check(), "compat", "EVENT_PARTITION_KEY_CHANGED", /keep partition_key/);
    assert.match(removed.message, /no longer declares partition_key "order_id"/);

    git("commit", "-q", "-am", "an event without a key");
    edit(dir, ORDER, /(subject: "order\.fulfillment\.started"\n)/, '$1    partition_key: "order_id"\n');
    passes(await check());
  });

  test("stream policies: retention, storage and discard changes are refused; the same policy spelled out is accepted", async () => {
    edit(dir, ORDER, /retention: RETENTION_LIMITS/, "retention: RETENTION_INTEREST");
    edit(dir, ORDER, /storage: STORAGE_FILE/, "storage: STORAGE_MEMORY\n  discard: DISCARD_NEW");
    const report = await check();
    const retention = refuses(
      report,
      "compat",
      "STREAM_RETENTION_CHANGED",
      /keep retention: limits on stream ORDER/,
    );
    assert.match(retention.message, /from limits to interest/);
    assert.match(lineOf(retention), /retention: RETENTION_INTEREST/);
    assert.match(
      lineOf(refuses(report, "compat", "STREAM_STORAGE_CHANGED", /keep storage: file/)),
      /STORAGE_MEMORY/,
    );
    assert.match(
      lineOf(refuses(report, "compat", "STREAM_DISCARD_CHANGED", /keep discard: old/)),
      /DISCARD_NEW/,
    );

    git("checkout", "-q", "--", ORDER);
    edit(dir, ORDER, /retention: RETENTION_LIMITS/, "retention: RETENTION_UNSPECIFIED");
    edit(dir, ORDER, /storage: STORAGE_FILE/, "discard: DISCARD_OLD");
    passes(await check());
  });

  test("STREAM_LIMIT_SHRUNK: a shorter max_age or a new max_bytes / max_msg_size is refused; raised limits are accepted", async () => {
    edit(
      dir,
      ORDER,
      /max_age: \{seconds: 7776000\}/,
      "max_age: {seconds: 2592000}\n  max_bytes: 1073741824\n  max_msg_size: 65536",
    );
    const report = await check();
    const shrunk = all(report, "STREAM_LIMIT_SHRUNK");
    assert.deepEqual(
      shrunk.map((p) => /: (max_\w+) shrunk/.exec(p.message)?.[1]).sort(),
      ["max_age", "max_bytes", "max_msg_size"],
      formatCheckReport(report),
    );
    const age = refuses(report, "compat", "STREAM_LIMIT_SHRUNK", /keep max_age at 7776000000 ms/);
    assert.match(age.message, /from 7776000000 ms to 2592000000 ms/);
    assert.match(lineOf(age), /max_age: \{seconds: 2592000\}/);

    git("commit", "-q", "-am", "limits (reviewed)");
    edit(dir, ORDER, /max_age: \{seconds: 2592000\}/, "max_age: {seconds: 15552000}");
    edit(dir, ORDER, /max_bytes: 1073741824/, "max_bytes: 0");
    edit(dir, ORDER, /max_msg_size: 65536/, "max_msg_size: 1048576");
    passes(await check());
  });

  test("STREAM_REPLICAS_LOWERED: fewer replicas than declared, or than the cluster default, is refused; 3 is accepted", async () => {
    edit(dir, ORDER, /storage: STORAGE_FILE/, "storage: STORAGE_FILE\n  replicas: 1");
    const p = refuses(
      await check(),
      "compat",
      "STREAM_REPLICAS_LOWERED",
      /jetkit streams apply --replicas 1/,
    );
    assert.match(p.message, /from unset \(3 on a cluster of 3 or more\) to 1; .*loss of a node/);
    assert.match(lineOf(p), /replicas: 1/);

    edit(dir, ORDER, /replicas: 1/, "replicas: 3");
    passes(await check());
    git("commit", "-q", "-am", "R3 declared");
    edit(dir, ORDER, /replicas: 3/, "replicas: 2");
    refuses(await check(), "compat", "STREAM_REPLICAS_LOWERED", /keep replicas: 3 on stream ORDER/);
  });

  test("STREAM_DUPLICATE_WINDOW_SHORT: a window under the producers' retry deadline is refused, even without a baseline; the deadline itself is accepted", async () => {
    assert.equal(DEFAULT_RETRY.deadlineMs, 30_000);
    edit(dir, ORDER, /duplicate_window: \{seconds: 120\}/, "duplicate_window: {seconds: 10}");
    const p = refuses(
      await check(),
      "catalog",
      "STREAM_DUPLICATE_WINDOW_SHORT",
      /duplicate_window: \{seconds: 30\} or more/,
    );
    assert.match(p.message, /10000 ms is shorter than the producers' retry deadline \(30000 ms\)/);
    assert.match(lineOf(p), /duplicate_window: \{seconds: 10\}/);
    const empty = git("commit-tree", "-m", "empty", git("mktree", "--missing"));
    const unbased = await checkContracts({ root: dir, against: empty, buf, env: {} });
    assert.match(unbased.notes.join("\n"), /nothing to compare/);
    refuses(unbased, "catalog", "STREAM_DUPLICATE_WINDOW_SHORT", /seconds: 30/);

    edit(dir, ORDER, /duplicate_window: \{seconds: 10\}/, "duplicate_window: {seconds: 30}");
    passes(await check());
  });

  test("--allow RULE --reason accepts that rule's findings and reports them with the reason; other rules still refuse", async () => {
    edit(dir, ORDER, /string\.max_len = 512/, "string.max_len = 256");
    edit(dir, ORDER, /max_age: \{seconds: 7776000\}/, "max_age: {seconds: 2592000}");
    const reason = "no cancelled order ever had a note over 256 characters (checked in the warehouse)";

    const partly = await check([{ rule: "FIELD_RULE_TIGHTENED", reason }]);
    refuses(partly, "compat", "STREAM_LIMIT_SHRUNK", /keep max_age/);
    assert.equal(all(partly, "FIELD_RULE_TIGHTENED").length, 0, "the allowed rule no longer refuses");
    assert.equal(partly.allowed.length, 1);
    const allowed = partly.allowed[0];
    assert.equal(allowed?.rule, "FIELD_RULE_TIGHTENED");
    assert.equal(allowed?.file, ORDER);
    assert.equal(allowed?.reason, reason);

    const report = await check([
      { rule: "FIELD_RULE_TIGHTENED", reason },
      { rule: "STREAM_LIMIT_SHRUNK", reason: "orders older than 30 days are archived" },
      { rule: "STREAM_STORAGE_CHANGED", reason: "not needed" },
    ]);
    assert.equal(report.ok, true, formatCheckReport(report));
    assert.equal(report.exitCode, 0);
    assert.deepEqual(report.allowed.map((p) => p.rule).sort(), [
      "FIELD_RULE_TIGHTENED",
      "STREAM_LIMIT_SHRUNK",
    ]);
    const text = formatCheckReport(report);
    assert.match(text, /events\.proto:\d+: \[FIELD_RULE_TIGHTENED\] ALLOWED: .*max_len went from 512 to 256/);
    assert.ok(text.includes(`    reason: ${reason}`), text);
    assert.match(text, /^ok: .* 2 finding\(s\) allowed by override/m);
    assert.match(report.notes.join("\n"), /--allow STREAM_STORAGE_CHANGED matched no finding/);
    const json = JSON.parse(JSON.stringify(report)) as CheckReport;
    assert.equal(
      json.allowed.find((p) => p.rule === "STREAM_LIMIT_SHRUNK")?.reason,
      "orders older than 30 days are archived",
    );
    assert.match(
      formatGithubAnnotations(report),
      /^::warning file=contracts\/proto\/shop\/order\/v1\/events\.proto,line=\d+,title=\[FIELD_RULE_TIGHTENED\] allowed by override::.*%0Aallowed: no cancelled order/m,
    );

    await assert.rejects(check([{ rule: "FIELD_RULE_TIGHTENED", reason: "  " }]), (err) =>
      isJetkitError(err, ContractsCheckErrorCodes.ALLOW_INVALID),
    );
    await assert.rejects(check([{ rule: "field-rule", reason }]), (err) =>
      isJetkitError(err, ContractsCheckErrorCodes.ALLOW_INVALID),
    );
  });

  describe("jetkit contracts check (the command)", () => {
    const main = join(repo, "cli/dist/src/main.js");
    const jetkit = (args: string[], env: Record<string, string> = {}) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        const child = spawn(
          process.execPath,
          [main, "contracts", "check", "--root", dir, "--against", "HEAD", ...args],
          {
            cwd: dir,
            env: { ...process.env, GITHUB_ACTIONS: "", NO_COLOR: "1", ...env },
            stdio: ["ignore", "pipe", "pipe"],
          },
        );
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (b: Buffer) => (stdout += b));
        child.stderr.on("data", (b: Buffer) => (stderr += b));
        child.once("error", reject);
        child.once("close", (code) => resolve({ code, stdout, stderr }));
      });

    test("--json lists each refusal with file, line, rule and fix; in GitHub Actions each becomes an ::error annotation", async () => {
      edit(dir, ORDER, /string\.max_len = 512/, "string.max_len = 256");
      const r = await jetkit(["--json"]);
      assert.equal(r.code, 1, r.stderr);
      const report = JSON.parse(r.stdout) as CheckReport;
      assert.equal(report.code, "JK_CONTRACTS_REFUSED");
      const p = report.problems.find((x) => x.rule === "FIELD_RULE_TIGHTENED");
      assert.equal(p?.file, ORDER);
      assert.equal(p?.step, "compat");
      assert.ok(p?.line && p.fix);
      assert.deepEqual(report.allowed, []);

      const gh = await jetkit([], { GITHUB_ACTIONS: "true" });
      assert.equal(gh.code, 1);
      assert.match(gh.stdout, /\[FIELD_RULE_TIGHTENED\]/, "the text report");
      assert.ok(
        gh.stdout.includes(
          `::error file=${ORDER},line=${p?.line},title=[FIELD_RULE_TIGHTENED] contracts check::`,
        ),
        gh.stdout,
      );
      assert.match(gh.stdout, /%0Afix: keep the rule as it was/);
    });

    test("--allow without --reason is a usage error (exit 2); with it the check passes and prints the reason", async () => {
      edit(dir, ORDER, /string\.max_len = 512/, "string.max_len = 256");
      const bare = await jetkit(["--allow", "FIELD_RULE_TIGHTENED"]);
      assert.equal(bare.code, 2);
      assert.match(bare.stderr, /error\[JK_CLI_USAGE\]: --allow FIELD_RULE_TIGHTENED without --reason/);

      const r = await jetkit([
        "--allow",
        "FIELD_RULE_TIGHTENED",
        "--reason",
        "notes were never longer",
        "--json",
      ]);
      assert.equal(r.code, 0, r.stdout);
      const report = JSON.parse(r.stdout) as CheckReport;
      assert.equal(report.ok, true);
      assert.deepEqual(
        report.allowed.map((a) => [a.rule, a.reason]),
        [["FIELD_RULE_TIGHTENED", "notes were never longer"]],
      );
    });
  });

  test("every jetkit rule is documented with what it protects and its fix", () => {
    const docs = readFileSync(join(repo, "contracts/README.md"), "utf8");
    for (const [name, rule] of Object.entries(CONTRACT_RULES)) {
      const row = docs.split("\n").find((l) => l.startsWith(`| \`${name}\` |`));
      assert.ok(row, `contracts/README.md has a row for ${name}`);
      assert.equal(row.split("|").length, 6, `${name}: | rule | step | protects | fix |`);
      assert.ok(row.includes(` ${rule.step} `), `${name} is reported by the ${rule.step} step`);
    }
  });
});
