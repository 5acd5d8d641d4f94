import { JetkitError } from "@jetkit/contracts";
import {
  applyStreams,
  formatPlan,
  planStreams,
  planToJson,
  type StreamsOptions,
} from "@jetkit/contracts/streams";
import { type CommandDef, ExitCode, type OptionDef, type RunContext } from "../command.js";
import { CONTRACTS_OPTION, catalogFor } from "../contracts-source.js";
import { connectNats } from "../nats.js";

const options: OptionDef[] = [
  CONTRACTS_OPTION,
  {
    name: "replicas",
    type: "string",
    value: "N",
    description:
      "Replicas for every stream, at most the cluster's JetStream servers; default: what the contracts declare, else min(3, servers in the cluster), 1 on a single server",
    env: "JETKIT_REPLICAS",
  },
  {
    name: "only",
    type: "string",
    value: "NAMES",
    description: "Only these streams, comma-separated (e.g. ORDER,DLQ)",
  },
  {
    name: "allow-destructive",
    type: "boolean",
    description:
      "Let through changes that lose data (storage/retention change = recreate, shrinking limits, removing subjects)",
  },
];

function streamOptions(ctx: RunContext): StreamsOptions {
  const o: StreamsOptions = {};
  if (typeof ctx.opts.replicas === "string") {
    const n = Number(ctx.opts.replicas);
    if (!Number.isInteger(n) || n < 1 || n > 5)
      throw new JetkitError("JK_CLI_USAGE", "--replicas must be an integer from 1 to 5.");
    o.replicas = n;
  }
  if (typeof ctx.opts.only === "string") o.only = ctx.opts.only.split(",").map((s) => s.trim());
  if (ctx.opts["allow-destructive"]) o.allowDestructive = true;
  return o;
}

const plan: CommandDef = {
  path: ["streams", "plan"],
  summary: "Show what 'streams apply' would change to make the server's streams match the contracts",
  options,
  examples: [
    {
      command: "jetkit streams plan",
      description: "+ create, ~ update (field: old -> new), = unchanged, ! refused",
    },
    {
      command: "jetkit streams plan -s nats://n1:4222,nats://n2:4222,nats://n3:4222",
      description: "on a 3-node cluster: + ORDER create (subjects [order.>], file, R3 (cluster of 3 nodes))",
    },
    {
      command: "jetkit streams plan --replicas 1 --json",
      description: "single copies even on a cluster, as JSON",
    },
  ],
  exitCodes: [
    {
      code: 1,
      meaning:
        "the plan holds a refused (destructive) change, or replicas exceed the cluster / cannot be chosen (JK_STREAMS_REPLICAS_EXCEED_CLUSTER, JK_STREAMS_CLUSTER_UNKNOWN)",
    },
  ],
  async run(ctx) {
    const catalog = catalogFor(ctx);
    const nc = await connectNats(ctx);
    try {
      const p = await planStreams(nc, catalog, streamOptions(ctx));
      ctx.stdout.write(ctx.json ? `${JSON.stringify(planToJson(p), null, 2)}\n` : `${formatPlan(p)}\n`);
      return p.refused > 0 ? ExitCode.FAILED : ExitCode.OK;
    } finally {
      await nc.close();
    }
  },
};

const apply: CommandDef = {
  path: ["streams", "apply"],
  summary: "Create or update the contracts' streams on the server, idempotently; refuses destructive changes",
  options,
  examples: [
    {
      command: "jetkit streams apply",
      description: "create missing streams, update changed ones; a second run changes nothing",
    },
    {
      command: "jetkit streams apply --replicas 1",
      description: "single copies even on a cluster (the default there is min(3, servers))",
    },
    {
      command: "jetkit streams apply --only ORDER --allow-destructive",
      description: "apply a change that drops data, knowingly",
    },
  ],
  exitCodes: [
    {
      code: 1,
      meaning:
        "refused, nothing was applied: a destructive change needs --allow-destructive, or replicas exceed the cluster / cannot be chosen",
    },
  ],
  async run(ctx) {
    const catalog = catalogFor(ctx);
    const nc = await connectNats(ctx);
    try {
      const result = await applyStreams(nc, catalog, streamOptions(ctx));
      if (ctx.json)
        ctx.stdout.write(
          `${JSON.stringify({ plan: planToJson(result.plan), applied: result.applied }, null, 2)}\n`,
        );
      else {
        ctx.stdout.write(`${formatPlan(result.plan)}\n`);
        ctx.stdout.write(
          result.applied.length === 0
            ? "nothing to change\n"
            : `applied ${result.applied.length} change(s)\n`,
        );
      }
      return ExitCode.OK;
    } finally {
      await nc.close();
    }
  },
};

export const streamCommands = [plan, apply];
