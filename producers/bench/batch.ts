/**
 * Batch publish benchmark (prints figures; not a test). `producer.publishMany` over fast-ingest
 * batches (the contract's INVENTORY stream allows them), the same call with `fast: false` (one
 * publish per event, pipelined), and raw `@nats-io/jetstream` `js.publish` pipelined with the same
 * window, sending the same bytes the SDK stores (the ~1 KiB payload plus the same CloudEvents
 * header block, fresh ids per message, built up front), to the same file-storage stream of the
 * same server, in the same run. Sides alternate in blocks inside each round (which side goes
 * first rotates), so load from other processes falls on all of them alike; the figures are
 * medians over rounds and the medians of per-round ratios. With `--nats-bench <path to the nats
 * CLI>` it also runs `nats bench js pub async` (Go, 1 KiB, file storage) against the same server
 * once per round, between the blocks, twice: as is (1 KiB payload, no headers) and with a msg id
 * per message and the SDK's other CloudEvents headers (`--dedup -H ...`: the bytes the SDK sends).
 *
 *   node producers/dist/bench/batch.js [--rounds 5] [--count 20000] [--window 256] [--block 5000] [--nats-bench /path/to/nats]
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { eventHeaders, getCatalog, uuidv7 } from "@jetkit/contracts";
import { InventoryStockReserved } from "@jetkit/contracts/gen/shop/inventory/v1/events";
import { applyStreams } from "@jetkit/contracts/streams";
import { startServer } from "@jetkit/testing";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, headers as natsHeaders } from "@nats-io/transport-node";
import { pino } from "pino";
import { createProducer } from "../src/index.js";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "5" },
    count: { type: "string", default: "20000" },
    window: { type: "string", default: "256" },
    block: { type: "string", default: "5000" },
    "nats-bench": { type: "string" },
  },
});
const ROUNDS = Number(values.rounds);
const COUNT = Number(values.count);
const WINDOW = Number(values.window);
const BLOCK = Number(values.block);

/** A reservation whose encoding is about 1 KiB. */
function oneKiBEvent(): InventoryStockReserved {
  const e: InventoryStockReserved = {
    reservationId: "a0a0a0a0-0000-4000-8000-000000000001",
    checkoutId: "c0c0c0c0-0000-4000-8000-000000000001",
    warehouseId: "wh-berlin-1",
    lines: [],
    expiresAt: new Date("2030-01-01T00:00:00Z"),
  };
  while (InventoryStockReserved.encode(e).finish().length < 1000) {
    e.lines.push({ sku: `SKU-${e.lines.length}-PADDING-0000`, quantity: 1 });
  }
  return e;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const median = (xs: number[]) => pct(xs, 50);

/** Prepares a block of `count` sends (untimed) and returns the timed part. */
type Side = (count: number) => () => Promise<void>;

/** CPU time the nats-server process has used so far, microseconds (Linux /proc; NaN elsewhere). */
function serverCpuUs(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return Number.NaN;
  }
}

const server = await startServer();
try {
  const admin = await connect({ servers: server.url });
  const jsm = await jetstreamManager(admin);
  await applyStreams(jsm, getCatalog());
  const rawNc = await connect({ servers: server.url, noAsyncTraces: true });
  const js = jetstream(rawNc);
  const producer = await createProducer({
    servers: server.url,
    name: "bench",
    logger: pino({ level: "warn" }),
    maxInFlight: WINDOW,
  });
  const event = oneKiBEvent();
  const payload = InventoryStockReserved.encode(event).finish();
  const subject = getCatalog().byType(InventoryStockReserved.$type).subject;
  const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  const events = function* (count: number) {
    for (let i = 0; i < count; i++) yield event;
  };

  const sides: [string, Side][] = [
    [
      "sdk-fast",
      (count) => async () => {
        const acks = await producer.publishMany(InventoryStockReserved, events(count), { window: WINDOW });
        if (acks.length !== count || acks[0]?.batch === undefined) throw new Error("not a fast-ingest run");
      },
    ],
    [
      "sdk-pipelined",
      (count) => async () => {
        await producer.publishMany(InventoryStockReserved, events(count), { window: WINDOW, fast: false });
      },
    ],
    [
      "raw",
      (count) => {
        // the same bytes: the SDK's header block (same names, sizes, order), fresh ids, built up front
        const blocks = Array.from({ length: count }, () => {
          const id = uuidv7();
          const h = natsHeaders();
          for (const [k, v] of eventHeaders({
            id,
            type: InventoryStockReserved.$type,
            source: "/jetkit/bench",
            time: new Date(),
            partitionKey: event.warehouseId,
            correlationId: id,
            traceparent,
          }))
            h.append(k, v);
          return h;
        });
        return async () => {
          let next = 0;
          const worker = async () => {
            while (next < count) await js.publish(subject, payload, { headers: blocks[next++]! });
          };
          await Promise.all(Array.from({ length: Math.min(WINDOW, count) }, worker));
        };
      },
    ],
  ];

  const natsBench = values["nats-bench"];
  // the SDK's header block (same names and sizes), for the Go client's run with the same bytes
  const sdkHeaders = eventHeaders({
    id: uuidv7(),
    type: InventoryStockReserved.$type,
    source: "/jetkit/bench",
    time: new Date(),
    partitionKey: event.warehouseId,
    correlationId: uuidv7(),
    traceparent,
  }).filter(([k]) => k !== "Nats-Msg-Id");
  const goBench = (sameBytes = false): number => {
    // the Go client's async publish, 1 KiB, file storage, on its own stream of the same server
    const out = execFileSync(
      natsBench!,
      [
        "bench",
        "js",
        "pub",
        "async",
        "benchsubject",
        "--server",
        server.url,
        "--msgs",
        String(COUNT),
        "--size",
        "1024",
        "--storage",
        "file",
        "--create",
        "--purge",
        "--no-progress",
        // with a msg id per message (--dedup) and the SDK's other headers: the bytes the SDK sends
        ...(sameBytes ? ["--dedup", ...sdkHeaders.flatMap(([k, v]) => ["-H", `${k}:${v}`])] : []),
      ],
      { encoding: "utf8" },
    );
    const m = /([\d,]+) msgs\/sec/.exec(out);
    if (!m) throw new Error(`cannot read nats bench output:\n${out}`);
    return Number(m[1]!.replace(/,/g, ""));
  };

  console.log(
    `payload ${payload.length} B, ${ROUNDS} rounds x ${COUNT} msgs per side (blocks of ${BLOCK}), window ${WINDOW}, ` +
      `nats-server ${rawNc.info?.version}, node ${process.version}`,
  );
  // warm-up: JIT, connections, stream files
  for (let i = 0; i < 3; i++) for (const [, side] of sides) await side(5000)();
  await jsm.streams.purge("INVENTORY");

  const rates: Record<string, number[]> = {};
  /** Client and server CPU per message, per round, microseconds. */
  const cpu: Record<string, number[]> = {};
  const serverCpu: Record<string, number[]> = {};
  for (let r = 0; r < ROUNDS; r++) {
    const order = [...sides.slice(r % sides.length), ...sides.slice(0, r % sides.length)];
    const ms = new Map<string, number>();
    const us = new Map<string, number>();
    const sus = new Map<string, number>();
    for (let done = 0; done < COUNT; done += BLOCK) {
      for (const [name, side] of order) {
        const run = side(Math.min(BLOCK, COUNT - done));
        const c0 = process.cpuUsage();
        const s0 = serverCpuUs(server.pid);
        const t0 = performance.now();
        await run();
        ms.set(name, (ms.get(name) ?? 0) + performance.now() - t0);
        const c = process.cpuUsage(c0);
        us.set(name, (us.get(name) ?? 0) + c.user + c.system);
        sus.set(name, (sus.get(name) ?? 0) + serverCpuUs(server.pid) - s0);
      }
    }
    const add = (to: Record<string, number[]>, name: string, x: number) => {
      to[name] ??= [];
      to[name].push(x);
    };
    for (const [name, t] of ms) {
      add(rates, name, COUNT / (t / 1000));
      add(cpu, name, us.get(name)! / COUNT);
      add(serverCpu, name, sus.get(name)! / COUNT);
    }
    if (natsBench) {
      const s0 = serverCpuUs(server.pid);
      add(rates, "nats-bench", goBench());
      add(serverCpu, "nats-bench", (serverCpuUs(server.pid) - s0) / COUNT);
      const s1 = serverCpuUs(server.pid);
      add(rates, "nats-bench-hdrs", goBench(true));
      add(serverCpu, "nats-bench-hdrs", (serverCpuUs(server.pid) - s1) / COUNT);
    }
    await jsm.streams.purge("INVENTORY");
  }

  const rows = [
    "| side | msgs/s (median) | client CPU us/msg | server CPU us/msg | msgs/s per round |",
    "| --- | ---: | ---: | ---: | --- |",
  ];
  for (const [name, rs] of Object.entries(rates)) {
    const c = cpu[name] ? median(cpu[name]).toFixed(1) : "-";
    const sc = serverCpu[name] ? median(serverCpu[name]).toFixed(1) : "-";
    rows.push(
      `| ${name} | ${Math.round(median(rs))} | ${c} | ${sc} | ${rs.map((x) => Math.round(x)).join(" / ")} |`,
    );
  }
  console.log(rows.join("\n"));
  const ratio = (a: string, b: string) => {
    const xs = rates[a]!;
    const ys = rates[b]!;
    const per = xs.map((x, i) => x / ys[i]!);
    return `${median(per).toFixed(2)}x (per round: ${per.map((x) => x.toFixed(2)).join(" / ")})`;
  };
  console.log(`sdk-fast / raw (same bytes): ${ratio("sdk-fast", "raw")}`);
  console.log(`sdk-pipelined / raw (same bytes): ${ratio("sdk-pipelined", "raw")}`);
  if (natsBench) {
    console.log(`sdk-fast / nats bench js pub async: ${ratio("sdk-fast", "nats-bench")}`);
    console.log(
      `sdk-fast / nats bench js pub async with the SDK's headers and msg ids: ${ratio("sdk-fast", "nats-bench-hdrs")}`,
    );
  }
  await producer.close();
  await rawNc.close();
  await admin.close();
} finally {
  await server.dispose();
}
