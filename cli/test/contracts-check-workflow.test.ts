import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { parse } from "yaml";

const repo = new URL("../../../", import.meta.url).pathname;

interface Workflow {
  on: { pull_request?: unknown };
  jobs: { check: { steps: { uses?: string; with?: Record<string, unknown>; run?: string }[] } };
}

test("the shipped workflow is the one this repository runs, and it runs the package's check command on pull requests", () => {
  const shipped = readFileSync(join(repo, "contracts/ci/github-workflow.yml"), "utf8");
  assert.equal(readFileSync(join(repo, ".github/workflows/contracts.yml"), "utf8"), shipped);

  const wf = parse(shipped) as Workflow;
  assert.ok(wf.on.pull_request, "runs on pull requests");
  const steps = wf.jobs.check.steps;
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
