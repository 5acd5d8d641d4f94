import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { type PostgresServer, startPostgres } from "@jetkit/testing";
import pg from "pg";
import { billOnCompletion } from "../examples/pg-inbox.js";
import { createConsumer, PgInbox } from "../src/index.js";
import { completed, type Env, publishRaw, silent, startEnv, until } from "./support.js";

const CHILD = new URL("./fixtures/pg-inbox-consumer.js", import.meta.url).pathname;

describe("PgInbox: the effect and its record in one Postgres transaction", () => {
  let env: Env;
  let postgres: PostgresServer;
  let pool: pg.Pool;
  before(async () => {
    env = await startEnv();
    postgres = await startPostgres();
    pool = new pg.Pool({ connectionString: postgres.url, max: 4 });
    await pool.query("CREATE TABLE invoices (order_id text NOT NULL)");
  });
  after(async () => {
    await pool?.end();
    await postgres?.dispose();
    await env?.dispose();
  });

  const invoices = async (orderId: string) =>
    (await pool.query("SELECT count(*)::int AS n FROM invoices WHERE order_id = $1", [orderId])).rows[0].n;

  it("commits effect and record together, skips a redelivered event, and rolls both back on a throw", async () => {
    const inbox = await PgInbox.open(pool, { consumer: "billing" });
    let attempts = 0;
    const c = await createConsumer({
      connection: env.nc,
      durable: "pg-inbox",
      events: [OrderFulfillmentCompleted],
      deliverPolicy: "new",
      backoff: { initialMs: 20, maxMs: 50, jitter: 0 },
      logger: silent,
    });
    let recordedDuringFirst: boolean | undefined;
    c.on(
      OrderFulfillmentCompleted,
      inbox.handler(async (e, ctx, tx) => {
        attempts++;
        await tx.query("INSERT INTO invoices (order_id) VALUES ($1)", [e.orderId]);
        if (attempts === 1) {
          recordedDuringFirst = await inbox.effected(ctx.eventId); // another connection: not committed yet
          throw new Error("after the write"); // the write and the record must both roll back
        }
      }),
    );
    await c.start();
    const ev = completed();
    const { id } = await publishRaw(env.js, OrderFulfillmentCompleted, ev);
    await until(() => inbox.effected(id), 10_000, "the event recorded in the inbox");
    // A copy with another Nats-Msg-Id (a redelivery the broker cannot dedup) is skipped.
    await publishRaw(env.js, OrderFulfillmentCompleted, ev, { id, msgId: `${id}-again` });
    await until(
      async () => {
        const lag = await c.lag();
        return lag.ackPending === 0 && lag.pending === 0;
      },
      10_000,
      "both handled",
    );
    await c.stop({ timeoutMs: 1000 });
    assert.equal(recordedDuringFirst, false, "the record is invisible until the effect commits");
    assert.equal(
      await invoices(ev.orderId),
      1,
      "one invoice: the failed attempt's write rolled back, the copy skipped",
    );
    assert.equal(attempts, 2, "the copy never reached the effect");
  });

  for (const [mode, expected] of [
    ["after-commit", 0],
    ["mid-effect", 1],
  ] as const) {
    it(`a consumer killed -9 ${mode === "after-commit" ? "after the commit, before the ack" : "inside the transaction"}: the redelivery runs the effect ${expected} more time(s)`, async () => {
      const durable = `pg-crash-${mode}`;
      const child = spawn(process.execPath, [CHILD, env.server.url, postgres.url, durable, mode], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      const exited = new Promise<void>((r) => child.once("exit", () => r()));
      await new Promise<void>((resolve) =>
        child.stdout!.on("data", (b: Buffer) => b.toString().includes("ready") && resolve()),
      );
      const ev = completed();
      const { id } = await publishRaw(env.js, OrderFulfillmentCompleted, ev);
      await exited;
      assert.equal(
        await invoices(ev.orderId),
        mode === "after-commit" ? 1 : 0,
        "what the killed process left",
      );
      const inbox = await PgInbox.open(pool, { consumer: durable });
      let effects = 0;
      const deliveries: number[] = [];
      const effect = inbox.handler<OrderFulfillmentCompleted>(async (e, _ctx, tx) => {
        effects++;
        await tx.query("INSERT INTO invoices (order_id) VALUES ($1)", [e.orderId]);
      });
      const c = await createConsumer({
        connection: env.nc,
        durable,
        events: [OrderFulfillmentCompleted],
        deliverPolicy: "new",
        ackWaitMs: 1000,
        logger: silent,
      });
      c.on(OrderFulfillmentCompleted, async (e, ctx) => {
        deliveries.push(ctx.delivery);
        await effect(e, ctx);
      });
      await c.start();
      await until(
        async () => deliveries.length > 0 && (await c.lag()).ackPending === 0,
        15_000,
        "the redelivery handled",
      );
      await c.stop({ timeoutMs: 1000 });
      assert.ok(deliveries[0]! >= 2, "the event was redelivered after the crash");
      assert.equal(effects, expected, `the redelivery ran the effect ${expected} time(s)`);
      assert.equal(await invoices(ev.orderId), 1, "one invoice in the end");
      assert.ok(await inbox.effected(id));
    });
  }

  it("README example: one invoice per event, a second copy skipped", async () => {
    const c = await createConsumer({
      connection: env.nc,
      durable: "pg-inbox-example",
      events: [OrderFulfillmentCompleted],
      deliverPolicy: "new",
      logger: silent,
    });
    const inbox = await billOnCompletion(pool, c);
    await c.start();
    const ev = completed();
    const { id } = await publishRaw(env.js, OrderFulfillmentCompleted, ev);
    await publishRaw(env.js, OrderFulfillmentCompleted, ev, { id, msgId: `${id}-copy` });
    await until(
      async () => {
        const lag = await c.lag();
        return (await inbox.effected(id)) && lag.ackPending === 0 && lag.pending === 0;
      },
      10_000,
      "both copies handled",
    );
    await c.stop({ timeoutMs: 1000 });
    assert.equal(await invoices(ev.orderId), 1);
  });
});
