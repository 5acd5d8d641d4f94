import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { parse } from "yaml";
import { workflow } from "../src/commands/init.js";

const repo = new URL("../../../", import.meta.url).pathname;

interface Step {
  uses?: string;
  with?: Record<string, unknown>;
  run?: string;
}
interface Workflow {
  on: { pull_request?: unknown; push?: unknown };
  jobs: Record<string, { steps: Step[] }>;
}

test("this repository's workflow runs the package's check command on pull requests", () => {
  const wf = parse(readFileSync(join(repo, ".github/workflows/contracts.yml"), "utf8")) as Workflow;
  assert.ok(wf.on.pull_request, "runs on pull requests");
  const steps = wf.jobs.check!.steps;
  const checkout = steps.find((s) => s.uses?.startsWith("actions/checkout@"));
  assert.equal(checkout?.with?.["fetch-depth"], 0, "full history, so the base branch can be compared");
  const script = steps.map((s) => s.run ?? "").join("\n");
  assert.match(script, /bash scripts\/setup\.sh/);
  const pkg = JSON.parse(readFileSync(join(repo, "package.json"), "utf8")) as {
    scripts: Record<string, string>;
  };
  const command = pkg.scripts["contracts:check"];
  assert.ok(command, "package.json has a contracts:check script");
  assert.ok(
    script.includes(`${command} --against "origin/$BASE_REF"`),
    "same command as pnpm contracts:check",
  );
});

test("the workflow jetkit init writes needs nothing of jetkit's repository: buf-action, then the installed CLI", () => {
  const text = workflow();
  const wf = parse(text) as Workflow;
  assert.ok("pull_request" in wf.on && "push" in wf.on, "runs on pull requests and pushes");
  assert.doesNotMatch(text, /scripts\/setup\.sh|cli\/dist|pnpm/, "no path of jetkit's own repository");
  const buf = wf.jobs.buf!.steps.find((s) => s.uses?.startsWith("bufbuild/buf-action@"));
  assert.ok(buf, "bufbuild/buf-action runs");
  assert.equal(buf.with?.lint, true);
  assert.match(String(buf.with?.breaking), /pull_request/, "breaking on pull requests");
  assert.equal(buf.with?.push, false, "never pushes to the BSR");
  const steps = wf.jobs.jetkit!.steps;
  assert.equal(steps.find((s) => s.uses?.startsWith("actions/checkout@"))?.with?.["fetch-depth"], 0);
  const script = steps.map((s) => s.run ?? "").join("\n");
  assert.match(script, /npm ci/, "the CLI comes from the repository's own package.json");
  assert.match(script, /npx jetkit contracts generate --check/);
  assert.match(script, /npx jetkit contracts check --against "origin\/\$BASE_REF"/);
});
