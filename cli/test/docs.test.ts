import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { commands, referenceMarkdown } from "../src/index.js";

const repo = new URL("../../../", import.meta.url).pathname;

function sources(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === "node_modules" || e.name === "dist" || e.name === "gen") continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) sources(p, out);
    else if (e.name.endsWith(".ts") && !e.name.endsWith(".d.ts")) out.push(p);
  }
  return out;
}

describe("docs stay in step with the code", () => {
  test("every error code a user can meet is documented with what to do", () => {
    const packages = readdirSync(repo, { withFileTypes: true })
      .filter(
        (e) =>
          e.isDirectory() &&
          existsSync(join(repo, e.name, "src")) &&
          existsSync(join(repo, e.name, "package.json")),
      )
      .map((e) => e.name);
    const codes = new Map<string, string>();
    for (const pkg of packages) {
      for (const file of sources(join(repo, pkg, "src"))) {
        for (const m of readFileSync(file, "utf8").matchAll(/["'`](JK_[A-Z0-9_]+)["'`]/g))
          codes.set(m[1]!, file.slice(repo.length));
      }
    }
    assert.ok(codes.size > 5, "found the codes");
    const docs = [join(repo, "docs/errors.md"), ...packages.map((p) => join(repo, p, "README.md"))]
      .filter((f) => existsSync(f))
      .map((f) => readFileSync(f, "utf8"))
      .join("\n");
    const undocumented = [...codes].filter(([code]) => !new RegExp(`\\|\\s*\`?${code}\`?\\s*\\|`).test(docs));
    assert.deepEqual(
      undocumented.map(([code, file]) => `${code} (${file})`),
      [],
      "add a row '| CODE | meaning | what to do |' to the package README's Errors table or docs/errors.md",
    );
  });

  test("docs/cli.md is generated from the same definitions as --help", () => {
    const committed = readFileSync(join(repo, "docs/cli.md"), "utf8");
    assert.equal(
      committed,
      referenceMarkdown(commands),
      "run 'pnpm --filter @jetkit/cli docs' and commit docs/cli.md",
    );
  });
});
