// A throwaway git repository holding this repository's contracts, and assertions on check reports,
// shared by the contracts check tests.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type CheckReport,
  type CheckStep,
  ContractsCheckErrorCodes,
  formatCheckReport,
  locateBuf,
} from "../src/contracts-check/index.js";

export const repo = new URL("../../../", import.meta.url).pathname;
export const buf = locateBuf(repo);
export const ORDER = "contracts/proto/shop/order/v1/events.proto";

const gitEnv = {
  ...process.env,
  GIT_AUTHOR_NAME: "jetkit test",
  GIT_AUTHOR_EMAIL: "test@jetkit.invalid",
  GIT_COMMITTER_NAME: "jetkit test",
  GIT_COMMITTER_EMAIL: "test@jetkit.invalid",
};

/** A throwaway repository holding this repository's buf.yaml and contracts, committed on main. */
export function tempRepo(): { dir: string; git: (...args: string[]) => string } {
  const dir = mkdtempSync(join(tmpdir(), "jetkit-contracts-check-test-"));
  cpSync(join(repo, "buf.yaml"), join(dir, "buf.yaml"));
  cpSync(join(repo, "contracts/proto"), join(dir, "contracts/proto"), { recursive: true });
  cpSync(join(repo, "contracts/deps"), join(dir, "contracts/deps"), { recursive: true });
  // As in the real repository, the installed deps are not committed.
  writeFileSync(join(dir, ".gitignore"), "contracts/deps/\n");
  const git = (...args: string[]) =>
    execFileSync("git", args, { cwd: dir, env: gitEnv, encoding: "utf8" }).trim();
  git("init", "-q", "-b", "main");
  git("add", ".");
  git("commit", "-q", "-m", "baseline contracts");
  return { dir, git };
}

/** Replaces what `pattern` matches in a file of the temp repo; fails if it matches nothing. */
export function edit(dir: string, file: string, pattern: RegExp, replacement: string): void {
  const path = join(dir, file);
  const text = readFileSync(path, "utf8");
  assert.match(text, pattern, `${file} no longer contains ${pattern}: update the test`);
  writeFileSync(path, text.replace(pattern, replacement));
}

/** Asserts the report refuses with `rule` in `step`, naming the file and a fix, and returns the problem. */
export function refuses(report: CheckReport, step: CheckStep, rule: string, fix: RegExp, file = ORDER) {
  assert.equal(report.ok, false, formatCheckReport(report));
  assert.equal(report.exitCode, 1);
  assert.equal(report.code, ContractsCheckErrorCodes.REFUSED);
  const problem = report.problems.find((p) => p.rule === rule);
  assert.ok(problem, `expected ${rule}, got:\n${formatCheckReport(report)}`);
  assert.equal(problem.step, step);
  assert.equal(problem.file, file);
  assert.match(problem.fix, fix);
  const text = formatCheckReport(report);
  assert.ok(text.includes(`[${rule}]`) && text.includes(file) && text.includes(`fix: ${problem.fix}`), text);
  assert.equal(report.steps.find((s) => s.step === step)?.status, "fail");
  return problem;
}

export function passes(report: CheckReport): void {
  assert.equal(report.ok, true, formatCheckReport(report));
  assert.equal(report.exitCode, 0);
  assert.deepEqual(report.problems, []);
}
