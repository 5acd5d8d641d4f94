import assert from "node:assert/strict";
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { builtinModules } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { type Run, run } from "./process.js";

// The packages as a team outside this repository gets them: packed with pnpm (workspace:*
// replaced by versions), installed with npm from the tarballs into an empty project in a temp
// dir, registry dependencies from the npm registry (the local npm cache first). Nothing in the
// project can reach this repository's node_modules.

const repo = new URL("../../../", import.meta.url).pathname;
const fixture = new URL("../../test/fixtures/acme-billing/", import.meta.url).pathname;

/** This process's environment (proxies, CA bundles) without npm_* from a pnpm run or this repository's JETKIT_*. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const keep = new Set(["JETKIT_NATS_SERVER", "JETKIT_TOOLS"]);
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_/i.test(k) || (k.startsWith("JETKIT_") && !keep.has(k))) continue;
    env[k] = v;
  }
  return { ...env, NO_COLOR: "1", GIT_CONFIG_NOSYSTEM: "1", ...extra };
}

function exec(cmd: string, args: string[], cwd: string, extra: Record<string, string> = {}): Promise<Run> {
  return run(cmd, args, { cwd, env: cleanEnv(extra) }).catch((err: Error) => {
    throw new Error(`${err.message} (PATH must hold node, pnpm, npm and git)`);
  });
}

async function ok(cmd: string, args: string[], cwd: string, extra: Record<string, string> = {}) {
  const r = await exec(cmd, args, cwd, extra);
  assert.equal(r.code, 0, `${cmd} ${args.join(" ")} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r;
}

interface Manifest {
  name: string;
  version: string;
  private?: boolean;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

const manifest = (dir: string) => JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as Manifest;

/** The workspace packages that are published: every folder with a package.json not marked private. */
function publicPackages(): { dir: string; pkg: Manifest }[] {
  return readdirSync(repo, { withFileTypes: true })
    .filter(
      (e) => e.isDirectory() && e.name !== "node_modules" && existsSync(join(repo, e.name, "package.json")),
    )
    .map((e) => ({ dir: join(repo, e.name), pkg: manifest(join(repo, e.name)) }))
    .filter((p) => p.pkg.private !== true);
}

function jsFiles(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (e === "node_modules") continue;
    if (statSync(p).isDirectory()) jsFiles(p, out);
    else if (e.endsWith(".js")) out.push(p);
  }
  return out;
}

/** Bare specifiers of the static and literal dynamic imports of an ES module compiled by tsc. */
function importsOf(source: string): string[] {
  const found = new Set<string>();
  const patterns = [
    /^\s*(?:import|export)\s[\w$*\s,{}]*?\bfrom\s*["']([^"']+)["']/gm,
    /^\s*import\s*["']([^"']+)["']/gm,
    /\bimport\(\s*["']([^"']+)["']\s*\)/g,
  ];
  for (const re of patterns) for (const m of source.matchAll(re)) found.add(m[1]!);
  // (`.proto` specifiers are proto import lines inside template text, e.g. what `jetkit init` writes.)
  return [...found].filter(
    (s) =>
      !s.startsWith(".") && !s.startsWith("node:") && !builtinModules.includes(s) && !s.endsWith(".proto"),
  );
}

const packageOf = (specifier: string) =>
  specifier.startsWith("@") ? specifier.split("/").slice(0, 2).join("/") : specifier.split("/")[0]!;

describe("the packages installed outside the repository", () => {
  const work = mkdtempSync(join(tmpdir(), "jetkit-install-"));
  const project = join(work, "acme-billing");
  const devHome = join(project, ".jetkit");
  let devPid: number | undefined;

  after(async () => {
    if (existsSync(join(project, "node_modules/.bin/jetkit")))
      await exec(join(project, "node_modules/.bin/jetkit"), ["dev", "down"], project, {
        JETKIT_HOME: devHome,
      });
    if (devPid) {
      try {
        process.kill(devPid, "SIGKILL"); // dev down failed: leave nothing running
      } catch {}
    }
    rmSync(work, { recursive: true, force: true });
  });

  test("pack, npm install into an empty project, then contracts check, streams apply, a producer and a consumer on a team's own contracts", {
    timeout: 120_000,
  }, async (t) => {
    assert.ok(!work.startsWith(repo), "the project lives outside the repository");
    const started = performance.now();
    const lap = (what: string) => t.diagnostic(`${what}: ${Math.round(performance.now() - started)} ms`);

    // 1. pack every public package
    const packages = publicPackages();
    assert.deepEqual(packages.map((p) => p.pkg.name).sort(), [
      "@jetkit/chaos",
      "@jetkit/cli",
      "@jetkit/consumers",
      "@jetkit/contracts",
      "@jetkit/gateway",
      "@jetkit/launcher",
      "@jetkit/producers",
    ]);
    const tarballs = join(work, "tarballs");
    await Promise.all(packages.map((p) => ok("pnpm", ["pack", "--pack-destination", tarballs], p.dir)));
    lap("packed");

    // 2. an empty project that depends on the tarballs (and on protobuf-es, which its script imports)
    cpSync(fixture, project, { recursive: true });
    const contractsDeps = manifest(join(repo, "contracts")).dependencies ?? {};
    const dependencies: Record<string, string> = {
      "@bufbuild/protobuf": contractsDeps["@bufbuild/protobuf"]!,
    };
    for (const { pkg } of packages) {
      dependencies[pkg.name] =
        `file:../tarballs/${pkg.name.replace("@", "").replace("/", "-")}-${pkg.version}.tgz`;
    }
    // The packages' own dependencies on each other name versions (0.1.0) that are not on the
    // registry: the overrides point them at the same tarballs.
    const overrides = Object.fromEntries(packages.map(({ pkg }) => [pkg.name, dependencies[pkg.name]!]));
    writeFileSync(
      join(project, "package.json"),
      `${JSON.stringify({ name: "acme-billing", private: true, type: "module", dependencies, overrides }, null, 2)}\n`,
    );
    await ok("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"], project);
    lap("npm install");
    const installed = join(project, "node_modules/@jetkit");
    assert.ok(!existsSync(join(installed, "testing")), "the private @jetkit/testing is not installed");

    // 3. every runtime import of every package is one of its own declared dependencies (npm
    // hoists everything flat, so an undeclared one would resolve here and fail elsewhere)
    const undeclared: string[] = [];
    for (const { pkg } of packages) {
      const dir = join(installed, pkg.name.split("/")[1]!);
      const own = manifest(dir);
      assert.ok(!JSON.stringify(own).includes("workspace:"), `${pkg.name} was packed with workspace: ranges`);
      const declared = new Set([
        own.name,
        ...Object.keys(own.dependencies ?? {}),
        ...Object.keys(own.peerDependencies ?? {}),
        ...Object.keys(own.optionalDependencies ?? {}),
      ]);
      for (const file of jsFiles(dir)) {
        for (const spec of importsOf(readFileSync(file, "utf8"))) {
          if (!declared.has(packageOf(spec)))
            undeclared.push(`${pkg.name}: ${spec} (${file.slice(dir.length)})`);
        }
      }
    }
    assert.deepEqual(undeclared, [], "imports that resolve only by hoisting luck");

    const jetkit = join(project, "node_modules/.bin/jetkit");
    const version = await ok(jetkit, ["--version"], project);
    assert.equal(version.stdout.trim(), manifest(join(repo, "cli")).version);
    // the packaged example contracts load from the tarball (gen/jetkit.binpb, dist/gen)
    const shop = await ok(
      "node",
      [
        "-e",
        `import("@jetkit/contracts").then((m) => console.log(m.getCatalog().streams.map((s) => s.name).join(",")));
           import("@jetkit/contracts/gen/shop/order/v1/events").then((m) => console.log(m.OrderFulfillmentCompleted.$type));`,
      ],
      project,
    );
    assert.match(shop.stdout, /ORDER/);
    assert.match(shop.stdout, /shop\.order\.v1\.OrderFulfillmentCompleted/);
    const drills = await ok(jetkit, ["drill", "list", "--json"], project);
    assert.ok(
      (JSON.parse(drills.stdout) as unknown[]).length > 5,
      "the drills are packed with @jetkit/chaos",
    );
    // jetkit init takes jetkit's option protos from the installed @jetkit/contracts
    const scaffolded = join(work, "scaffolded");
    await ok(jetkit, ["init", scaffolded, "--domain", "ledger"], project);
    assert.equal(
      readFileSync(join(scaffolded, "contracts/proto/jetkit/v1/options.proto"), "utf8"),
      readFileSync(join(installed, "contracts/proto/jetkit/v1/options.proto"), "utf8"),
    );
    assert.ok(existsSync(join(scaffolded, "contracts/proto/ledger/v1/events.proto")));

    // 4. the team's own contracts, with the jetkit protos taken from the installed package
    const jetkitProtos = join(project, "contracts/proto/jetkit/v1");
    for (const f of ["options.proto", "dead_letter.proto"])
      cpSync(join(installed, "contracts/proto/jetkit/v1", f), join(jetkitProtos, f));
    const git = (...args: string[]) =>
      ok("git", ["-c", "user.name=Acme CI", "-c", "user.email=ci@acme.test", ...args], project);
    writeFileSync(join(project, ".gitignore"), "node_modules/\n.jetkit/\n*.binpb\n");
    await git("init", "-q", "-b", "main");
    await git("add", "-A");
    await git("commit", "-q", "-m", "billing contracts");
    const events = join(project, "contracts/proto/acme/billing/v1/events.proto");
    const first = readFileSync(events, "utf8");
    // a compatible change: a new field and a new event
    writeFileSync(
      events,
      `${first.replace("  google.protobuf.Timestamp issued_at = 3;", "  google.protobuf.Timestamp issued_at = 3;\n  string currency = 4;")}
// An invoice was paid.
message InvoicePaid {
  option (jetkit.v1.event) = {
    subject: "billing.invoice.paid"
    partition_key: "invoice_id"
  };

  string invoice_id = 1;
}
`,
    );
    await git("commit", "-q", "-am", "invoice paid");
    const pass = await ok(jetkit, ["contracts", "check", "--json"], project);
    const report = JSON.parse(pass.stdout) as { ok: boolean; steps: { step: string; status: string }[] };
    assert.equal(report.ok, true);
    assert.deepEqual(
      report.steps.map((s) => `${s.step}:${s.status}`),
      ["lint:pass", "catalog:pass", "breaking:pass", "compat:pass"],
      "every step ran against the previous commit",
    );
    // a breaking change: the subject of an event renamed
    const committed = readFileSync(events, "utf8");
    writeFileSync(events, committed.replace('"billing.invoice.issued"', '"billing.invoice.sent"'));
    const refused = await exec(jetkit, ["contracts", "check"], project);
    assert.equal(refused.code, 1, refused.stdout + refused.stderr);
    assert.match(
      refused.stdout,
      /contracts\/proto\/acme\/billing\/v1\/events\.proto:\d+: \[EVENT_SUBJECT_RENAMED\]/,
    );
    writeFileSync(events, committed);
    lap("contracts check (pass and refuse)");

    // 5. the image of the team's contracts, built with the buf the CLI brought
    await ok(
      join(project, "node_modules/.bin/buf"),
      ["build", "contracts/proto", "--exclude-imports", "--as-file-descriptor-set", "-o", "billing.binpb"],
      project,
    );
    const listed = await ok(jetkit, ["events", "--contracts", "billing.binpb", "--json"], project);
    // the team's events, and jetkit's own platform event (the gateway's audit) added to them
    assert.deepEqual((JSON.parse(listed.stdout) as { subject: string }[]).map((e) => e.subject).sort(), [
      "audit.gateway.decision",
      "billing.invoice.issued",
      "billing.invoice.paid",
    ]);
    const missing = await exec(jetkit, ["streams", "plan", "--contracts", "nope.binpb"], project);
    assert.equal(missing.code, 3);
    assert.match(
      missing.stderr,
      /error\[JK_CLI_FILE\]: no contracts image or module at .*nope\.binpb\. Build the image/,
    );

    // 6. a real nats-server, started by the installed CLI (the launcher travels with it)
    const noServer = await exec(jetkit, ["dev", "up"], project, {
      JETKIT_HOME: devHome,
      JETKIT_NATS_SERVER: join(work, "no-such-nats-server"),
    });
    assert.equal(noServer.code, 3, "a missing dependency exits 3");
    assert.match(noServer.stderr, /error\[JK_NATS_SERVER_MISSING\]: could not start nats-server/);
    const up = await ok(jetkit, ["dev", "up", "--json"], project, { JETKIT_HOME: devHome });
    const node = (JSON.parse(up.stdout) as { nodes: { url: string; pid: number }[] }).nodes[0]!;
    devPid = node.pid;
    const servers = node.url;
    lap("dev up");

    // 7. streams from the team's contracts, idempotently
    const applied = await ok(
      jetkit,
      ["streams", "apply", "--contracts", "billing.binpb", "-s", servers],
      project,
    );
    assert.match(applied.stdout, /\+ BILLING create \(subjects \[billing\.>\]/);
    assert.match(applied.stdout, /\+ DLQ create/);
    const again = await ok(
      jetkit,
      ["streams", "apply", "--contracts", "billing.binpb", "-s", servers],
      project,
    );
    assert.match(again.stdout, /nothing to change/);
    const nc = await connect({ servers });
    try {
      const jsm = await jetstreamManager(nc);
      const names: string[] = [];
      for await (const s of jsm.streams.list()) names.push(s.config.name);
      assert.deepEqual(
        names.sort(),
        ["AUDIT", "BILLING", "DLQ"],
        "the team's streams and jetkit's platform streams, none of the example shop's",
      );
    } finally {
      await nc.close();
    }

    // 8. a producer and a consumer from the installed SDKs
    const ledger = await ok("node", ["ledger.mjs", servers, "billing.binpb"], project);
    const line = ledger.stdout.split("\n").find((l) => l.startsWith("RESULT "));
    assert.ok(line, ledger.stdout + ledger.stderr);
    const result = JSON.parse(line.slice("RESULT ".length)) as {
      acks: { subject: string; stream: string; seq: number; duplicate: boolean }[];
      retryDuplicate: boolean;
      received: { invoiceId: string; amountCents: string; subject: string; stream: string; key: string }[];
    };
    assert.deepEqual(
      result.acks,
      [1, 2, 3].map((seq) => ({
        subject: "billing.invoice.issued",
        stream: "BILLING",
        seq,
        duplicate: false,
      })),
    );
    assert.equal(result.retryDuplicate, true, "a retry with the same message id is stored once");
    assert.deepEqual(
      result.received.sort((a, b) => a.invoiceId.localeCompare(b.invoiceId)),
      [1, 2, 3].map((n) => ({
        invoiceId: `inv-${n}`,
        amountCents: String(n * 100),
        subject: "billing.invoice.issued",
        stream: "BILLING",
        key: `inv-${n}`,
      })),
    );
    const tail = await ok(
      jetkit,
      ["tail", "billing.>", "--all", "--count", "3", "--json", "--contracts", "billing.binpb", "-s", servers],
      project,
    );
    const tailed = tail.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { type: string; event: { invoiceId: string } });
    assert.deepEqual(
      tailed.map((d) => d.event.invoiceId),
      ["inv-1", "inv-2", "inv-3"],
      "the CLI decodes the team's events",
    );
    lap("streams apply, producer, consumer, tail");
  });
});
