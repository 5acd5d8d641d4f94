import { listDeadLetters, purgeDeadLetters, replayDeadLetters, showDeadLetter } from "@jetkit/consumers";
import { type FailureClass, FailureClasses, JetkitError } from "@jetkit/contracts";
import { type CommandDef, ExitCode, type RunContext } from "../command.js";
import { CONTRACTS_OPTION, catalogFor } from "../contracts-source.js";
import { connectNats } from "../nats.js";
import { RegistryResolver } from "../registry/index.js";

function seqsOf(ctx: RunContext): number[] {
  const seqs = ctx.args.map(Number);
  const bad = ctx.args.find((_, i) => !Number.isInteger(seqs[i]) || seqs[i]! < 1);
  if (bad !== undefined)
    throw new JetkitError("JK_CLI_USAGE", `"${bad}" is not a DLQ sequence; 'jetkit dlq list' shows them.`);
  return seqs;
}

const list: CommandDef = {
  path: ["dlq", "list"],
  summary: "List dead letters: original subject, failure class, reason, deliveries",
  options: [
    CONTRACTS_OPTION,
    {
      name: "subject",
      type: "string",
      value: "PATTERN",
      description: "Only dead letters of this original subject (wildcards allowed)",
    },
    {
      name: "class",
      type: "string",
      value: "CLASS",
      description: `Only this failure class: ${FailureClasses.join(", ")}`,
    },
    { name: "limit", type: "string", value: "N", description: "At most N (default 100)" },
  ],
  examples: [
    { command: "jetkit dlq list", description: "every dead letter, oldest first" },
    { command: "jetkit dlq list --class contract_violation --json", description: "for scripts" },
  ],
  async run(ctx) {
    const cls = ctx.opts.class;
    if (typeof cls === "string" && !(FailureClasses as readonly string[]).includes(cls)) {
      throw new JetkitError("JK_CLI_USAGE", `--class must be one of ${FailureClasses.join(", ")}.`);
    }
    const nc = await connectNats(ctx);
    try {
      const records = await listDeadLetters({
        connection: nc,
        catalog: catalogFor(ctx),
        ...(typeof ctx.opts.subject === "string" ? { subject: ctx.opts.subject } : {}),
        ...(typeof cls === "string" ? { failureClass: cls as FailureClass } : {}),
        limit: typeof ctx.opts.limit === "string" ? Number(ctx.opts.limit) : 100,
      });
      if (ctx.json) ctx.stdout.write(`${JSON.stringify(records, null, 2)}\n`);
      else if (records.length === 0) ctx.stdout.write("no dead letters\n");
      else {
        for (const r of records) {
          ctx.stdout.write(
            `${ctx.color.bold(`#${r.seq}`)} ${r.originalSubject} ${ctx.color.dim(`${r.originalStream}#${r.originalSeq}`)} ${ctx.color.yellow(String(r.failureClass))} after ${r.deliveries} deliver${r.deliveries === 1 ? "y" : "ies"} (${r.consumer})\n    ${r.reason}\n`,
          );
        }
      }
      return ExitCode.OK;
    } finally {
      await nc.close();
    }
  },
};

const show: CommandDef = {
  path: ["dlq", "show"],
  summary: "Show one dead letter: headers and the event decoded by its contract",
  args: [{ name: "seq", description: "DLQ sequence (from 'dlq list')", required: true }],
  options: [CONTRACTS_OPTION],
  examples: [{ command: "jetkit dlq show 12", description: "headers, failure and decoded event" }],
  async run(ctx) {
    const [seq] = seqsOf(ctx);
    const nc = await connectNats(ctx);
    try {
      const catalog = catalogFor(ctx);
      let r = await showDeadLetter({ connection: nc, catalog }, seq!);
      // A type the catalog does not know: decoded by the registry version its ce-dataschema names.
      const dataschema = r.headers["ce-dataschema"]?.[0];
      if (r.event === undefined && dataschema) {
        try {
          const found = await new RegistryResolver(nc).resolve(decodeURIComponent(dataschema));
          if (found)
            r = {
              ...(await showDeadLetter({ connection: nc, catalog: found.catalog }, seq!)),
              registryVersion: found.version,
            } as typeof r;
        } catch (err) {
          r = { ...r, decodeError: `${r.decodeError ?? "not decoded"}; registry: ${(err as Error).message}` };
        }
      }
      ctx.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      return ExitCode.OK;
    } finally {
      await nc.close();
    }
  },
};

const replay: CommandDef = {
  path: ["dlq", "replay"],
  summary:
    "Publish dead letters again to their original subject (same event id, traceable to the dead letter)",
  args: [{ name: "seq", description: "DLQ sequence(s)", required: true, variadic: true }],
  examples: [
    {
      command: "jetkit dlq replay 12 13",
      description: "replays two dead letters; they stay in the DLQ until purged",
    },
  ],
  async run(ctx) {
    const seqs = seqsOf(ctx);
    const nc = await connectNats(ctx);
    try {
      const results = await replayDeadLetters({ connection: nc, seqs });
      if (ctx.json) ctx.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
      else
        for (const r of results)
          ctx.stdout.write(
            `replayed DLQ#${r.dlqSeq} -> ${r.subject} ${r.stream}#${r.seq} (event ${r.eventId})\n`,
          );
      return ExitCode.OK;
    } finally {
      await nc.close();
    }
  },
};

const purge: CommandDef = {
  path: ["dlq", "purge"],
  summary: "Delete dead letters (all, some sequences, or one subject); needs --confirm DLQ",
  args: [
    {
      name: "seq",
      description: "DLQ sequence(s); none means every dead letter (of --subject)",
      variadic: true,
    },
  ],
  options: [
    {
      name: "subject",
      type: "string",
      value: "PATTERN",
      description: "Only dead letters of this original subject",
    },
    {
      name: "confirm",
      type: "string",
      value: "STREAM",
      description: "The DLQ stream's name (DLQ): purging cannot be undone",
    },
  ],
  examples: [
    { command: "jetkit dlq purge --confirm DLQ", description: "delete every dead letter" },
    { command: "jetkit dlq purge 12 --confirm DLQ", description: "delete one" },
  ],
  exitCodes: [{ code: 1, meaning: "refused without --confirm" }],
  async run(ctx) {
    const seqs = ctx.args.length ? seqsOf(ctx) : undefined;
    const nc = await connectNats(ctx);
    try {
      const r = await purgeDeadLetters({
        connection: nc,
        ...(typeof ctx.opts.confirm === "string" ? { confirm: ctx.opts.confirm } : {}),
        ...(seqs ? { seqs } : {}),
        ...(typeof ctx.opts.subject === "string" ? { subject: ctx.opts.subject } : {}),
      });
      ctx.stdout.write(ctx.json ? `${JSON.stringify(r)}\n` : `purged ${r.purged} dead letter(s)\n`);
      return ExitCode.OK;
    } finally {
      await nc.close();
    }
  },
};

export const dlqCommands = [list, show, replay, purge];
