// Cost of the shared rate limit per request: two SharedRateLimiter instances (two gateway
// replicas) on one nats-server, 16 concurrent callers each, one principal with a limit high enough
// never to refuse, against the per-replica RateLimiter in the same run. Leases of 1 token are the
// worst case with one caller (one KV compare-and-set per request). Not a test: prints medians of several rounds.
//   cd gateway && tsc -b && node dist/bench/rate-limit.js [--runs 5] [--takes 20000]
import { parseArgs } from "node:util";
import { startServer } from "@jetkit/testing";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { pino } from "pino";
import { RateLimiter, SharedRateLimiter } from "../src/rate-limit.js";

const { values } = parseArgs({
  options: { runs: { type: "string", default: "5" }, takes: { type: "string", default: "20000" } },
});
const RUNS = Number(values.runs);
const TAKES = Number(values.takes);
const CALLERS = 16;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

type Limiter = { take(p: string): number | Promise<number> };

/** TAKES takes split over two limiters and CALLERS concurrent callers each; takes per second. */
async function drive(pair: [Limiter, Limiter], principal: string, callers = CALLERS): Promise<number> {
  let next = 0;
  const caller = async (l: Limiter) => {
    while (next < TAKES) {
      next++;
      const w = l.take(principal);
      if ((typeof w === "number" ? w : await w) !== 0) throw new Error("refused: the limit is too low");
    }
  };
  const t0 = performance.now();
  await Promise.all(pair.flatMap((l) => Array.from({ length: callers }, () => caller(l))));
  return TAKES / ((performance.now() - t0) / 1000);
}

const server = await startServer({});
const ncs = [await connect({ servers: server.url }), await connect({ servers: server.url })];
const logger = pino({ level: "warn" });
const rate = { perSecond: 10_000_000, burst: 20_000_000 };
const local: [Limiter, Limiter] = [new RateLimiter(rate), new RateLimiter(rate)];
const shared = async (
  bucket: string,
  leaseTokens?: number,
): Promise<[SharedRateLimiter, SharedRateLimiter]> => {
  const make = async (i: number) =>
    new SharedRateLimiter({
      ...rate,
      js: jetstream(ncs[i]!),
      jsm: await jetstreamManager(ncs[i]!),
      bucket,
      ...(leaseTokens ? { leaseTokens } : {}),
      logger,
    });
  const pair: [SharedRateLimiter, SharedRateLimiter] = [await make(0), await make(1)];
  await pair[0].ensureBucket();
  return pair;
};
// default lease for 100/s: ceil(100 / 10) = 10 tokens
const lease10 = await shared("bench-lease10", 10);
const lease1 = await shared("bench-lease1", 1);
const rows: Record<string, number[]> = {
  local: [],
  "shared, lease 10": [],
  "shared, lease 1, 1 caller": [],
};
const rounds: string[] = [];
for (let r = 0; r < RUNS; r++) {
  const l = await drive(local, `p${r}`);
  const s10 = await drive(lease10, `p${r}`);
  // one caller per replica and leases of one token: every take is a KV round trip (the worst case)
  const s1 = await drive(lease1, `p${r}`, 1);
  rows.local!.push(l);
  rows["shared, lease 10"]!.push(s10);
  rows["shared, lease 1, 1 caller"]!.push(s1);
  rounds.push(
    `round ${r + 1}: lease10/local ${(s10 / l).toFixed(4)} lease1-1caller/local ${(s1 / l).toFixed(4)}`,
  );
}
for (const [name, xs] of Object.entries(rows)) {
  const m = median(xs);
  console.log(
    `${name.padEnd(26)} median ${Math.round(m)} takes/s (${(1e6 / m).toFixed(2)} µs each)  runs ${xs.map(Math.round).join(" ")}`,
  );
}
for (const [name, pair] of [
  ["lease 10", lease10],
  ["lease 1", lease1],
] as const) {
  const st = pair.map((p) => p.stats);
  const leases = st[0]!.leases + st[1]!.leases;
  const conflicts = st[0]!.conflicts + st[1]!.conflicts;
  const localTakes = st[0]!.local + st[1]!.local;
  console.log(
    `${name}: ${leases} KV compare-and-set rounds (${conflicts} conflicts) for ${RUNS * TAKES} takes, ${localTakes} decided without waiting`,
  );
}
console.log(rounds.join("\n"));
for (const nc of ncs) await nc.close();
await server.stop();
