import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type NatsCluster, startCluster } from "@jetkit/testing";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, headers } from "@nats-io/transport-node";

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
    // A single server keeps one copy: there is nowhere to put a second.
    const status = JSON.parse((await jetkit(["dev", "status", "--json"], env)).stdout) as {
      nodes: { url: string }[];
    };
    assert.deepEqual(await numReplicas(status.nodes.map((n) => n.url)), { ORDER: 1, PAYMENT: 1 });
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

  test("publish --atomic stores a JSON array as one batch, or nothing when one event is broken", async () => {
    const event = (sku: string) => ({
      reservationId: crypto.randomUUID(),
      checkoutId: "c0000000-0000-4000-8000-00000000c11a",
      warehouseId: "wh-1",
      lines: [{ sku, quantity: 1 }],
      expiresAt: "2030-01-01T00:00:00Z",
    });
    const ok = await jetkit(
      [
        "publish",
        "inventory.stock.reserved",
        "--atomic",
        "--data",
        JSON.stringify([event("A"), event("B")]),
        "--json",
      ],
      env,
    );
    assert.equal(ok.code, 0, ok.stderr);
    const ack = JSON.parse(ok.stdout) as { stream: string; count: number; firstSeq: number; lastSeq: number };
    assert.equal(ack.stream, "INVENTORY");
    assert.equal(ack.count, 2);
    assert.equal(ack.lastSeq, ack.firstSeq + 1);
    const bad = await jetkit(
      [
        "publish",
        "inventory.stock.reserved",
        "--atomic",
        "--data",
        JSON.stringify([event("C"), { ...event("D"), lines: [] }]),
      ],
      env,
    );
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /error\[JK_CONTRACT_VIOLATION\].*lines/);
    const notArray = await jetkit(["publish", "inventory.stock.reserved", "--atomic", "--data", "{}"], env);
    assert.equal(notArray.code, 2, notArray.stderr);
    assert.match(notArray.stderr, /JSON array/);
  });

  test("publish --ttl and --delay write the TTL and the schedule; bad values are refused before anything is sent", async () => {
    const checkout = {
      checkoutId: crypto.randomUUID(),
      customerId: crypto.randomUUID(),
      items: [
        { sku: "sku-1", quantity: 2, unitPrice: { currencyCode: "EUR", units: "12", nanos: 500000000 } },
      ],
      total: { currencyCode: "EUR", units: "25" },
      shippingAddress: { lines: ["Main St 1"], city: "Berlin", postalCode: "10115", countryCode: "DE" },
      card: { token: "tok_12345678", brand: "visa", last4: "4242" },
      channel: "SALES_CHANNEL_WEB",
      initiatedAt: "2026-01-02T03:04:05Z",
    };
    const data = JSON.stringify(checkout);
    // The contracts' streams (idempotent: the first test applied them already when run with it).
    assert.equal((await jetkit(["streams", "apply"], env)).code, 0);
    const ttl = await jetkit(
      ["publish", "customer.checkout.initiated", "--data", data, "--ttl", "2h", "--json"],
      env,
    );
    assert.equal(ttl.code, 0, ttl.stderr);
    const delayed = await jetkit(
      [
        "publish",
        "customer.checkout.initiated",
        "--data",
        data,
        "--delay",
        "30m",
        "--msg-id",
        `later-${crypto.randomUUID()}`,
        "--json",
      ],
      env,
    );
    assert.equal(delayed.code, 0, delayed.stderr);
    const status = JSON.parse((await jetkit(["dev", "status", "--json"], env)).stdout) as {
      nodes: { url: string }[];
    };
    const nc = await connect({ servers: status.nodes[0]!.url });
    try {
      const jsm = await jetstreamManager(nc);
      const t = await jsm.streams.getMessage("CUSTOMER", {
        seq: (JSON.parse(ttl.stdout) as { seq: number }).seq,
      });
      assert.equal(t?.header.get("Nats-TTL"), "7200s");
      const d = JSON.parse(delayed.stdout) as { seq: number; msgId: string };
      const s = await jsm.streams.getMessage("CUSTOMER", { seq: d.seq });
      assert.equal(
        s?.subject,
        `customer.checkout.initiated.scheduled.${d.msgId}`,
        "waits on its schedule subject",
      );
      const at = Date.parse((s?.header.get("Nats-Schedule") ?? "").replace(/^@at /, ""));
      assert.ok(
        at - Date.now() > 25 * 60_000,
        `scheduled about 30 minutes ahead: ${s?.header.get("Nats-Schedule")}`,
      );
    } finally {
      await nc.close();
    }
    // tail shows both: the TTL, and the schedule (decoded by the subject it targets) with its time
    const tailed = await jetkit(
      ["tail", "customer.checkout.initiated.>", "--all", "--count", "1", "--json"],
      env,
    );
    const scheduled = tailed.stdout
      .trim()
      .split("\n")
      .map(
        (l) => JSON.parse(l) as { subject: string; scheduledFor?: string; event?: { checkoutId?: string } },
      )
      .find((m) => m.subject.includes(".scheduled."));
    assert.ok(scheduled?.scheduledFor, tailed.stdout + tailed.stderr);
    assert.equal(scheduled.event?.checkoutId, checkout.checkoutId, "decoded by its target's contract");
    const badDuration = await jetkit(
      ["publish", "customer.checkout.initiated", "--data", data, "--ttl", "2 hours"],
      env,
    );
    assert.equal(badDuration.code, 2);
    assert.match(badDuration.stderr, /error\[JK_CLI_USAGE\]: --ttl "2 hours" is not a duration/);
    const unsupported = await jetkit(
      [
        "publish",
        "inventory.stock.depleted",
        "--data",
        '{"sku":"SKU-1","warehouseId":"wh-1","depletedAt":"2026-11-21T10:00:00Z"}',
        "--ttl",
        "1h",
      ],
      env,
    );
    assert.equal(unsupported.code, 1);
    assert.match(unsupported.stderr, /error\[JK_PRODUCER_UNSUPPORTED\].*allow_msg_ttl/);
  });

  test("tail shows a dead letter's reason as text (it is stored percent-encoded)", async () => {
    const status = JSON.parse((await jetkit(["dev", "status", "--json"], env)).stdout) as {
      nodes: { url: string }[];
    };
    // The DLQ stream (idempotent: the first test applied the streams already when run with it).
    assert.equal((await jetkit(["streams", "apply"], env)).code, 0);
    const nc = await connect({ servers: status.nodes[0]!.url });
    try {
      const h = headers();
      h.set("Jetkit-Dlq-Failure-Class", "handler_exhausted");
      h.set("Jetkit-Dlq-Reason", "smtp%20relay%20down%3A%20100%25%20busy");
      await jetstream(nc).publish("dlq.inventory.stock.depleted", new Uint8Array(), { headers: h });
    } finally {
      await nc.close();
    }
    const tail = await jetkit(["tail", "dlq.>", "--all", "--count", "1"], env);
    // The dead letter goes again (the DLQ tests below expect an empty DLQ).
    const admin = await connect({ servers: status.nodes[0]!.url });
    await (await jetstreamManager(admin)).streams.purge("DLQ", { filter: "dlq.inventory.stock.depleted" });
    await admin.close();
    assert.equal(tail.code, 0, tail.stderr);
    assert.match(tail.stdout, /\[handler_exhausted: smtp relay down: 100% busy\]/);
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

/** `num_replicas` of ORDER and PAYMENT as the server has them (absent streams are left out). */
async function numReplicas(servers: string[]): Promise<Record<string, number>> {
  const nc = await connect({ servers });
  try {
    const jsm = await jetstreamManager(nc);
    const out: Record<string, number> = {};
    for (const name of ["ORDER", "PAYMENT"]) {
      const info = await jsm.streams.info(name).catch(() => undefined);
      if (info) out[name] = info.config.num_replicas;
    }
    return out;
  } finally {
    await nc.close();
  }
}

describe("jetkit streams apply on a 3-node cluster", () => {
  let cluster: NatsCluster;
  const home = mkdtempSync(join(tmpdir(), "jetkit-cli-cluster-"));
  const env = { JETKIT_HOME: home };
  const streams = (command: "plan" | "apply", ...extra: string[]) =>
    jetkit(["streams", command, "-s", cluster.urls.join(","), ...extra], env);

  before(async () => {
    cluster = await startCluster({ size: 3 });
  });
  after(async () => {
    await cluster?.dispose();
    rmSync(home, { recursive: true, force: true });
  });

  test("--replicas 5 is refused with a code before anything is created", async () => {
    const r = await streams("apply", "--only", "ORDER,PAYMENT", "--replicas", "5");
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /error\[JK_STREAMS_REPLICAS_EXCEED_CLUSTER\]: ORDER asks for 5 replicas/);
    assert.match(r.stderr, /at most 3 \(--replicas 3/);
    assert.deepEqual(await numReplicas(cluster.urls), {});
  });

  test("by default the cluster's size decides, and the plan says so", async () => {
    const r = await streams("apply", "--only", "ORDER");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^cluster "jetkit": 3 JetStream server\(s\) \(n1, n2, n3\)$/m);
    assert.match(r.stdout, /^\+ ORDER create \(subjects \[order\.>\], file, R3 \(cluster of 3 nodes\)\)$/m);
    assert.deepEqual(await numReplicas(cluster.urls), { ORDER: 3 });
  });

  test("--replicas 1 gives an R1 stream; without it the next apply scales it to R3 in place", async () => {
    const r1 = await streams("apply", "--only", "PAYMENT", "--replicas", "1");
    assert.equal(r1.code, 0, r1.stderr);
    assert.deepEqual(await numReplicas(cluster.urls), { ORDER: 3, PAYMENT: 1 });

    const plan = await streams("plan", "--only", "ORDER,PAYMENT");
    assert.equal(plan.code, 0, plan.stderr);
    assert.match(plan.stdout, /^= ORDER unchanged$/m);
    assert.match(plan.stdout, /^~ PAYMENT update \(num_replicas: 1 -> 3 \(cluster of 3 nodes\)\)$/m);
    const r = await streams("apply", "--only", "ORDER,PAYMENT");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /applied 1 change\(s\)/);
    assert.deepEqual(await numReplicas(cluster.urls), { ORDER: 3, PAYMENT: 3 });
  });
});

describe("jetkit CLI without a server", () => {
  test("output into a pipe whose reader is gone (jetkit events | head) ends quietly with exit 0", async () => {
    const child = spawn(process.execPath, [main, "events"], {
      cwd: repo,
      env: { ...process.env, NO_COLOR: "1" },
    });
    child.stdout.destroy(); // the reader is gone before the first line is written: that write fails with EPIPE
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    assert.equal(code, 0, stderr);
    assert.doesNotMatch(stderr, /EPIPE|Unhandled/);
  });

  test("--version prints the version of @jetkit/cli, plain or as JSON", async () => {
    const pkg = JSON.parse(readFileSync(join(repo, "cli/package.json"), "utf8")) as { version: string };
    const r = await jetkit(["--version"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${pkg.version}\n`);
    const j = await jetkit(["--version", "--json"]);
    assert.deepEqual(JSON.parse(j.stdout), { name: "@jetkit/cli", version: pkg.version });
    const help = await jetkit(["--help"]);
    assert.match(help.stdout, /'jetkit --version'/);
  });

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

  test("policy nats-config maps a DN given to --principal as one user, and --durable grants a durable", async () => {
    const dir = mkdtempSync(join(tmpdir(), "jetkit-natscfg-"));
    const file = join(dir, "policy.yaml");
    writeFileSync(
      file,
      'version: 1\nroles:\n  reader:\n    subscribe: [order.>]\nbindings:\n  - principal: "CN=*,OU=ops,O=X"\n    roles: [reader]\n',
    );
    const r = await jetkit([
      "policy",
      "nats-config",
      file,
      "--principal",
      "CN=omar,OU=ops,O=X",
      "--durable",
      "CN=omar,OU=ops,O=X=omar-orders",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const users = [...r.stdout.matchAll(/\{ user: ("(?:[^"\\]|\\.)*")/g)].map((m) => JSON.parse(m[1]!));
    assert.deepEqual(users, ["CN=omar,OU=ops,O=X"]);
    assert.match(r.stdout, /"\$JS\.API\.CONSUMER\.CREATE\.ORDER\.omar-orders\.order\.>"/);
    assert.match(r.stdout, /"\$JS\.ACK\.ORDER\.omar-orders\.>"/);
    rmSync(dir, { recursive: true, force: true });
  });

  test("contracts check passes on this repository", async () => {
    const r = await jetkit(["contracts", "check", "--json"]);
    const report = JSON.parse(r.stdout) as { ok: boolean; problems: unknown[] };
    assert.deepEqual(report.problems, []);
    assert.equal(r.code, 0);
  });
});
