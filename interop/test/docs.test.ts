import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ROOT } from "./polyglot.js";

// docs/go.md and docs/rust.md show the example programs the interop tests run, verbatim.
describe("the Go and Rust docs show the tested examples", () => {
  const cases: [string, string][] = [
    ["docs/go.md", "contracts/go/examples/producer/main.go"],
    ["docs/go.md", "contracts/go/examples/consumer/main.go"],
    ["docs/go.md", "contracts/go/examples/group/main.go"],
    ["docs/rust.md", "contracts/rust/examples/producer.rs"],
    ["docs/rust.md", "contracts/rust/examples/consumer.rs"],
    ["docs/rust.md", "contracts/rust/examples/group.rs"],
  ];
  for (const [doc, example] of cases) {
    it(`${doc} shows ${example}`, () => {
      const text = readFileSync(join(ROOT, doc), "utf8");
      const code = readFileSync(join(ROOT, example), "utf8").trimEnd();
      assert.ok(text.includes(`\n${code}\n\`\`\``), `paste ${example} into ${doc} again (it changed)`);
    });
  }
});
