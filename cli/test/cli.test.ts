import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

const main = new URL("../src/main.js", import.meta.url).pathname;
const repo = new URL("../../../", import.meta.url).pathname;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `jetkit <args>` as a user would: a separate process, real server, exit code and output. */
function jetkit(args: string[], env: Record<string, string> = {}, input?: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [main, ...args], {
      cwd: repo,
      env: { ...process.env, NO_COLOR: "1", ...env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}

describe("jetkit CLI against a local dev server", () => {
  const home = mkdtempSync(join(tmpdir(), "jetkit-cli-"));
  const env = { JETKIT_HOME: home };

  before(async () => {
    const up = await jetkit(["dev", "up", "--json"], env);
    assert.equal(up.code, 0, up.stderr);
  });
  after(async () => {
    await jetkit(["dev", "down"], env);
    rmSync(home, { recursive: true, force: true });
  });

  test("dev status reports a healthy node, for scripts", async () => {
    const r = await jetkit(["dev", "status", "--json"], env);
    assert.equal(r.code, 0, r.stderr);
    const status = JSON.parse(r.stdout) as { mode: string; nodes: { healthy: boolean; url: string }[] };
    assert.equal(status.mode, "single");
    assert.ok(status.nodes[0]?.healthy && status.nodes[0].url.startsWith("nats://127.0.0.1:"));
  });

  test("streams apply creates the contracts' streams; a second apply changes nothing", async () => {
    const first = await jetkit(["streams", "apply", "--json"], env);
    assert.equal(first.code, 0, first.stderr);
    assert.ok((JSON.parse(first.stdout) as { applied: unknown[] }).applied.length >= 6);
    const second = await jetkit(["streams", "apply"], env);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /nothing to change/);
    assert.match(second.stdout, /= ORDER unchanged/);
  });

  test("publish validates by contract: a good event is stored once, a bad one names the field and stores nothing", async () => {
    const event = JSON.stringify({ sku: "SKU-CLI", warehouseId: "wh-1", depletedAt: "2026-11-21T10:00:00Z" });
    const ok = await jetkit(
      ["publish", "inventory.stock.depleted", "--data", event, "--msg-id", "cli-1", "--json"],
      env,
    );
    assert.equal(ok.code, 0, ok.stderr);
    const ack = JSON.parse(ok.stdout) as { stream: string; seq: number; duplicate: boolean };
    assert.equal(ack.stream, "INVENTORY");
    assert.equal(ack.duplicate, false);
    const again = await jetkit(
      ["publish", "inventory.stock.depleted", "--data", "-", "--msg-id", "cli-1", "--json"],
      env,
      event,
    );
    assert.equal((JSON.parse(again.stdout) as { duplicate: boolean }).duplicate, true);
    const bad = await jetkit(
      ["publish", "inventory.stock.depleted", "--data", JSON.stringify({ sku: "", warehouseId: "wh-1" })],
      env,
    );
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /error\[JK_CONTRACT_VIOLATION\].*sku.*string\.min_len/);
    const unknown = await jetkit(["publish", "inventory.stock.gone", "--data", "{}"], env);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /JK_CONTRACT_UNKNOWN_SUBJECT.*inventory\.stock\.depleted/);
    const tail = await jetkit(["tail", "inventory.>", "--all", "--count", "1", "--json"], env);
    assert.equal(tail.code, 0, tail.stderr);
    const lines = tail.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { event: { sku: string }; id: string });
    assert.deepEqual(
      lines.map((l) => l.event.sku),
      ["SKU-CLI"],
    );
  });

  test("dlq purge refuses without confirmation; usage errors exit 2 with a hint", async () => {
    const purge = await jetkit(["dlq", "purge"], env);
    assert.equal(purge.code, 1);
    assert.match(purge.stderr, /JK_DLQ_CONFIRM/);
    const list = await jetkit(["dlq", "list", "--json"], env);
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(JSON.parse(list.stdout), []);
    const usage = await jetkit(["tail"], env);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /missing <pattern>/);
    const unknownFlag = await jetkit(["streams", "plan", "--nope"], env);
    assert.equal(unknownFlag.code, 2);
  });

  test("config comes from flags, then env, then the config file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "jetkit-cfg-"));
    const cfg = join(dir, "jetkit.yaml");
    writeFileSync(cfg, "servers: nats://127.0.0.1:1\n");
    const fromFile = await jetkit(["streams", "plan", "--config", cfg], env);
    assert.equal(fromFile.code, 3, "the config file's (dead) server is used");
    assert.match(fromFile.stderr, /JK_CLI_NATS_UNAVAILABLE.*127\.0\.0\.1:1/);
    const status = JSON.parse((await jetkit(["dev", "status", "--json"], env)).stdout) as {
      nodes: { url: string }[];
    };
    const envWins = await jetkit(["streams", "plan", "--config", cfg], {
      ...env,
      JETKIT_SERVERS: status.nodes[0]!.url,
    });
    assert.equal(envWins.code, 0, envWins.stderr);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe("jetkit CLI without a server", () => {
  test("--help lists every command; each command's help has examples", async () => {
    const r = await jetkit(["--help"]);
    assert.equal(r.code, 0);
    for (const c of [
      "demo",
      "dev up",
      "streams apply",
      "publish",
      "tail",
      "dlq replay",
      "gateway start",
      "pki issue",
      "policy check",
      "drill run",
      "contracts check",
    ]) {
      assert.match(r.stdout, new RegExp(`\\n  ${c} `), c);
    }
    const h = await jetkit(["drill", "run", "--help"]);
    assert.match(h.stdout, /Examples:\n {2}\$ jetkit drill run/);
  });

  test("policy check explains the deciding rule; drill validate names bad fields", async () => {
    const dir = mkdtempSync(join(tmpdir(), "jetkit-pol-"));
    const file = join(dir, "policy.yaml");
    writeFileSync(
      file,
      "version: 1\nroles:\n  writer:\n    publish: [order.fulfillment.*]\nbindings:\n  - principal: spiffe://jetkit.dev/fulfillment\n    roles: [writer]\n",
    );
    const allow = await jetkit([
      "policy",
      "check",
      file,
      "--explain",
      "spiffe://jetkit.dev/fulfillment,publish,order.fulfillment.completed",
    ]);
    assert.equal(allow.code, 0, allow.stderr);
    assert.match(allow.stdout, /ALLOW.*\n\s+rule:\s+role writer publish\[0\]/);
    const deny = await jetkit([
      "policy",
      "check",
      file,
      "--explain",
      "spiffe://jetkit.dev/fulfillment,publish,order.lifecycle.cancelled",
    ]);
    assert.equal(deny.code, 1);
    assert.match(deny.stdout, /DENY[\s\S]*default-deny/);
    const badDrill = join(dir, "bad.yaml");
    writeFileSync(badDrill, "name: bad\nfaults:\n  - at: soon\n    action: explode\n");
    const v = await jetkit(["drill", "validate", badDrill]);
    assert.equal(v.code, 1);
    assert.match(v.stdout, /faults\[0\]/);
    const shipped = await jetkit(["drill", "validate", "leader-kill"]);
    assert.equal(shipped.code, 0, shipped.stdout + shipped.stderr);
    rmSync(dir, { recursive: true, force: true });
  });

  test("contracts check passes on this repository", async () => {
    const r = await jetkit(["contracts", "check", "--json"]);
    const report = JSON.parse(r.stdout) as { ok: boolean; problems: unknown[] };
    assert.deepEqual(report.problems, []);
    assert.equal(r.code, 0);
  });
});
