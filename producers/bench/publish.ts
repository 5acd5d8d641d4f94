/**
 * Publish benchmark (prints figures; not a test). SDK `producer.publish` (validation + tracing
 * on, a real tracer provider exporting to a no-op exporter) against raw `@nats-io/jetstream`
 * `js.publish` of the same 1 KiB payload to the same file-storage stream, in the same run. Two raw
 * baselines: `raw` sends the payload with only a msgID; `raw-hdrs` sends the same bytes the SDK
 * stores (payload plus the same CloudEvents header block, fresh ids per message), built up front.
 *
 *   node producers/dist/bench/publish.js [--rounds 7] [--sequential 2000] [--pipelined 20000] [--window 256]
 *     [--propagator w3c|composite]   the app's registered propagator (composite: W3C trace context,
 *                                    W3C baggage and B3, so the SDK also injects a b3 header)
 *     [--dataschema on]              adds the side `sdk-schema`: a producer with registryVersion (ce-dataschema),
 *                                    and its throughput ratio against `sdk` measured in the same rounds
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { eventHeaders, uuidv7 } from "@jetkit/contracts";
import { CustomerCheckoutInitiated } from "@jetkit/contracts/gen/shop/customer/v1/events";
import { startServer } from "@jetkit/testing";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, headers as natsHeaders } from "@nats-io/transport-node";
import { context, metrics, propagation, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from "@opentelemetry/core";
import { B3Propagator } from "@opentelemetry/propagator-b3";
import { MeterProvider, MetricReader } from "@opentelemetry/sdk-metrics";
import { BasicTracerProvider, BatchSpanProcessor, type SpanExporter } from "@opentelemetry/sdk-trace-base";
import { pino } from "pino";
import { randomCheckout } from "../services/checkout.js";
import { createProducer } from "../src/index.js";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "7" },
    sequential: { type: "string", default: "2000" },
    pipelined: { type: "string", default: "20000" },
    window: { type: "string", default: "256" },
    tracing: { type: "string", default: "on" },
    validate: { type: "string", default: "on" },
    "raw-traces": { type: "string", default: "off" },
    propagator: { type: "string", default: "w3c" },
    dataschema: { type: "string", default: "off" },
  },
});
const ROUNDS = Number(values.rounds);
const SEQ = Number(values.sequential);
const PIPE = Number(values.pipelined);
const WINDOW = Number(values.window);

/** An exporter that drops spans: tracing cost without I/O. */
const dropSpans: SpanExporter = {
  export: (_spans, done) => done({ code: 0 }),
  shutdown: async () => {},
};
class IdleReader extends MetricReader {
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}
if (values.tracing === "on") {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(
    values.propagator === "composite"
      ? new CompositePropagator({
          propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator(), new B3Propagator()],
        })
      : new W3CTraceContextPropagator(),
  );
  trace.setGlobalTracerProvider(
    new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(dropSpans, { maxQueueSize: 65536 })] }),
  );
  metrics.setGlobalMeterProvider(new MeterProvider({ readers: [new IdleReader()] }));
}

/** A checkout event whose encoding is about 1 KiB. */
function oneKiBEvent(): CustomerCheckoutInitiated {
  const e = randomCheckout("c0c0c0c0-0000-4000-8000-000000000001", () => 0.3);
  while (CustomerCheckoutInitiated.encode(e).finish().length < 1000) {
    e.items.push({
      sku: `SKU-${e.items.length}-PADDING`,
      quantity: 1,
      unitPrice: { currencyCode: "EUR", units: 5, nanos: 0 },
    });
  }
  return e;
}

type Send = (i: number) => Promise<unknown>;

/** Ack latencies (ms) and busy time of one side. */
interface Tally {
  lat: number[];
  ms: number;
  count: number;
  /** CPU time of this (client) process, microseconds. */
  cpuUs: number;
  /** CPU time of the nats-server process (Linux /proc; NaN elsewhere), microseconds. */
  serverUs: number;
}

/** CPU time the nats-server process has used so far, microseconds (clock ticks of 10 ms). */
function serverCpuUs(): number {
  try {
    const stat = readFileSync(`/proc/${server.pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return Number.NaN;
  }
}

/** Runs `count` sends with at most `window` outstanding, adding latencies and time to `t`. */
async function drive(count: number, window: number, send: Send, t: Tally, base: number): Promise<void> {
  let next = 0;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const s0 = serverCpuUs();
  const worker = async () => {
    while (next < count) {
      const i = base + next++;
      const s = performance.now();
      await send(i);
      t.lat.push(performance.now() - s);
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, count) }, worker));
  const cpu = process.cpuUsage(c0);
  t.cpuUs += cpu.user + cpu.system;
  t.serverUs += serverCpuUs() - s0;
  t.ms += performance.now() - t0;
  t.count += count;
}

/**
 * One round of a mode: SDK and raw alternate in blocks so that load from other processes on a
 * shared machine falls on both sides alike. Returns msgs/s and latency percentiles per side.
 */
async function round(total: number, window: number, block: number, sides: [string, Send][]) {
  const tallies = new Map(
    sides.map(([name]) => [name, { lat: [], ms: 0, count: 0, cpuUs: 0, serverUs: 0 } as Tally]),
  );
  for (let done = 0; done < total; done += block) {
    for (const [name, send] of sides)
      await drive(Math.min(block, total - done), window, send, tallies.get(name)!, done);
  }
  return new Map(
    [...tallies].map(([name, t]) => [
      name,
      {
        rate: t.count / (t.ms / 1000),
        p50: pct(t.lat, 50),
        p99: pct(t.lat, 99),
        cpu: t.cpuUs / t.count,
        server: t.serverUs / t.count,
      },
    ]),
  );
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const median = (xs: number[]) => pct(xs, 50);

const server = await startServer();
try {
  const admin = await connect({ servers: server.url });
  const jsm = await jetstreamManager(admin);
  await jsm.streams.add({
    name: "CUSTOMER",
    subjects: ["customer.>"],
    storage: "file" as never,
    duplicate_window: 120e9,
  });
  // the baseline gets the same connection settings as the SDK, so only the SDK's own work differs
  const rawNc = await connect({ servers: server.url, noAsyncTraces: values["raw-traces"] !== "on" });
  const js = jetstream(rawNc);
  const producer = await createProducer({
    servers: server.url,
    name: "bench",
    logger: pino({ level: "warn" }),
    maxInFlight: WINDOW,
    validate: values.validate === "on",
  });
  const stamping =
    values.dataschema === "on"
      ? await createProducer({
          servers: server.url,
          name: "bench",
          logger: pino({ level: "warn" }),
          maxInFlight: WINDOW,
          validate: values.validate === "on",
          registryVersion: 42,
        })
      : undefined;
  const event = oneKiBEvent();
  const payload = CustomerCheckoutInitiated.encode(event).finish();
  const subject = "customer.checkout.initiated";
  let run = 0;
  const sdk: Send = () => producer.publish(CustomerCheckoutInitiated, event);
  const raw: Send = (i) => js.publish(subject, payload, { msgID: `raw-${run}-${i}-${Math.random()}` });
  // the header block the SDK writes (same names, sizes and order), without the SDK's work per message
  const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  const rawHdrs: Send = () => {
    const id = uuidv7();
    const h = natsHeaders();
    for (const [k, v] of eventHeaders({
      id,
      type: CustomerCheckoutInitiated.$type,
      source: "/jetkit/bench",
      time: new Date(),
      partitionKey: event.customerId,
      correlationId: id,
      traceparent,
    }))
      h.append(k, v);
    return js.publish(subject, payload, { headers: h });
  };

  console.log(
    `payload ${payload.length} B, ${ROUNDS} rounds, sequential ${SEQ} msgs, pipelined ${PIPE} msgs (window ${WINDOW}), ` +
      `validation ${values.validate}, tracing ${values.tracing} (propagator ${values.propagator}), nats-server ${rawNc.info?.version}, node ${process.version}`,
  );
  // warm-up: JIT, connections, stream files
  const all: [string, Send][] = [
    ["sdk", sdk],
    ["raw", raw],
    ["raw-hdrs", rawHdrs],
    ...(stamping
      ? [["sdk-schema", () => stamping.publish(CustomerCheckoutInitiated, event)] as [string, Send]]
      : []),
  ];
  await round(2000, 32, 500, all);

  const results: Record<
    string,
    { rate: number[]; p50: number[]; p99: number[]; cpu: number[]; server: number[] }
  > = {};
  for (let r = 0; r < ROUNDS; r++) {
    run = r;
    // rotate which side goes first in each block
    const sides = [...all.slice(r % all.length), ...all.slice(0, r % all.length)];
    for (const [mode, total, window, block] of [
      ["sequential", SEQ, 1, 100],
      ["pipelined", PIPE, WINDOW, 2000],
    ] as const) {
      for (const [side, m] of await round(total, window, block, sides)) {
        const key = `${mode} ${side}`;
        results[key] ??= { rate: [], p50: [], p99: [], cpu: [], server: [] };
        results[key].rate.push(m.rate);
        results[key].p50.push(m.p50);
        results[key].p99.push(m.p99);
        results[key].cpu.push(m.cpu);
        results[key].server.push(m.server);
      }
    }
    await jsm.streams.purge("CUSTOMER");
  }

  const rows: string[] = [
    "| mode | side | msgs/s (median) | p50 ack ms | p99 ack ms | client CPU us/msg | server CPU us/msg |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const [name, r] of Object.entries(results)) {
    const [mode, side] = name.split(" ");
    rows.push(
      `| ${mode} | ${side} | ${Math.round(median(r.rate))} | ${median(r.p50).toFixed(3)} | ${median(r.p99).toFixed(3)} | ${median(r.cpu).toFixed(1)} | ${median(r.server).toFixed(1)} |`,
    );
  }
  console.log(rows.join("\n"));
  for (const mode of ["sequential", "pipelined"]) {
    const sdk = results[`${mode} sdk`]!.rate;
    const raw = results[`${mode} raw`]!.rate;
    const hdrs = results[`${mode} raw-hdrs`]!.rate;
    // The sides of a round ran interleaved in blocks, so a round's ratio is free of the
    // machine's slow and fast periods; the median of those is the figure to read.
    const perRound = (base: number[]) => median(sdk.map((x, i) => x / base[i]!));
    console.log(
      `${mode}: SDK/raw throughput ratio ${perRound(raw).toFixed(2)}x (payload only), ` +
        `${perRound(hdrs).toFixed(2)}x (same bytes: payload + headers); median of per-round ratios, ` +
        `ratio of medians ${(median(sdk) / median(raw)).toFixed(2)}x / ${(median(sdk) / median(hdrs)).toFixed(2)}x`,
    );
  }
  if (stamping) {
    for (const mode of ["sequential", "pipelined"]) {
      const sdk = results[`${mode} sdk`]!.rate;
      const stamped = results[`${mode} sdk-schema`]!.rate;
      console.log(
        `${mode}: SDK with ce-dataschema / SDK throughput ratio ${median(stamped.map((x, i) => x / sdk[i]!)).toFixed(3)}x (median of per-round ratios)`,
      );
    }
    await stamping.close();
  }
  await producer.close();
  await rawNc.close();
  await admin.close();
} finally {
  await server.dispose();
}
