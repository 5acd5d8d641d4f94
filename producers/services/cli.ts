import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { type Logger, pino } from "pino";
import type { KeyDistribution } from "./keys.js";
import type { WorkloadSummary } from "./workload.js";

/** Options read from a service's command line. */
export interface ServiceArgs {
  servers: string[];
  ratePerSec: number;
  durationMs: number;
  keys: number;
  distribution: KeyDistribution;
  logger: Logger;
}

const USAGE = `options:
  --servers <urls>       NATS URL(s), comma-separated (default nats://127.0.0.1:4222)
  --rate <n>             events per second (default 10)
  --duration <d>         run time: 500ms, 10s, 2m (default 10s)
  --keys <n>             distinct keys (default 100)
  --distribution <d>     uniform | zipf (default uniform)
  --log-level <level>    pino level (default info)`;

/** Parses `10s`, `500ms`, `2m`, `1h` or a plain number of ms. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new Error(`invalid duration "${text}": use e.g. 500ms, 10s, 2m`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? "ms") as "ms" | "s" | "m" | "h"];
  return Math.round(Number(m[1]) * unit);
}

/** Reads the common service options from `argv` (without node and the script). */
export function parseServiceArgs(argv: string[]): ServiceArgs {
  const { values } = parseArgs({
    args: argv,
    options: {
      servers: { type: "string", default: "nats://127.0.0.1:4222" },
      rate: { type: "string", default: "10" },
      duration: { type: "string", default: "10s" },
      keys: { type: "string", default: "100" },
      distribution: { type: "string", default: "uniform" },
      "log-level": { type: "string", default: "info" },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values.help) throw new Error(USAGE);
  const distribution = values.distribution;
  if (distribution !== "uniform" && distribution !== "zipf") {
    throw new Error(`--distribution must be uniform or zipf, not "${distribution}"`);
  }
  const ratePerSec = Number(values.rate);
  const keys = Number(values.keys);
  if (!(ratePerSec > 0) || !(keys >= 1)) throw new Error("--rate and --keys must be positive numbers");
  return {
    servers: values.servers.split(",").map((s) => s.trim()),
    ratePerSec,
    durationMs: parseDuration(values.duration),
    keys,
    distribution,
    logger: pino({ level: values["log-level"] }),
  };
}

/**
 * Runs `main` when the module at `moduleUrl` is the process's entry script: Ctrl-C / SIGTERM stop
 * the run gracefully, the summary is printed as JSON on stdout.
 */
export async function runCli(
  moduleUrl: string,
  name: string,
  main: (argv: string[], signal: AbortSignal) => Promise<WorkloadSummary>,
): Promise<void> {
  const entry = process.argv[1];
  if (!entry) return;
  let self: string;
  try {
    self = realpathSync(fileURLToPath(moduleUrl));
    if (realpathSync(entry) !== self) return;
  } catch {
    return;
  }
  const stop = new AbortController();
  process.once("SIGINT", () => stop.abort());
  process.once("SIGTERM", () => stop.abort());
  try {
    const summary = await main(process.argv.slice(2), stop.signal);
    process.stdout.write(`${JSON.stringify({ service: name, ...summary })}\n`);
  } catch (err) {
    process.stderr.write(`${name}: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
