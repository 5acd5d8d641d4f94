// Live: a TypeScript member (@jetkit/consumers, `group`) and Rust members (jetkit::join_group,
// the example contracts/rust/examples/group.rs) in one static partitioned consumer group on one
// stream (contracts/WIRE.md §6a). Both handlers append each event to one append-only file, so
// the file's order is the order the handlers ran in, across processes.
import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { type Consumer, createConsumer, partitionOf } from "@jetkit/consumers";
import { uuidv7 } from "@jetkit/contracts";
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { createProducer, type Producer } from "@jetkit/producers";
import { type Env, eventually, silent, startEnv } from "./env.js";
import {
  assertOnceInOrder,
  type Effect,
  effects,
  LEASE_MS,
  owners,
  PARTITIONS,
  publishRounds,
  SUBJECT,
} from "./group.js";
import { ROOT } from "./polyglot.js";

const run = promisify(execFile);
const TOOLS = process.env.JETKIT_TOOLS ?? join(homedir(), ".cache/jetkit/tools");
const CARGO_TARGET_DIR = process.env.CARGO_TARGET_DIR ?? join(TOOLS, "cargo-target");

async function buildGroupMember(): Promise<string> {
  await run("cargo", ["build", "--locked", "--quiet", "--example", "group"], {
    cwd: join(ROOT, "contracts/rust"),
    env: { ...process.env, CARGO_TARGET_DIR },
    timeout: 600_000,
    maxBuffer: 16 << 20,
  });
  return join(CARGO_TARGET_DIR, "debug/examples/group");
}

/** One line of the effects file: a handler ran for an event. */
interface RustMember {
  proc: ChildProcess;
  exited: Promise<number | string>;
  stderr(): string;
}

describe("partitioned consumer group: TypeScript and Rust members", () => {
  let env: Env;
  let bin: string;
  let producer: Producer;
  let dir: string;
  const procs: RustMember[] = [];
  const consumers: Consumer[] = [];

  before(async () => {
    bin = await buildGroupMember();
    env = await startEnv();
    producer = await createProducer({ servers: env.server.url, name: "interop-group-rust", logger: silent });
    dir = mkdtempSync(join(tmpdir(), "jetkit-group-rust-"));
  });
  after(async () => {
    for (const g of procs) g.proc.kill("SIGKILL");
    for (const c of consumers) await c.stop({ timeoutMs: 2_000 }).catch(() => {});
    await producer?.close();
    await env?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function tsMember(durable: string, file: string, group: object): Promise<Consumer> {
    const consumer = await createConsumer({
      servers: env.server.url,
      durable,
      events: [OrderFulfillmentCompleted],
      deliverPolicy: "new",
      group: { partitions: PARTITIONS, leaseMs: LEASE_MS, ...group },
      logger: silent,
    });
    consumer.on(OrderFulfillmentCompleted, async (e, ctx) => {
      await new Promise((r) => setTimeout(r, 2));
      appendFileSync(
        file,
        `${JSON.stringify({ by: "ts", id: ctx.eventId, key: e.orderId, seq: ctx.seq })}\n`,
      );
    });
    await consumer.start();
    consumers.push(consumer);
    return consumer;
  }

  function rustMember(durable: string, file: string, extra: string[]): RustMember {
    const proc = spawn(
      bin,
      [
        ...["--server", env.server.url, "--durable", durable, "--subject", SUBJECT, "--new", "true"],
        ...["--partitions", String(PARTITIONS), "--lease-ms", String(LEASE_MS), "--effects", file],
        ...["--work-ms", "20", ...extra],
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let err = "";
    proc.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
    });
    const exited = new Promise<number | string>((resolve) =>
      proc.on("exit", (code, signal) => resolve(code ?? signal ?? "?")),
    );
    const m = { proc, exited, stderr: () => err };
    procs.push(m);
    return m;
  }

  it("a Rust member with another partition count is refused (JK_CONSUMER_GROUP)", async () => {
    const durable = "rust-refused";
    const file = join(dir, `${durable}.jsonl`);
    await tsMember(durable, file, { members: ["ts", "rust"], member: "ts" });
    const wrong = rustMember(durable, file, [
      "--members",
      "ts,rust",
      "--member",
      "rust",
      "--partitions",
      "16",
    ]);
    assert.equal(await wrong.exited, 2);
    assert.match(
      wrong.stderr(),
      /JK_CONSUMER_GROUP: consumer group rust-refused on stream ORDER exists with 8 partitions \(static\); this member asks for 16/,
    );
  });

  it("static: each name owns members[p % 2]; when the Rust member is killed, its standby takes its partitions after the lease and the keys keep their order", async () => {
    const durable = "rust-static";
    const file = join(dir, `${durable}.jsonl`);
    writeFileSync(file, "");
    const ts = await tsMember(durable, file, { members: ["ts", "rust"], member: "ts" });
    const rustA = rustMember(durable, file, [
      "--members",
      "ts,rust",
      "--member",
      "rust",
      "--instance",
      "rust-a",
    ]);
    await eventually("the static split", async () => {
      const o = await owners(env, durable);
      return o.every((x, p) => (p % 2 === 1 ? x === "rust-a" : x !== "" && x !== "rust-a"))
        ? true
        : undefined;
    });
    assert.deepEqual(ts.ownedPartitions(), [0, 2, 4, 6]);

    const keys = Array.from({ length: 16 }, () => uuidv7());
    const published = new Map<string, number[]>();
    await publishRounds(producer, keys, 10, published);
    await eventually("160 events handled", () => (effects(file).length >= 160 ? true : undefined), 30_000);
    assertOnceInOrder(effects(file), published);
    assert.ok(
      effects(file).some((e) => e.by === "rust") && effects(file).some((e) => e.by === "ts"),
      "both languages handled events",
    );

    // kill -9 while events keep coming; a standby of the same name takes over once rust-a's
    // records have not changed for a lease.
    const rustB = rustMember(durable, file, [
      "--members",
      "ts,rust",
      "--member",
      "rust",
      "--instance",
      "rust-b",
    ]);
    let killedAt = 0;
    await publishRounds(producer, keys, 10, published, (n) => {
      if (n === 40) {
        rustA.proc.kill("SIGKILL");
        killedAt = Date.now();
      }
    });
    await rustA.exited;
    await eventually(
      "rust-b owns the odd partitions",
      async () =>
        (await owners(env, durable)).every((x, p) => p % 2 === 0 || x === "rust-b") ? true : undefined,
      20_000,
    );
    const tookOverMs = Date.now() - killedAt;
    await eventually("every event handled", () => {
      const ran = new Set(effects(file).map((e) => e.seq));
      return [...published.values()].flat().every((s) => ran.has(s)) ? true : undefined;
    });
    rustB.proc.kill("SIGTERM");
    assert.equal(await rustB.exited, 0, rustB.stderr());
    await ts.stop({ timeoutMs: 5_000 });
    // rust-a's last renewal was at most a renewal period (lease/4) before the kill.
    assert.ok(
      tookOverMs >= LEASE_MS * 0.75 && tookOverMs < LEASE_MS * 3,
      `taken over ${tookOverMs} ms after the kill, lease ${LEASE_MS} ms`,
    );
    // SIGTERM released rust-b's partitions with no owner.
    assert.deepEqual(
      (await owners(env, durable)).filter((_, p) => p % 2 === 1),
      ["", "", "", ""],
    );

    // The killed member's events after its last checkpoint run again on the standby (the Rust
    // member has no effect records: docs/rust.md). Nothing else repeats, nothing is lost, and
    // each key's first runs keep stream order.
    const log = effects(file);
    const firstRuns: Effect[] = [];
    const ran = new Set<number>();
    for (const e of log) {
      if (ran.has(e.seq)) {
        assert.equal(e.by, "rust", `seq ${e.seq} ran again on the TS member`);
        assert.equal(partitionOf(e.key, PARTITIONS) % 2, 1, `seq ${e.seq} of an even partition ran again`);
        continue;
      }
      ran.add(e.seq);
      firstRuns.push(e);
    }
    assertOnceInOrder(firstRuns, published);
    for (const key of keys) {
      const seqs = log.filter((e) => e.key === key).map((e) => e.seq);
      for (let i = 1; i < seqs.length; i++) {
        if (seqs[i]! < seqs[i - 1]!) {
          const restart = seqs[i]!;
          assert.deepEqual(
            seqs.slice(i),
            published.get(key)!.filter((s) => s >= restart),
            `key ${key}: the replay from ${restart} runs in order to the end`,
          );
          break;
        }
      }
    }
  });
});
