import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

const repo = new URL("../../../", import.meta.url).pathname;
const main = join(repo, "cli/dist/src/main.js");

/** The shell lines of the README's five-minute tour, exactly as written there. */
function tourLines(): string[] {
  const readme = readFileSync(join(repo, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## A five-minute tour"));
  const block = section.slice(
    section.indexOf("```sh") + 5,
    section.indexOf("```", section.indexOf("```sh") + 5),
  );
  return block
    .split("\n")
    .map((l) => l.replace(/\s+#.*$/, "").trim())
    .filter((l) => l.startsWith("./jetkit "));
}

/** Splits a shell line into words, honouring single quotes (all the tour uses). */
function words(line: string): string[] {
  return [...line.matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2]!);
}

test("the README's five-minute tour runs as written", { timeout: 180_000 }, () => {
  const lines = tourLines();
  assert.ok(lines.length >= 8, `found the tour (${lines.length} lines)`);
  const home = mkdtempSync(join(tmpdir(), "jetkit-tour-"));
  const env = { ...process.env, JETKIT_HOME: home, NO_COLOR: "1" };
  try {
    for (const line of lines) {
      const args = words(line).slice(1);
      // `tail` follows the stream live; the tour's reader stops it, the test asks for what is there.
      if (args[0] === "tail") args.push("--count", "1");
      const r = spawnSync(process.execPath, [main, ...args], {
        cwd: repo,
        env,
        encoding: "utf8",
        timeout: 120_000,
      });
      assert.equal(r.status, 0, `${line}\n${r.stdout}\n${r.stderr}`);
    }
  } finally {
    spawnSync(process.execPath, [main, "dev", "down"], { cwd: repo, env });
    rmSync(home, { recursive: true, force: true });
  }
});
