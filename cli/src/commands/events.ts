import { type CommandDef, ExitCode } from "../command.js";
import { CONTRACTS_OPTION, catalogFor } from "../contracts-source.js";

const list: CommandDef = {
  path: ["events"],
  summary: "List the events of the contracts: subject, message type, stream, partition key",
  options: [CONTRACTS_OPTION],
  examples: [
    { command: "jetkit events", description: "the catalog as a table" },
    { command: "jetkit events --json | jq '.[].subject'", description: "every subject, for scripts" },
  ],
  async run(ctx) {
    const catalog = catalogFor(ctx);
    const rows = catalog.events.map((e) => ({
      subject: e.subject,
      type: e.type,
      stream: e.stream,
      partitionKey: e.partitionKey ?? null,
      description: e.description,
    }));
    if (ctx.json) {
      ctx.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      return ExitCode.OK;
    }
    const w = Math.max(...rows.map((r) => r.subject.length)) + 2;
    const t = Math.max(...rows.map((r) => r.type.length)) + 2;
    ctx.stdout.write(`${ctx.color.bold(`${"SUBJECT".padEnd(w)}${"TYPE".padEnd(t)}STREAM     KEY`)}\n`);
    for (const r of rows) {
      ctx.stdout.write(
        `${r.subject.padEnd(w)}${ctx.color.dim(r.type.padEnd(t))}${r.stream.padEnd(11)}${r.partitionKey ?? "-"}\n`,
      );
    }
    return ExitCode.OK;
  },
};

export const eventCommands = [list];
