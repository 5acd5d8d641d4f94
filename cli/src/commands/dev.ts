import { rm } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { JetkitError } from "@jetkit/contracts";
import { startCluster, startServer } from "@jetkit/launcher";
import { type CommandDef, ExitCode } from "../command.js";
import { type DevState, devDir, isAlive, readDevState, writeDevState } from "../dev-state.js";

async function health(url: string): Promise<boolean> {
  try {
    return (await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) })).ok;
  } catch {
    return false;
  }
}

const up: CommandDef = {
  path: ["dev", "up"],
  summary: "Start a local NATS with JetStream (one node, or a 3-node cluster) that outlives the command",
  description:
    "Runs the project's pinned nats-server as background processes on loopback, with data under .jetkit/dev (or $JETKIT_HOME/dev). Later commands find it without --servers. Stop it with 'jetkit dev down'.",
  options: [
    { name: "cluster", type: "boolean", description: "Start a 3-node JetStream cluster instead of one node" },
  ],
  examples: [
    { command: "jetkit dev up", description: "one node; prints its URL" },
    {
      command: "jetkit dev up --cluster && jetkit streams apply --replicas 3",
      description: "an R3 cluster with the contracts' streams",
    },
  ],
  async run(ctx) {
    const existing = readDevState();
    if (existing?.nodes.some((n) => isAlive(n.pid))) {
      ctx.stderr.write(
        `a local NATS is already running (${existing.mode}); 'jetkit dev status' shows it, 'jetkit dev down' stops it.\n`,
      );
      return print(ctx, existing);
    }
    const dir = devDir();
    ctx.progress(`starting ${ctx.opts.cluster ? "a 3-node cluster" : "nats-server"}...`);
    let state: DevState;
    if (ctx.opts.cluster) {
      const cluster = await startCluster({ size: 3, dir: join(dir, "data"), detached: true });
      state = {
        mode: "cluster",
        dir,
        startedAt: new Date().toISOString(),
        nodes: cluster.nodes.map((n) => ({
          name: n.name,
          pid: n.pid!,
          url: n.url,
          monitorUrl: n.monitorUrl,
          dir: n.dir,
        })),
      };
    } else {
      const n = await startServer({ dir: join(dir, "data", "n1"), detached: true });
      state = {
        mode: "single",
        dir,
        startedAt: new Date().toISOString(),
        nodes: [{ name: n.name, pid: n.pid!, url: n.url, monitorUrl: n.monitorUrl, dir: n.dir }],
      };
    }
    await writeDevState(state);
    return print(ctx, state);
  },
};

async function print(ctx: Parameters<CommandDef["run"]>[0], state: DevState): Promise<number> {
  const nodes = await Promise.all(
    state.nodes.map(async (n) => ({ ...n, running: isAlive(n.pid), healthy: await health(n.monitorUrl) })),
  );
  if (ctx.json) {
    ctx.stdout.write(
      `${JSON.stringify({ mode: state.mode, dir: state.dir, startedAt: state.startedAt, nodes }, null, 2)}\n`,
    );
  } else {
    ctx.stdout.write(`${ctx.color.bold(`local NATS (${state.mode})`)}  data: ${state.dir}\n`);
    for (const n of nodes) {
      const status = n.healthy
        ? ctx.color.green("healthy")
        : n.running
          ? ctx.color.yellow("running, not healthy")
          : ctx.color.red("stopped");
      ctx.stdout.write(`  ${n.name}  ${n.url}  monitor ${n.monitorUrl}  pid ${n.pid}  ${status}\n`);
    }
    ctx.stdout.write(`servers: ${state.nodes.map((n) => n.url).join(",")}\n`);
  }
  return nodes.every((n) => n.healthy) ? ExitCode.OK : ExitCode.FAILED;
}

const status: CommandDef = {
  path: ["dev", "status"],
  summary: "Show the local NATS started by 'jetkit dev up': URLs, pids, health",
  examples: [
    { command: "jetkit dev status --json", description: "for scripts: exit 0 when every node is healthy" },
  ],
  exitCodes: [{ code: 3, meaning: "no local NATS was started" }],
  async run(ctx) {
    const state = readDevState();
    if (!state) {
      throw new JetkitError(
        "JK_CLI_NATS_UNAVAILABLE",
        "no local NATS is running here; start one with 'jetkit dev up'.",
      );
    }
    return print(ctx, state);
  },
};

const down: CommandDef = {
  path: ["dev", "down"],
  summary: "Stop the local NATS started by 'jetkit dev up' and delete its data",
  options: [
    { name: "keep-data", type: "boolean", description: "Keep the JetStream data for the next 'dev up'" },
  ],
  examples: [{ command: "jetkit dev down", description: "stop every node and remove .jetkit/dev" }],
  async run(ctx) {
    const state = readDevState();
    if (!state) {
      ctx.stderr.write("no local NATS to stop.\n");
      return ExitCode.OK;
    }
    for (const n of state.nodes) {
      if (isAlive(n.pid)) process.kill(n.pid, "SIGTERM");
    }
    const deadline = Date.now() + 10_000;
    while (state.nodes.some((n) => isAlive(n.pid)) && Date.now() < deadline) await delay(50);
    for (const n of state.nodes) if (isAlive(n.pid)) process.kill(n.pid, "SIGKILL");
    if (!ctx.opts["keep-data"]) await rm(state.dir, { recursive: true, force: true });
    else await rm(join(state.dir, "state.json"), { force: true });
    ctx.stdout.write(
      ctx.json
        ? `${JSON.stringify({ stopped: state.nodes.map((n) => n.name) })}\n`
        : `stopped ${state.nodes.length} node(s)\n`,
    );
    return ExitCode.OK;
  },
};

export const devCommands = [up, status, down];
