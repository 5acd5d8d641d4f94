import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema, file_google_protobuf_timestamp } from "@bufbuild/protobuf/wkt";
import { createConsumer, type RegisteredEvent } from "@jetkit/consumers";
import { findJetkitError, loadCatalog, readEvent } from "@jetkit/contracts";
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { createProducer } from "@jetkit/producers";
import { freePort, type NatsCluster, startCluster, startServer } from "@jetkit/testing";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { pino } from "pino";
import { runCli } from "../src/cli.js";
import { commands } from "../src/commands/index.js";
import {
  RegistryErrorCodes,
  RegistryResolver,
  RegistryStore,
  readImage,
  type VersionRecord,
  versionOfImage,
} from "../src/registry/index.js";
import { buf, repo } from "./contracts-check-fixture.js";

const ORDER = "shop/order/v1/events.proto";

/** Runs `jetkit <args>` in this process (the CLI's own entry point), with its output and exit code. */
async function jetkit(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const sink = (add: (s: string) => void) =>
    new Writable({
      write(chunk, _enc, done) {
        add(String(chunk));
        done();
      },
    });
  const code = await runCli(commands, args, {
    stdout: sink((s) => {
      stdout += s;
    }),
    stderr: sink((s) => {
      stderr += s;
    }),
  });
  return { code, stdout, stderr };
}

/** Builds an image of this repository's contracts after applying `edits` (pattern -> replacement) to the order events. */
function image(name: string, edits: [RegExp, string][] = []): string {
  const dir = mkdtempSync(join(tmpdir(), "jetkit-registry-image-"));
  try {
    cpSync(join(repo, "buf.yaml"), join(dir, "buf.yaml"));
    cpSync(join(repo, "contracts/proto"), join(dir, "contracts/proto"), { recursive: true });
    cpSync(join(repo, "contracts/deps"), join(dir, "contracts/deps"), { recursive: true });
    const file = join(dir, "contracts/proto", ORDER);
    let text = readFileSync(file, "utf8");
    for (const [pattern, replacement] of edits) {
      assert.match(text, pattern, `${ORDER} no longer contains ${pattern}: update the test`);
      text = text.replace(pattern, replacement);
    }
    writeFileSync(file, text);
    const out = join(images, `${name}.binpb`);
    execFileSync(
      buf,
      ["build", "contracts/proto", "--exclude-imports", "--as-file-descriptor-set", "-o", out],
      {
        cwd: dir,
      },
    );
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const images = mkdtempSync(join(tmpdir(), "jetkit-registry-images-"));
after(() => rmSync(images, { recursive: true, force: true }));
const STARTED_FIELDS =
  /google\.protobuf\.Timestamp started_at = 5 \[\(buf\.validate\.field\)\.required = true\];/;
const withField = (n: number, name: string): [RegExp, string] => [
  STARTED_FIELDS,
  `google.protobuf.Timestamp started_at = 5 [(buf.validate.field).required = true];\n${Array.from({ length: n }, (_, i) => `  string ${name}${i} = ${6 + i};`).join("\n")}`,
];
const TIGHTER: [RegExp, string] = [
  /string warehouse_id = 3 \[\(buf\.validate\.field\)\.string\.min_len = 1\];/,
  "string warehouse_id = 3 [(buf.validate.field).string.min_len = 3];",
];
const PAUSED = "shop.order.v1.OrderFulfillmentPaused";
const COMPLETED = "shop.order.v1.OrderFulfillmentCompleted";
/** A field and an event that the packaged contracts (the consumers' build) do not have. */
const NEWER: [RegExp, string][] = [
  [
    /google\.protobuf\.Timestamp completed_at = 5 \[\(buf\.validate\.field\)\.required = true\];/,
    "google.protobuf.Timestamp completed_at = 5 [(buf.validate.field).required = true];\n  string gift_note = 6;",
  ],
  [
    /\/\/ Every parcel of an order was handed to a carrier\./,
    '// Fulfilment of an order was paused.\nmessage OrderFulfillmentPaused {\n  option (jetkit.v1.event) = {\n    subject: "order.fulfillment.paused"\n    partition_key: "order_id"\n  };\n\n  string order_id = 1 [(buf.validate.field).string.uuid = true];\n  string reason = 2;\n}\n\n// Every parcel of an order was handed to a carrier.',
  ],
];
const silent = pino({ level: "silent" });
const NEW_KEY: [RegExp, string] = [
  /subject: "order.fulfillment.started"\n {4}partition_key: "order_id"/,
  'subject: "order.fulfillment.started"\n    partition_key: "checkout_id"',
];

describe("contract registry on a 3-node cluster (real nats-server, real buf)", () => {
  let cluster: NatsCluster;
  let servers: string;
  const v1 = () => image("v1");
  let base: string;

  before(async () => {
    cluster = await startCluster({ size: 3 });
    servers = cluster.urls.join(",");
    base = v1();
  });
  after(async () => {
    await cluster?.dispose();
  });

  const push = (file: string, ...more: string[]) =>
    jetkit([
      "contracts",
      "push",
      "--contracts",
      file,
      "-s",
      servers,
      "--who",
      "test",
      "-m",
      file.split("/").pop() ?? "",
      ...more,
    ]);
  const versions = async (): Promise<VersionRecord[]> =>
    (
      JSON.parse((await jetkit(["contracts", "list", "--json", "-s", servers])).stdout) as {
        versions: VersionRecord[];
      }
    ).versions;

  test("a push stores the image under its SHA-256 in R3 buckets; the same image again is no new version", async () => {
    const first = await push(base);
    assert.equal(first.code, 0, first.stderr + first.stdout);
    assert.match(first.stdout, /stored: version 1/);
    const digest = readImage(readFileSync(base), base).digest;
    assert.match(digest, /^sha256-[0-9a-f]{64}$/);
    const nc = await connect({ servers: cluster.urls });
    try {
      const jsm = await jetstreamManager(nc);
      assert.equal((await jsm.streams.info("KV_JETKIT_REGISTRY")).config.num_replicas, 3);
      assert.equal((await jsm.streams.info("OBJ_JETKIT_CONTRACTS")).config.num_replicas, 3);
      const store = await RegistryStore.open(nc);
      const [record] = await store.versions();
      assert.ok(record);
      assert.equal(record.digest, digest);
      assert.deepEqual(
        Buffer.from(await store.image(record)),
        readFileSync(base),
        "the stored bytes are the pushed bytes",
      );
    } finally {
      await nc.close();
    }
    const again = await push(base);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /unchanged: version 1 already is this image/);
    assert.equal((await versions()).length, 1);
  });

  test("a compatible change is version 2; a breaking one is refused against every version with file, rule and fix, nothing stored", async () => {
    const r = await push(image("v2", [withField(1, "note")]));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /checked against 1 registered version\(s\)[\s\S]*stored: version 2/);

    const refused = await push(image("key", [withField(1, "note"), NEW_KEY]));
    assert.equal(refused.code, 1, refused.stdout);
    for (const v of [1, 2]) assert.match(refused.stdout, new RegExp(`against v${v} \\(backward\\):`));
    assert.match(
      refused.stdout,
      /shop\/order\/v1\/events\.proto:\d+: \[EVENT_PARTITION_KEY_CHANGED\] event shop\.order\.v1\.OrderFulfillmentStarted is now ordered by "checkout_id"/,
    );
    assert.match(refused.stdout, /\n {4}fix: keep partition_key: "order_id"/);
    assert.match(refused.stdout, /refused \[JK_REGISTRY_REFUSED\]: 2 problem\(s\); nothing was stored/);
    assert.equal((await versions()).length, 2, "the refused push stored no version");

    const json = await push(join(images, "key.binpb"), "--json");
    const body = JSON.parse(json.stdout) as {
      status: string;
      code: string;
      check: { problems: { rule: string; against: number }[] };
    };
    assert.equal(body.status, "refused");
    assert.equal(body.code, "JK_REGISTRY_REFUSED");
    assert.deepEqual(
      body.check.problems.map((p) => [p.rule, p.against]),
      [
        ["EVENT_PARTITION_KEY_CHANGED", 1],
        ["EVENT_PARTITION_KEY_CHANGED", 2],
      ],
    );
  });

  test("transitive: a change pushed under mode none is refused later against the versions before it, not only the latest", async () => {
    const dev = await push(image("v3", [withField(1, "note"), TIGHTER]), "--mode", "ORDER=none");
    assert.equal(dev.code, 0, dev.stdout + dev.stderr);
    assert.match(dev.stdout, /\[FIELD_RULE_TIGHTENED\] not checked \(mode none\) against v1/);
    assert.match(dev.stdout, /stored: version 3/);

    // Back to backward: compatible with v3, its direct predecessor, but not with v1 and v2.
    const back = await push(
      image("v4", [withField(2, "note"), TIGHTER]),
      "--mode",
      "ORDER=default",
      "--json",
    );
    assert.equal(back.code, 1, back.stdout);
    const body = JSON.parse(back.stdout) as { check: { problems: { rule: string; against: number }[] } };
    assert.deepEqual(
      body.check.problems.map((p) => [p.rule, p.against]),
      [
        ["FIELD_RULE_TIGHTENED", 1],
        ["FIELD_RULE_TIGHTENED", 2],
      ],
    );

    const allowed = await push(
      join(images, "v4.binpb"),
      "--mode",
      "ORDER=default",
      "--allow",
      "FIELD_RULE_TIGHTENED",
      "--reason",
      "every stored warehouse id has 3 or more characters",
    );
    assert.equal(allowed.code, 0, allowed.stdout + allowed.stderr);
    assert.match(allowed.stdout, /stored: version 4/);
    const [v4] = (await versions()).filter((v) => v.version === 4);
    assert.deepEqual(
      v4?.allowed.map((a) => [a.rule, a.against, a.reason]),
      [
        ["FIELD_RULE_TIGHTENED", 1, "every stored warehouse id has 3 or more characters"],
        ["FIELD_RULE_TIGHTENED", 2, "every stored warehouse id has 3 or more characters"],
      ],
    );
    assert.deepEqual(v4?.modes, { default: "backward", streams: {}, packages: {} });

    // The next push meets the same tightening against v1 and v2: v4's reviewed allowance covers it.
    const next = await push(image("v5", [withField(3, "note"), TIGHTER]));
    assert.equal(next.code, 0, next.stdout + next.stderr);
    assert.match(next.stdout, /ALLOWED against v1 \(backward\)[\s\S]*\(allowed when v4 was pushed\)/);
    assert.match(next.stdout, /stored: version 5/);
  });

  test("full mode checks old readers too: loosening a rule (fine backward) is refused for ORDER=full, the mode left as it was", async () => {
    const looser = image("loose", [
      withField(3, "note"),
      [TIGHTER[0], "string warehouse_id = 3 [(buf.validate.field).string.min_len = 1];"],
    ]);
    const full = await push(looser, "--mode", "ORDER=full");
    assert.equal(full.code, 1, full.stdout);
    assert.match(
      full.stdout,
      /against v5 \(forward\):\n[^\n]*\[FIELD_RULE_TIGHTENED\] readers built with v5/,
    );
    assert.equal((await versions()).length, 5);
    const show = await jetkit(["contracts", "show", "5", "-s", servers]);
    assert.match(show.stdout, /modes {4}backward\n/, "a refused push changed no mode");
  });

  test("diff and log: what changed, compatible or not with the rule names, overrides with their reasons", async () => {
    const d = await jetkit(["contracts", "diff", "1", "4", "-s", servers]);
    assert.equal(d.code, 0, d.stderr);
    assert.match(
      d.stdout,
      /event shop\.order\.v1\.OrderFulfillmentStarted: field note0 = 6 \(string\) added/,
    );
    assert.match(d.stdout, /incompatible: FIELD_RULE_TIGHTENED/);
    const same = JSON.parse(
      (await jetkit(["contracts", "diff", "1", "2", "--json", "-s", servers])).stdout,
    ) as {
      compatible: boolean;
      rules: string[];
      changes: { kind: string }[];
    };
    assert.deepEqual(
      [same.compatible, same.rules, same.changes.map((c) => c.kind)],
      [true, [], ["field-added"]],
    );

    const log = await jetkit(["contracts", "log", "-s", servers]);
    assert.equal(log.code, 0, log.stderr);
    const entry = (v: number) => log.stdout.split(/^## /m).find((s) => s.startsWith(`v${v} `)) ?? "";
    assert.match(entry(1), /First version: \d+ event\(s\) on \d+ stream\(s\)/);
    assert.match(entry(2), /field note0 = 6 \(string\) added[\s\S]*Compatible with every earlier version/);
    assert.match(
      entry(3),
      /Incompatible with v2: FIELD_RULE_TIGHTENED; accepted because:\n- not checked \(mode none\)/,
    );
    assert.match(
      entry(4),
      /allowed by review: \[FIELD_RULE_TIGHTENED\][^\n]*reason: every stored warehouse id has 3 or more characters/,
    );
    assert.ok(log.stdout.indexOf("## v5") < log.stdout.indexOf("## v1"), "newest first");
    const logJson = JSON.parse((await jetkit(["contracts", "log", "--json", "-s", servers])).stdout) as {
      versions: { version: number; compatibleWithPrevious?: boolean }[];
    };
    assert.deepEqual(
      logJson.versions.map((v) => v.compatibleWithPrevious),
      [undefined, true, false, true, true],
    );
  });

  test("two pushes racing for the same version: one is stored, the other gets JK_REGISTRY_PUSH_RACED, nothing overwritten", async () => {
    const a = readImage(readFileSync(image("race-a", [withField(4, "note"), TIGHTER])), "a");
    // Same contracts, other bytes (a comment): whichever wins, later pushes stay compatible with it.
    const b = readImage(
      readFileSync(
        image("race-b", [
          withField(4, "note"),
          TIGHTER,
          [/^\/\/ Order domain/m, "// Racer b.\n// Order domain"],
        ]),
      ),
      "b",
    );
    const [ca, cb] = await Promise.all([
      connect({ servers: cluster.urls }),
      connect({ servers: cluster.urls }),
    ]);
    try {
      const [sa, sb] = await Promise.all([
        RegistryStore.open(ca, { create: true }),
        RegistryStore.open(cb, { create: true }),
      ]);
      // Both read the same history before either stores: the window a real race has.
      const [ha, hb] = await Promise.all([sa.versions(), sb.versions()]);
      assert.equal(ha.length, hb.length);
      const record = (img: typeof a): VersionRecord => ({
        version: ha.length + 1,
        digest: img.digest,
        size: img.bytes.length,
        who: "racer",
        when: new Date().toISOString(),
        message: img.digest,
        modes: { default: "backward", streams: {}, packages: {} },
        allowed: [],
        waived: [],
        events: [],
        streams: [],
      });
      const results = await Promise.allSettled([sa.store(record(a), a.bytes), sb.store(record(b), b.bytes)]);
      const lost = results.filter((r) => r.status === "rejected");
      assert.equal(lost.length, 1, "exactly one push lost");
      assert.equal(
        findJetkitError((lost[0] as PromiseRejectedResult).reason)?.code,
        RegistryErrorCodes.PUSH_RACED,
      );
      assert.match(String((lost[0] as PromiseRejectedResult).reason), /Re-run 'jetkit contracts push'/);
      const winner = results[0]?.status === "fulfilled" ? a : b;
      const after = await sa.versions();
      assert.equal(after.length, ha.length + 1);
      assert.equal(after.at(-1)?.digest, winner.digest, "the winner's version is the one stored");
    } finally {
      await Promise.all([ca.close(), cb.close()]);
    }
  });

  test("bad input: a foreign image, an image without events, an unknown version, an unreachable registry; nothing stored", async () => {
    const before = (await versions()).length;
    const junk = join(images, "junk.binpb");
    writeFileSync(junk, Buffer.from("this is not protobuf \u00ff\u00ff\u00ff"));
    const r1 = await push(junk);
    assert.equal(r1.code, 1);
    assert.match(
      r1.stderr,
      /error\[JK_REGISTRY_IMAGE_INVALID\]: .* is not a jetkit contracts image .*buf build/,
    );
    const foreign = join(images, "foreign.binpb");
    writeFileSync(
      foreign,
      toBinary(
        FileDescriptorSetSchema,
        create(FileDescriptorSetSchema, { file: [file_google_protobuf_timestamp.proto] }),
      ),
    );
    const r2 = await push(foreign);
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /error\[JK_REGISTRY_IMAGE_INVALID\]/);
    const r3 = await jetkit(["contracts", "show", "99", "-s", servers]);
    assert.equal(r3.code, 1);
    assert.match(
      r3.stderr,
      /error\[JK_REGISTRY_VERSION_UNKNOWN\]: the registry holds no version 99: versions are 1 to \d+/,
    );
    const r4 = await push(base, "-s", `nats://127.0.0.1:${await freePort()}`);
    assert.equal(r4.code, 3);
    assert.match(r4.stderr, /error\[JK_REGISTRY_UNREACHABLE\]: cannot reach the contract registry/);
    assert.equal((await versions()).length, before);
  });

  test("a producer stamps the version it encodes with; a reader resolves it from the registry, one fetch per version", async () => {
    const nc = await connect({ servers: cluster.urls });
    const producer = await createProducer({
      servers: cluster.urls,
      name: "stamper",
      logger: pino({ level: "silent" }),
      catalog: loadCatalog(base),
      registryVersion: await versionOfImage(nc, readFileSync(base)),
    });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: "ORDER", subjects: ["order.>"], num_replicas: 1 });
      const event = {
        orderId: "0193a0c4-7c4e-7b1a-9a57-0c1d2e3f4a5b",
        checkoutId: "0193a0c4-7c4e-7b1a-9a57-0c1d2e3f4a5c",
        shipments: [{ shipmentId: "s1", carrier: 1, trackingNumber: "T1", skus: ["SKU-1"] }],
        completedAt: new Date("2026-12-04T10:00:00Z"),
      };
      const acks = [
        await producer.publish(OrderFulfillmentCompleted, event),
        await producer.publish(OrderFulfillmentCompleted, event),
      ];
      const resolver = new RegistryResolver(nc);
      for (const ack of acks) {
        const m = await jsm.streams.getMessage("ORDER", { seq: ack.seq });
        const read = readEvent(
          [...(m?.header ?? [])].map(([k, v]) => [k, v[0] ?? ""] as const),
          m?.data ?? new Uint8Array(),
        );
        assert.equal(read.headers.dataschema, "jetkit:registry/1#shop.order.v1.OrderFulfillmentCompleted");
        const found = await resolver.resolve(read.headers.dataschema ?? "");
        assert.ok(found);
        assert.equal(found.version, 1);
        const decoded = found.catalog.decode(found.spec, read.data) as unknown as { orderId: string };
        assert.equal(decoded.orderId, event.orderId);
      }
      assert.equal(resolver.fetched, 1, "one fetch for the version, not one per message");
      await assert.rejects(
        resolver.resolve("jetkit:registry/999#shop.order.v1.OrderFulfillmentCompleted"),
        (err: unknown) => {
          const e = findJetkitError(err);
          return e?.code === RegistryErrorCodes.VERSION_UNKNOWN && /holds no version 999/.test(e.message);
        },
      );
      await assert.rejects(
        resolver.resolve("jetkit:registry/1#shop.order.v1.Nope"),
        /declares no event shop\.order\.v1\.Nope/,
      );
      assert.equal(
        await resolver.resolve("https://schemas.example.com/order.json"),
        undefined,
        "another registry's URI is not ours",
      );
      await assert.rejects(versionOfImage(nc, Buffer.from("never pushed")), /are not registered/);
    } finally {
      await producer.close();
      await nc.close();
    }
  });

  test("a consumer built before a field and an event existed: the new field is skipped, the new event decoded from the registry, one fetch", {
    timeout: 60_000,
  }, async () => {
    const newer = image("newer", [withField(5, "note"), TIGHTER, ...NEWER]);
    const pushed = await push(newer, "--json");
    assert.equal(pushed.code, 0, pushed.stdout + pushed.stderr);
    const version = (JSON.parse(pushed.stdout) as { version: number }).version;
    const nc = await connect({ servers: cluster.urls });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "DLQ", subjects: ["dlq.>"], num_replicas: 1 });
    const catalog = loadCatalog(newer);
    const producer = await createProducer({
      servers: cluster.urls,
      name: "newer",
      logger: silent,
      catalog,
      registryVersion: version,
    });
    const liar = await createProducer({
      servers: cluster.urls,
      name: "liar",
      logger: silent,
      catalog,
      registryVersion: 999,
    });
    const resolver = new RegistryResolver(nc);
    const old = await createConsumer({
      servers: cluster.urls,
      durable: "built-before",
      subjects: ["order.fulfillment.>"],
      catalog: loadCatalog(base),
      registry: resolver,
      logger: silent,
      ackWaitMs: 5000,
      // The stream already holds the events of the test above: only what is published now.
      deliverPolicy: "new",
    });
    const paused: RegisteredEvent[] = [];
    const completed: string[] = [];
    let done: () => void = () => {};
    const all = new Promise<void>((r) => {
      done = r;
    });
    const check = () => paused.length === 3 && completed.length === 1 && done();
    old.on(OrderFulfillmentCompleted, (e) => {
      completed.push(e.orderId);
      check();
    });
    old.onRegistered((e) => {
      paused.push(e);
      check();
    });
    await old.start();
    try {
      const spec = (type: string) => catalog.byType(type);
      const encode = (type: string, value: Record<string, unknown>) =>
        toBinary(spec(type).schema, create(spec(type).schema, value));
      const orderId = "0193a0c4-7c4e-7b1a-9a57-0c1d2e3f4a5b";
      for (const reason of ["carrier strike", "address check", "stock recount"])
        await producer.publishEncoded({ type: PAUSED, payload: encode(PAUSED, { orderId, reason }) });
      await producer.publishEncoded({
        type: COMPLETED,
        payload: encode(COMPLETED, {
          orderId,
          checkoutId: orderId,
          shipments: [{ shipmentId: "s1", carrier: 1, trackingNumber: "T1", skus: ["SKU-1"] }],
          completedAt: { seconds: 1_765_000_000n },
          giftNote: "happy birthday",
        }),
      });
      await all;
      assert.deepEqual(
        paused.map((e) => [e.type, e.version, (e.message as unknown as { reason: string }).reason]),
        [
          [PAUSED, version, "carrier strike"],
          [PAUSED, version, "address check"],
          [PAUSED, version, "stock recount"],
        ],
      );
      assert.equal(resolver.fetched, 1, "one registry fetch for three events of the version");
      assert.deepEqual(completed, [orderId], "the known type with a new field is handled by its own handler");

      // A ce-dataschema naming a version the registry does not hold: dead-lettered, with the registry's reason.
      const sub = nc.subscribe("dlq.order.fulfillment.paused", { max: 1 });
      await nc.flush();
      await liar.publishEncoded({ type: PAUSED, payload: encode(PAUSED, { orderId, reason: "lie" }) });
      let dead: { get(k: string): string } | undefined;
      for await (const m of sub) dead = m.headers;
      assert.ok(dead);
      assert.equal(dead.get("Jetkit-Dlq-Failure-Class"), "unknown_type");
      assert.match(decodeURIComponent(dead.get("Jetkit-Dlq-Reason")), /holds no version 999/);
      assert.equal(paused.length, 3);

      // The CLI, built with the packaged contracts (no PAUSED), reads the events the same way:
      // tail decodes them by their registry version, dlq show says why the liar's cannot be.
      const tailed = await jetkit([
        "tail",
        "order.fulfillment.paused",
        "--all",
        "--count",
        "1",
        "--json",
        "-s",
        servers,
      ]);
      const first = JSON.parse(tailed.stdout.trim().split("\n")[0]!) as {
        registryVersion?: number;
        event?: { reason?: string };
      };
      assert.equal(first.registryVersion, version, tailed.stdout + tailed.stderr);
      assert.equal(first.event?.reason, "carrier strike");
      const dlqs = JSON.parse((await jetkit(["dlq", "list", "--json", "-s", servers])).stdout) as {
        seq: number;
        originalSubject: string;
      }[];
      const lie = dlqs.find((d) => d.originalSubject === "order.fulfillment.paused");
      assert.ok(lie, JSON.stringify(dlqs));
      const shown = JSON.parse((await jetkit(["dlq", "show", String(lie.seq), "-s", servers])).stdout) as {
        event?: unknown;
        decodeError?: string;
      };
      assert.equal(shown.event, undefined);
      assert.match(shown.decodeError ?? "", /registry: .*holds no version 999/);
    } finally {
      await old.stop();
      await Promise.all([producer.close(), liar.close()]);
      await nc.close();
    }
  });

  test("without --contracts the image is built from the workspace's contracts module with buf", async () => {
    // The repository's own contracts are v1's image byte for byte; they lack fields added since.
    const r = await jetkit(["contracts", "push", "-s", servers, "--json"]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const body = JSON.parse(r.stdout) as {
      digest: string;
      status: string;
      check: { problems: { rule: string }[] };
    };
    assert.equal(body.digest, readImage(readFileSync(base), base).digest);
    assert.equal(body.status, "refused");
    assert.ok(body.check.problems.some((p) => p.rule === "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED"));
  });

  test("node loss: with the registry's leader killed, list and show still answer and a push is stored on 2 of 3 nodes", async () => {
    const leader = await cluster.streamLeader("KV_JETKIT_REGISTRY");
    assert.ok(leader);
    const count = (await versions()).length;
    await cluster.node(leader).kill();
    const list = await jetkit(["contracts", "list", "-s", servers]);
    assert.equal(list.code, 0, list.stderr);
    assert.equal(list.stdout.trim().split("\n").length, count);
    const show = await jetkit(["contracts", "show", "1", "-s", servers]);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /shop\.order\.v1\.OrderFulfillmentStarted {2}order\.fulfillment\.started/);
    const r = await push(image("after-loss", [withField(6, "note"), TIGHTER, ...NEWER]));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`stored: version ${count + 1}`));
  });
});

describe("contract registry on a single server", () => {
  test("the buckets get 1 replica; list says the registry is empty before the first push", async () => {
    const server = await startServer();
    try {
      const empty = await jetkit(["contracts", "list", "-s", server.url]);
      assert.equal(empty.code, 0, empty.stderr);
      assert.match(empty.stdout, /the registry is empty: push the contracts with 'jetkit contracts push'/);
      const file = join(images, "single.binpb");
      writeFileSync(file, readFileSync(join(repo, "contracts/gen/jetkit.binpb")));
      const r = await jetkit(["contracts", "push", "--contracts", file, "-s", server.url]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const nc = await connect({ servers: server.url });
      try {
        const jsm = await jetstreamManager(nc);
        assert.equal((await jsm.streams.info("KV_JETKIT_REGISTRY")).config.num_replicas, 1);
        assert.equal((await jsm.streams.info("OBJ_JETKIT_CONTRACTS")).config.num_replicas, 1);
      } finally {
        await nc.close();
      }
    } finally {
      await server.dispose();
    }
  });
});
