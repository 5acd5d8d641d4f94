import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { uuidv7 } from "@jetkit/contracts";
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { createConsumer } from "../src/index.js";
import { completed, type Env, publishRaw, silent, startEnv, until } from "./support.js";

const CHILD = new URL("./fixtures/child-consumer.js", import.meta.url).pathname;

function startChild(url: string, file: string, blockAfter: number) {
  const proc = spawn(process.execPath, [CHILD, url, "crash", file, String(blockAfter)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  proc.stdout.setEncoding("utf8").on("data", (d: string) => {
    out += d;
  });
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  return { proc, exited, output: () => out };
}

describe("consumer: staying alive", () => {
  let env: Env;
  const dir = mkdtempSync(join(tmpdir(), "jetkit-consumers-"));
  before(async () => {
    env = await startEnv();
  });
  after(async () => {
    await env.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it("handles each event once when the consumer process is killed mid-batch and restarted", async () => {
    const file = join(dir, "effects.txt");
    const total = 60;
    const ids: string[] = [];
    for (let i = 0; i < total; i++)
      ids.push((await publishRaw(env.js, OrderFulfillmentCompleted, completed())).id);
    const lines = () => (existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : []);

    const first = startChild(env.server.url, file, 25);
    // All 4 handler slots hang before their effect: every earlier handler finished (effect, record, ack).
    await until(() => first.output().includes("blocked 4"), 20_000, "the first child to block 4 handlers");
    first.proc.kill("SIGKILL");
    await first.exited;
    assert.equal(lines().length, 25);

    const second = startChild(env.server.url, file, 0);
    try {
      await until(() => new Set(lines()).size === total, 30_000, "every event handled after the restart");
      await until(
        async () => {
          const ci = await env.jsm.consumers.info("ORDER", "crash");
          return ci.num_pending === 0 && ci.num_ack_pending === 0;
        },
        10_000,
        "nothing pending",
      );
    } finally {
      second.proc.kill("SIGTERM");
      await second.exited;
    }
    const handled = lines();
    assert.equal(handled.length, total, "no event handled twice");
    assert.deepEqual(new Set(handled), new Set(ids));
  });

  it("resumes by itself after a broker restart without losing events; health probe follows", async () => {
    const c = await createConsumer({
      servers: env.server.url,
      durable: "restart",
      events: [OrderFulfillmentCompleted],
      deliverPolicy: "new",
      logger: silent,
      health: { port: 0 },
    });
    const seen = new Set<string>();
    c.on(OrderFulfillmentCompleted, (_e, ctx) => {
      seen.add(ctx.eventId);
    });
    await c.start();
    try {
      await until(() => c.isReady(), 5000, "ready");
      const probe = await fetch(c.healthUrl!);
      assert.equal(probe.status, 200);
      const body = (await probe.json()) as { ready: boolean; lag: { pending: number } };
      assert.equal(body.ready, true);
      assert.equal(body.lag.pending, 0);

      const ids: string[] = [];
      for (let i = 0; i < 20; i++)
        ids.push((await publishRaw(env.js, OrderFulfillmentCompleted, completed())).id);
      await until(() => seen.size === 20, 10_000, "first 20 handled");
      await env.server.restart();
      await until(
        async () => {
          try {
            ids.push((await publishRaw(env.js, OrderFulfillmentCompleted, completed())).id);
            return true;
          } catch {
            return false;
          }
        },
        15_000,
        "publishing again after the restart",
      );
      for (let i = 0; i < 19; i++)
        ids.push((await publishRaw(env.js, OrderFulfillmentCompleted, completed())).id);
      await until(() => ids.every((id) => seen.has(id)), 30_000, "events after the restart handled");
      await until(() => c.isReady(), 5000, "ready again");
      assert.equal((await fetch(c.healthUrl!)).status, 200);
    } finally {
      await c.stop({ timeoutMs: 1000 });
    }
  });

  it("stop lets in-flight handlers finish within the deadline and naks what is left", async () => {
    const c = await createConsumer({
      connection: env.nc,
      durable: "graceful",
      events: [OrderFulfillmentCompleted],
      deliverPolicy: "new",
      concurrency: 2,
      logger: silent,
    });
    let finished = 0;
    let aborted = 0;
    // Only this test's two events count (a publish of the test before, retried across its server
    // restart, can be stored late and reach this durable too).
    const ours = new Set<string>();
    let started = 0;
    c.on(OrderFulfillmentCompleted, async (e, ctx) => {
      if (!ours.has(ctx.eventId)) return;
      const slow = e.shipments[0]?.trackingNumber === "slow";
      started++;
      await new Promise<void>((resolve) => {
        const onAbort = () => {
          clearTimeout(t);
          aborted++;
          resolve();
        };
        const t = setTimeout(
          () => {
            ctx.signal.removeEventListener("abort", onAbort);
            resolve();
          },
          slow ? 5000 : 100,
        );
        ctx.signal.addEventListener("abort", onAbort);
      });
      if (!ctx.signal.aborted) finished++;
    });
    await c.start();
    for (const tracking of ["fast", "slow"]) {
      const id = uuidv7();
      ours.add(id);
      await publishRaw(env.js, OrderFulfillmentCompleted, completed(undefined, tracking), { id });
    }
    await until(() => started === 2, 5000, "both handlers running");
    const t0 = Date.now();
    await c.stop({ timeoutMs: 600 });
    assert.ok(Date.now() - t0 < 4000, "stop kept its deadline");
    assert.equal(finished, 1, "the quick handler finished");
    assert.equal(aborted, 1, "the slow handler was told to stop");
    assert.equal(c.isReady(), false);
    // The slow one was nak'd, not left to its 30 s ack wait: the next process gets it at once.
    const next = await createConsumer({
      connection: env.nc,
      durable: "graceful",
      events: [OrderFulfillmentCompleted],
      deliverPolicy: "new",
      logger: silent,
    });
    const redelivered: number[] = [];
    next.on(OrderFulfillmentCompleted, (_e, ctx) => {
      if (ours.has(ctx.eventId)) redelivered.push(ctx.delivery);
    });
    await next.start();
    try {
      await until(() => redelivered.length === 1, 3000, "the nak'd message in the next consumer");
      assert.equal(redelivered[0], 2);
    } finally {
      await next.stop({ timeoutMs: 500 });
    }
  });
});
