import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { loadCatalog } from "@jetkit/contracts";
import { TS_PROTO_OPTIONS, TS_PROTO_VERSION } from "../src/commands/init.js";
import { type Run, run } from "./process.js";

const main = new URL("../src/main.js", import.meta.url).pathname;
const repo = new URL("../../../", import.meta.url).pathname;

const jetkit = (args: string[], cwd: string) => run(process.execPath, [main, ...args], { cwd });
const ok = async (r: Promise<Run>, what: string) => {
  const res = await r;
  assert.equal(res.code, 0, `${what}: ${res.stderr}${res.stdout}`);
  return res;
};

describe("jetkit init: a new contracts repository for a team's own events", () => {
  const work = mkdtempSync(join(tmpdir(), "jetkit-init-"));
  const dir = join(work, "billing-contracts");
  after(() => rmSync(work, { recursive: true, force: true }));

  test("scaffolds, generates TS/Go/Rust and the image, passes the check; a breaking change and stale code are refused", {
    timeout: 180_000,
  }, async (t) => {
    await ok(
      jetkit(
        [
          "init",
          dir,
          "--org",
          "acme",
          "--go-module",
          "github.com/acme/billing-contracts",
          "--crate",
          "acme-billing",
        ],
        work,
      ),
      "init",
    );
    // What npm install would provide: the ts-proto plugin in node_modules/.bin (this repository's).
    mkdirSync(join(dir, "node_modules/.bin"), { recursive: true });
    symlinkSync(
      join(repo, "node_modules/.bin/protoc-gen-ts_proto"),
      join(dir, "node_modules/.bin/protoc-gen-ts_proto"),
    );
    const git = (...args: string[]) =>
      ok(
        run("git", ["-c", "user.name=Acme CI", "-c", "user.email=ci@acme.test", ...args], { cwd: dir }),
        `git ${args[0]}`,
      );
    await git("init", "-q", "-b", "main");

    await ok(jetkit(["contracts", "generate"], dir), "contracts generate");
    for (const f of [
      "gen/ts/acme/billing/v1/events.ts",
      "gen/go/acme/billing/v1/events.pb.go",
      "gen/rust/src/acme/billing/v1/acme.billing.v1.rs",
      "gen/rust/src/lib.rs",
      "gen/contracts.binpb",
    ])
      assert.ok(existsSync(join(dir, f)), `${f} generated`);
    // The Go code carries the team's module path, the Rust crate its name, the TS code ts-proto's $type.
    assert.match(
      readFileSync(join(dir, "gen/go/acme/billing/v1/events.pb.go"), "utf8"),
      /github\.com\/acme\/billing-contracts\/gen\/go\/acme\/billing\/v1/,
    );
    assert.match(readFileSync(join(dir, "gen/rust/Cargo.toml"), "utf8"), /name = "acme-billing"/);
    assert.match(
      readFileSync(join(dir, "gen/ts/acme/billing/v1/events.ts"), "utf8"),
      /\$type: "acme\.billing\.v1\.ExampleCreated"/,
    );
    const catalog = loadCatalog(join(dir, "gen/contracts.binpb"));
    const event = catalog.byType("acme.billing.v1.ExampleCreated");
    assert.equal(event.subject, "billing.example.created");
    assert.equal(event.stream, "BILLING");
    assert.ok(
      catalog.streams.some((s) => s.name === "DLQ"),
      "the DLQ stream comes with the jetkit protos",
    );

    // The generated code builds in its languages (toolchains of this machine; modules from their caches).
    await ok(run("go", ["mod", "tidy"], { cwd: dir }), "go mod tidy");
    await ok(run("go", ["build", "./..."], { cwd: dir }), "go build");
    t.diagnostic("go build passed");
    const cargo = await run("cargo", ["check", "--offline", "-q"], { cwd: join(dir, "gen/rust") });
    if (cargo.code !== 0 && /no matching package|failed to download|offline/i.test(cargo.stderr)) {
      t.diagnostic(
        `cargo check skipped: prost is not in this machine's crate cache (${cargo.stderr.trim().split("\n")[0]})`,
      );
    } else assert.equal(cargo.code, 0, `cargo check: ${cargo.stderr}`);

    // The CLI run in the repository reads the team's catalog (jetkit.yaml names the image), with
    // jetkit's platform event (the gateway's audit) added; a module directory works as well.
    for (const args of [
      ["events", "--json"],
      ["events", "--json", "--contracts", "contracts/proto"],
    ]) {
      const events = await ok(jetkit(args, dir), args.join(" "));
      assert.deepEqual((JSON.parse(events.stdout) as { subject: string }[]).map((e) => e.subject).sort(), [
        "audit.gateway.decision",
        "billing.example.created",
      ]);
    }

    writeFileSync(join(dir, ".gitignore"), `${readFileSync(join(dir, ".gitignore"), "utf8")}go.sum\n`);
    await git("add", "-A");
    await git("commit", "-q", "-m", "billing contracts");
    await ok(jetkit(["contracts", "generate", "--check"], dir), "generate --check on fresh output");
    await ok(jetkit(["contracts", "check"], dir), "contracts check (first commit)");

    // A compatible change, generated and committed: the check passes against the previous commit.
    const proto = join(dir, "contracts/proto/acme/billing/v1/events.proto");
    const first = readFileSync(proto, "utf8");
    writeFileSync(
      proto,
      first.replace(
        "  google.protobuf.Timestamp created_at = 3;",
        "  google.protobuf.Timestamp created_at = 3;\n  string owner = 4;",
      ),
    );
    const stale = await jetkit(["contracts", "generate", "--check"], dir);
    assert.equal(stale.code, 1, "a proto change without regenerating is refused");
    assert.match(stale.stderr, /error\[JK_GEN_STALE\]/);
    await git("add", "-A");
    await git("commit", "-q", "-m", "owner");
    await ok(jetkit(["contracts", "check", "--json"], dir), "a compatible change passes");

    // A breaking change: the event's subject renamed.
    writeFileSync(
      proto,
      readFileSync(proto, "utf8").replace("billing.example.created", "billing.example.made"),
    );
    await ok(jetkit(["contracts", "generate"], dir), "generate");
    await git("commit", "-q", "-am", "rename subject");
    const refused = await jetkit(["contracts", "check", "--json"], dir);
    assert.equal(refused.code, 1, refused.stderr);
    const report = JSON.parse(refused.stdout) as { ok: boolean; problems: { rule: string; file: string }[] };
    assert.equal(report.ok, false);
    assert.ok(
      report.problems.some((p) => p.file.endsWith("acme/billing/v1/events.proto")),
      JSON.stringify(report.problems),
    );
  });

  test("never overwrites a file, and refuses names that cannot be subjects, packages, modules or crates", async () => {
    const again = await jetkit(["init", dir], work);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /error\[JK_CLI_USAGE\].*never overwrites a file/);
    const bad = await jetkit(["init", join(work, "x"), "--domain", "Billing-Team"], work);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--domain "Billing-Team" must be one lower-case word/);
    assert.ok(!existsSync(join(work, "x", "buf.yaml")), "nothing written after a refusal");
  });

  test("generates TypeScript with the ts-proto version and options of this repository (what the SDKs read)", () => {
    const root = JSON.parse(readFileSync(join(repo, "package.json"), "utf8")) as {
      devDependencies?: Record<string, string>;
      dependencies?: Record<string, string>;
    };
    assert.equal(TS_PROTO_VERSION, root.devDependencies?.["ts-proto"] ?? root.dependencies?.["ts-proto"]);
    const gen = readFileSync(join(repo, "buf.gen.yaml"), "utf8");
    for (const o of TS_PROTO_OPTIONS) assert.ok(gen.includes(`- ${o}`), `buf.gen.yaml has ${o}`);
  });
});
