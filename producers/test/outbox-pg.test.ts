import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { JetkitError } from "@jetkit/contracts";
import { OrderFulfillmentCompleted } from "@jetkit/contracts/gen/shop/order/v1/events";
import { type NatsServer, type PostgresServer, startPostgres } from "@jetkit/testing";
import type { NatsConnection } from "@nats-io/transport-node";
import pg from "pg";
import { shipOrder, startRelay as startExampleRelay } from "../examples/pg-outbox.js";
import {
  createProducer,
  type EncodedEvent,
  PgOutbox,
  type Producer,
  ProducerErrorCodes,
  startOutboxRelay,
} from "../src/index.js";
import { fulfillmentCompleted, serverWithStreams, silent, storedMessages, until } from "./support.js";

const RELAY = new URL("./fixtures/pg-outbox-relay.js", import.meta.url).pathname;

/** The events of ORDER as (msg id, key, per-key number) in stream order. */
async function stored(admin: NatsConnection) {
  return (await storedMessages(admin, "ORDER")).map((m) => {
    const e = OrderFulfillmentCompleted.decode(m.data);
    return { id: m.header.get("Nats-Msg-Id"), key: e.orderId, n: Number(e.shipments[0]!.trackingNumber) };
  });
}

function event(key: ReturnType<typeof crypto.randomUUID>, n: number) {
  const e = fulfillmentCompleted(key);
  e.shipments[0]!.trackingNumber = String(n);
  return e;
}

/** A relay process; `lines` collects what it prints, `next(text)` resolves when it prints `text` again. */
function startRelay(natsUrl: string, pgUrl: string, mode = "") {
  const proc: ChildProcess = spawn(process.execPath, [RELAY, natsUrl, pgUrl, mode], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines: string[] = [];
  const waiters: { text: string; from: number; resolve: () => void }[] = [];
  proc.stdout!.on("data", (b: Buffer) => {
    lines.push(...b.toString().trim().split("\n"));
    for (const w of waiters.splice(0)) {
      if (lines.slice(w.from).some((l) => l.startsWith(w.text))) w.resolve();
      else waiters.push(w);
    }
  });
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  return {
    proc,
    lines,
    exited,
    /** Resolves when the relay prints a line starting with `text` after the call. */
    next(text: string): Promise<void> {
      return new Promise((resolve) => waiters.push({ text, from: lines.length, resolve }));
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      await exited;
    },
  };
}

describe("PgOutbox: events written in the business transaction on Postgres, relayed in order", () => {
  let server: NatsServer;
  let admin: NatsConnection;
  let postgres: PostgresServer;
  let pool: pg.Pool;
  let outbox: PgOutbox;
  let producer: Producer;
  before(async () => {
    ({ server, admin } = await serverWithStreams());
    postgres = await startPostgres();
    pool = new pg.Pool({ connectionString: postgres.url, max: 6 });
    pool.on("error", () => {}); // idle clients lost when the test restarts Postgres
    outbox = await PgOutbox.open(pool);
    await pool.query("CREATE TABLE orders (id text PRIMARY KEY, state text NOT NULL)");
    producer = await createProducer({ servers: server.url, name: "pg-outbox-test", logger: silent });
  });
  after(async () => {
    await producer?.close();
    await pool?.end();
    await postgres?.dispose();
    await admin?.close();
    await server?.dispose();
  });

  /** Runs `fn` in a transaction on its own client; rolls back on a throw. */
  async function tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await pool.connect();
    try {
      await c.query("BEGIN");
      const r = await fn(c);
      await c.query("COMMIT");
      return r;
    } catch (err) {
      await c.query("ROLLBACK").catch(() => {});
      throw err;
    } finally {
      c.release();
    }
  }

  it("publishes an event only if its transaction commits, and a bad event not at all", async () => {
    const relay = startOutboxRelay(outbox, { producer, logger: silent });
    const rolledBack = await tx(async (c) => {
      await c.query("INSERT INTO orders VALUES ('o-1', 'shipped')");
      const id = await outbox.add(c, OrderFulfillmentCompleted, fulfillmentCompleted());
      await c.query("ROLLBACK");
      await c.query("BEGIN"); // so tx() has something to commit
      return id;
    });
    const bad = fulfillmentCompleted();
    bad.orderId = "not-a-uuid";
    await assert.rejects(
      tx((c) => outbox.add(c, OrderFulfillmentCompleted, bad)),
      /JK_CONTRACT_VIOLATION|order_id/,
    );
    const committed = await tx(async (c) => {
      await c.query("INSERT INTO orders VALUES ('o-2', 'shipped')");
      return outbox.add(c, OrderFulfillmentCompleted, fulfillmentCompleted());
    });
    await until("the committed row relayed", async () => (await outbox.pending()) === 0);
    await relay.stop();
    const ids = (await stored(admin)).map((m) => m.id);
    assert.ok(ids.includes(committed), "the committed event is in the stream with its id");
    assert.ok(!ids.includes(rolledBack), "the rolled-back event never reaches the stream");
    const { rows } = await pool.query("SELECT count(*)::int AS n FROM jetkit_outbox");
    assert.equal(rows[0].n, 1, "only the committed row exists");
  });

  it("keeps a key's events in add order when a later transaction commits first", async () => {
    const relay = startOutboxRelay(outbox, { producer, logger: silent });
    const key = crypto.randomUUID();
    const first = await pool.connect();
    const second = await pool.connect();
    try {
      await first.query("BEGIN");
      await outbox.add(first, OrderFulfillmentCompleted, event(key, 0));
      await second.query("BEGIN");
      const { rows } = await second.query("SELECT pg_backend_pid() AS pid");
      // The second transaction adds the key's next event and commits at once, while the first is open.
      const secondDone = outbox
        .add(second, OrderFulfillmentCompleted, event(key, 1))
        .then(() => second.query("COMMIT"));
      const blocked = until("the second add waits for the first transaction", async () => {
        const r = await pool.query("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", [
          rows[0].pid,
        ]);
        return r.rows[0]?.wait_event_type === "Lock";
      });
      const outcome = await Promise.race([
        secondDone.then(() => "committed"),
        blocked.then(
          () => "blocked",
          () => "committed",
        ),
      ]);
      if (outcome === "committed") {
        // Without a per-key lock the second event is visible first: the relay publishes it now.
        await until("the second event relayed", async () => (await outbox.pending()) === 0);
      }
      await first.query("COMMIT");
      await secondDone;
    } finally {
      first.release();
      second.release();
    }
    await until("both relayed", async () => (await outbox.pending()) === 0);
    await relay.stop();
    assert.deepEqual(
      (await stored(admin)).filter((m) => m.key === key).map((m) => m.n),
      [0, 1],
      "the stream holds the key's events in the order they were added",
    );
  });

  it("a publish that fails is retried before any later event of its key, never skipped", async () => {
    const key = crypto.randomUUID();
    const ids = await tx(async (c) => {
      const out: string[] = [];
      for (let n = 0; n < 6; n++) out.push(await outbox.add(c, OrderFulfillmentCompleted, event(key, n)));
      return out;
    });
    // The producer gives up on event 1 twice (as after its deadline, with the broker away): nothing sent.
    let refusals = 0;
    const failing = new Proxy(producer, {
      get(target, prop) {
        if (prop === "publishEncoded") {
          return (e: EncodedEvent) => {
            if (e.msgId === ids[1] && refusals < 2) {
              refusals++;
              return Promise.reject(new JetkitError(ProducerErrorCodes.OUTCOME_UNKNOWN, "test: no answer"));
            }
            return target.publishEncoded(e);
          };
        }
        const v = Reflect.get(target, prop, target);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    const relay = startOutboxRelay(outbox, { producer: failing, logger: silent });
    await until("all relayed", async () => (await outbox.pending()) === 0);
    await relay.stop();
    assert.equal(refusals, 2);
    assert.deepEqual(
      (await stored(admin)).filter((m) => m.key === key).map((m) => m.n),
      [0, 1, 2, 3, 4, 5],
      "events 2-5 waited for event 1",
    );
  });

  it("a relay killed -9 after publishing and before marking: the next relay's copies are dropped", async () => {
    const before = (await stored(admin)).length;
    const keys = Array.from({ length: 20 }, () => crypto.randomUUID());
    const ids = await tx(async (c) => {
      const out: string[] = [];
      for (let n = 0; n < 3; n++)
        for (const k of keys) out.push(await outbox.add(c, OrderFulfillmentCompleted, event(k, n)));
      return out;
    });
    const crashing = startRelay(server.url, postgres.url, "crash-before-mark");
    const published = crashing.next("published");
    await crashing.exited;
    await published;
    assert.equal(await outbox.pending(), ids.length, "the crash left every row unmarked");
    const relay = startOutboxRelay(outbox, { producer, logger: silent, leaseMs: 1000 });
    await until("every row relayed again", async () => (await outbox.pending()) === 0, 20_000);
    await relay.stop();
    const got = (await stored(admin)).slice(before);
    assert.deepEqual(
      got.map((m) => m.id),
      ids,
      "each event stored once, in outbox order",
    );
    assert.equal(relay.stats.duplicates, ids.length, "every re-publish was a copy the stream dropped");
  });

  it("three relays, one killed -9, one paused past its lease, the broker and Postgres restarted: every event once, each key in order", async () => {
    const before = (await stored(admin)).length;
    const keys = Array.from({ length: 30 }, () => crypto.randomUUID());
    const perKey = 12;
    const ids = new Set<string>();
    const write = async (n: number) => {
      const added = await tx(async (c) => {
        await c.query("INSERT INTO orders SELECT unnest($1::text[]), 'shipped'", [
          keys.map((k) => `${k}/${n}`),
        ]);
        const out: string[] = [];
        for (const k of keys) out.push(await outbox.add(c, OrderFulfillmentCompleted, event(k, n)));
        return out;
      });
      for (const id of added) ids.add(id);
    };
    for (let n = 0; n < 4; n++) await write(n);
    const relays = [0, 1, 2].map(() => startRelay(server.url, postgres.url));
    await until("one relay active", () => relays.some((r) => r.lines.includes("relaying")), 20_000);
    const first = relays.find((r) => r.lines.includes("relaying"))!;
    const others = relays.filter((r) => r !== first);
    const takeover = Promise.race(others.map((r) => r.next("relaying").then(() => r)));
    first.proc.kill("SIGKILL");
    const second = await takeover;
    for (let n = 4; n < 8; n++) await write(n);
    // The second active relay is frozen mid-flow past its lease; the third takes over; then it resumes.
    const third = others.find((r) => r !== second)!;
    const thirdActive = third.next("relaying");
    second.proc.kill("SIGSTOP");
    await thirdActive;
    second.proc.kill("SIGCONT");
    // Rows pending while the broker is killed: publishes fail (the relays' deadline is short), and
    // the relays retry them without letting a later row of their key pass.
    for (let n = 8; n < 10; n++) await write(n);
    await server.restart({ kill: true });
    await write(10);
    await postgres.stop("immediate");
    await postgres.start();
    for (let n = 11; n < perKey; n++) {
      await until(`write ${n} after the Postgres restart`, () =>
        write(n).then(
          () => true,
          () => false,
        ),
      );
    }
    await until("every row relayed", async () => (await outbox.pending()) === 0, 60_000);
    await Promise.all(relays.map((r) => r.stop()));
    const got = (await stored(admin)).slice(before);
    assert.equal(got.length, ids.size, "each event stored once (no loss, no second copy)");
    assert.deepEqual(new Set(got.map((m) => m.id)), ids);
    for (const k of keys) {
      assert.deepEqual(
        got.filter((m) => m.key === k).map((m) => m.n),
        Array.from({ length: perKey }, (_, i) => i),
        `order of key ${k}`,
      );
    }
  });

  it("README example: the order update and its event commit together; the relay publishes it", async () => {
    const e = fulfillmentCompleted();
    await pool.query("INSERT INTO orders VALUES ($1, 'packed')", [e.orderId]);
    const relay = await startExampleRelay(pool, producer);
    const id = await shipOrder(pool, outbox, e);
    await until("relayed", async () => (await stored(admin)).some((m) => m.id === id));
    await relay.stop();
    const { rows } = await pool.query("SELECT state FROM orders WHERE id = $1", [e.orderId]);
    assert.equal(rows[0].state, "shipped");
    // A broken event throws in add: the transaction rolls back, the order stays packed.
    const bad = { ...fulfillmentCompleted(), shipments: [] };
    await pool.query("INSERT INTO orders VALUES ($1, 'packed')", [bad.orderId]);
    await assert.rejects(shipOrder(pool, outbox, bad), /JK_CONTRACT_VIOLATION/);
    const after = await pool.query("SELECT state FROM orders WHERE id = $1", [bad.orderId]);
    assert.equal(after.rows[0].state, "packed");
  });
});
