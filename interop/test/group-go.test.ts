// Live: a TypeScript member (@jetkit/consumers, `group`) and Go members (jetkit.JoinGroup, the
// example contracts/go/examples/group) in one partitioned consumer group on one stream
// (contracts/WIRE.md §6a). Both handlers append each event to one append-only file, so the
// file's order is the order the handlers ran in, across processes.
import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
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

async function buildGroupMember(): Promise<string> {
  const out = join(process.env.JETKIT_TOOLS ?? join(homedir(), ".cache/jetkit/tools"), "interop-bin");
  await mkdir(out, { recursive: true });
  await run("go", ["build", "-mod=readonly", "-o", join(out, "group"), "./examples/group"], {
    cwd: join(ROOT, "contracts/go"),
    timeout: 600_000,
  });
  return join(out, "group");
}

/** One line of the effects file: a handler ran for an event. */
/** A Go member process; `exited` resolves with its exit code (or signal). */
interface GoMember {
  proc: ChildProcess;
  exited: Promise<number | string>;
  stderr(): string;
}

function startGo(bin: string, args: string[]): GoMember {
  const proc = spawn(bin, args, { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  proc.stderr!.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<number | string>((resolve) =>
    proc.on("exit", (code, signal) => resolve(code ?? signal ?? "?")),
  );
  return { proc, exited, stderr: () => err };
}

/**
 * Publishes rounds over `keys` (calling `onRound` before each) until `done` has held for
 * `after` rounds: the load keeps flowing through a rebalance, however long it takes.
 */
async function publishThrough(
  producer: Producer,
  keys: string[],
  published: Map<string, number[]>,
  done: () => Promise<unknown>,
  onRound: (round: number) => void = () => {},
  after = 5,
): Promise<void> {
  let heldSince = -1;
  for (let round = 0; heldSince < 0 || round - heldSince < after; round++) {
    onRound(round);
    await publishRounds(producer, keys, 1, published);
    if (heldSince < 0 && (await done()) !== undefined) heldSince = round;
    assert.ok(round < 2000, "the group never got there");
  }
}

const count = (published: Map<string, number[]>) => [...published.values()].reduce((n, s) => n + s.length, 0);

describe("partitioned consumer group: TypeScript and Go members", () => {
  let env: Env;
  let bin: string;
  let producer: Producer;
  let dir: string;
  const procs: GoMember[] = [];
  const consumers: Consumer[] = [];

  before(async () => {
    bin = await buildGroupMember();
    env = await startEnv();
    producer = await createProducer({ servers: env.server.url, name: "interop-group", logger: silent });
    dir = mkdtempSync(join(tmpdir(), "jetkit-group-"));
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

  function goMember(durable: string, file: string, extra: string[]): GoMember {
    const g = startGo(bin, [
      ...["-server", env.server.url, "-durable", durable, "-subject", SUBJECT, "-new"],
      ...["-partitions", String(PARTITIONS), "-lease", `${LEASE_MS}ms`, "-effects", file, "-work", "20ms"],
      ...extra,
    ]);
    procs.push(g);
    return g;
  }

  it("elastic: both own partitions, every event runs once in per-key order while members join and leave under load (Go drains to a joining TS member, TS takes a stopping Go member's partitions, a joining Go member gets its share from TS)", async () => {
    const durable = "poly-elastic";
    const file = join(dir, `${durable}.jsonl`);
    writeFileSync(file, "");
    const keys = Array.from({ length: 20 }, () => uuidv7());
    const published = new Map<string, number[]>();
    let ts: Consumer | undefined;
    const handled = (n: number) => () => (effects(file).length >= n ? true : undefined);
    const split = (goId: string) => async () => {
      const o = await owners(env, durable);
      return o.filter((x) => x === goId).length === 4 && !o.includes("") && ts?.ownedPartitions().length === 4
        ? o
        : undefined;
    };
    // 1. The Go member alone (it creates the group's config; the TS member must accept it).
    const go1 = goMember(durable, file, ["-instance", "go-1"]);
    await eventually("go-1 owns every partition", async () =>
      (await owners(env, durable)).every((x) => x === "go-1") ? true : undefined,
    );
    // The TS member joins while events flow: go-1 drains and releases half of its partitions.
    let joining: Promise<Consumer> | undefined;
    let o1: string[] = [];
    await publishThrough(
      producer,
      keys,
      published,
      async () => {
        if (!ts) return undefined;
        const o = await split("go-1")();
        if (o) o1 = o;
        return o;
      },
      (round) => {
        if (round === 3)
          joining = tsMember(durable, file, {}).then((c) => {
            ts = c;
            return c;
          });
      },
    );
    await joining;
    assert.ok(ts);
    assert.deepEqual(
      ts.ownedPartitions(),
      o1.flatMap((x, p) => (x === "go-1" ? [] : [p])),
      "the TS member owns what the records say",
    );
    await eventually("phase 1 handled", handled(count(published)), 30_000);
    const first = effects(file);
    assertOnceInOrder(first, published);
    assert.ok(first.some((e) => e.by === "go") && first.some((e) => e.by === "ts"));
    assert.match(go1.stderr(), /partition moving to another member: draining it/);

    // 2. go-1 stops (SIGTERM: drain, checkpoint, release) while events flow.
    let stopping: Promise<number | string> | undefined;
    await publishThrough(
      producer,
      keys,
      published,
      async () => (ts!.ownedPartitions().length === PARTITIONS ? true : undefined),
      (round) => {
        if (round === 3) {
          go1.proc.kill("SIGTERM");
          stopping = go1.exited;
        }
      },
    );
    assert.equal(await stopping, 0, go1.stderr());
    await eventually("phase 2 handled", handled(count(published)), 30_000);
    assertOnceInOrder(effects(file), published);
    for (const k of keys.filter((k) => o1[partitionOf(k, PARTITIONS)] === "go-1")) {
      const by = effects(file)
        .filter((e) => e.key === k)
        .map((e) => e.by);
      assert.equal(by.at(-1), "ts", `key ${k} continues on the TS member`);
    }

    // 3. A new Go member joins while events flow: the TS member drains and hands it its share.
    let go2: GoMember | undefined;
    const before3 = effects(file).length;
    await publishThrough(producer, keys, published, split("go-2"), (round) => {
      if (round === 3) go2 = goMember(durable, file, ["-instance", "go-2"]);
    });
    await eventually("phase 3 handled", handled(count(published)), 30_000);
    go2!.proc.kill("SIGTERM");
    assert.equal(await go2!.exited, 0, go2!.stderr());
    await ts.stop({ timeoutMs: 5_000 });
    const all = effects(file);
    assertOnceInOrder(all, published);
    assert.ok(
      all.slice(before3).some((e) => e.by === "go"),
      "go-2 handled its share",
    );
  });

  it("a Go member with another partition count or mode is refused (JK_CONSUMER_GROUP)", async () => {
    const durable = "poly-refused";
    const file = join(dir, `${durable}.jsonl`);
    await tsMember(durable, file, {});
    const wrongCount = goMember(durable, file, ["-partitions", "16"]);
    assert.equal(await wrongCount.exited, 2);
    assert.match(
      wrongCount.stderr(),
      /JK_CONSUMER_GROUP: consumer group poly-refused on stream ORDER exists with 8 partitions \(elastic\); this member asks for 16/,
    );
    const wrongMode = goMember(durable, file, ["-members", "a,b", "-member", "a"]);
    assert.equal(await wrongMode.exited, 2);
    assert.match(
      wrongMode.stderr(),
      /JK_CONSUMER_GROUP: .* exists with 8 partitions \(elastic\); this member asks for 8 \(static\)/,
    );
  });

  it("static: each name owns members[p % 2]; when the Go member is killed, its standby takes its partitions after the lease and the keys keep their order", async () => {
    const durable = "poly-static";
    const file = join(dir, `${durable}.jsonl`);
    writeFileSync(file, "");
    const members = ["ts", "go"];
    const ts = await tsMember(durable, file, { members, member: "ts" });
    const goA = goMember(durable, file, ["-members", "ts,go", "-member", "go", "-instance", "go-a"]);
    await eventually("the static split", async () => {
      const o = await owners(env, durable);
      return o.every((x, p) => (p % 2 === 1 ? x === "go-a" : x !== "" && x !== "go-a")) ? true : undefined;
    });
    assert.deepEqual(ts.ownedPartitions(), [0, 2, 4, 6]);

    const keys = Array.from({ length: 16 }, () => uuidv7());
    const published = new Map<string, number[]>();
    await publishRounds(producer, keys, 10, published);
    await eventually("160 events handled", () => (effects(file).length >= 160 ? true : undefined), 30_000);
    assertOnceInOrder(effects(file), published);

    // kill -9 while events keep coming; a standby of the same name takes over once go-a's
    // records have not changed for a lease.
    const goB = goMember(durable, file, ["-members", "ts,go", "-member", "go", "-instance", "go-b"]);
    let killedAt = 0;
    await publishRounds(producer, keys, 10, published, (n) => {
      if (n === 40) {
        goA.proc.kill("SIGKILL");
        killedAt = Date.now();
      }
    });
    await goA.exited;
    await eventually(
      "go-b owns the odd partitions",
      async () =>
        (await owners(env, durable)).every((x, p) => p % 2 === 0 || x === "go-b") ? true : undefined,
      20_000,
    );
    const tookOverMs = Date.now() - killedAt;
    await eventually("every event handled", () => {
      const ran = new Set(effects(file).map((e) => e.seq));
      return [...published.values()].flat().every((s) => ran.has(s)) ? true : undefined;
    });
    goB.proc.kill("SIGTERM");
    assert.equal(await goB.exited, 0, goB.stderr());
    await ts.stop({ timeoutMs: 5_000 });
    // go-a's last renewal was at most a renewal period (lease/4) before the kill.
    assert.ok(
      tookOverMs >= LEASE_MS * 0.75 && tookOverMs < LEASE_MS * 3,
      `taken over ${tookOverMs} ms after the kill, lease ${LEASE_MS} ms`,
    );

    // A killed Go member's events after its last checkpoint run again on the standby (the Go
    // helper has no effect records: WIRE.md §6a, docs/go.md). Nothing else repeats, nothing is
    // lost, and each key's first runs keep stream order.
    const log = effects(file);
    const firstRuns: Effect[] = [];
    const ran = new Set<number>();
    for (const e of log) {
      if (ran.has(e.seq)) {
        assert.equal(e.by, "go", `seq ${e.seq} ran again on the TS member`);
        assert.equal(partitionOf(e.key, PARTITIONS) % 2, 1, `seq ${e.seq} of an even partition ran again`);
        continue;
      }
      ran.add(e.seq);
      firstRuns.push(e);
    }
    assertOnceInOrder(firstRuns, published);
    // and a replay runs a key's events from its checkpoint on: after a key's replay starts, its
    // events run in stream order again.
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
