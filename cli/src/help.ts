import type { CommandDef, OptionDef } from "./command.js";
import { GLOBAL_OPTIONS } from "./options.js";

const flag = (o: OptionDef) =>
  `${o.short ? `-${o.short}, ` : ""}--${o.name}${o.type === "string" ? ` <${o.value ?? "VALUE"}>` : ""}`;

export function usageLine(cmd: CommandDef): string {
  const args = (cmd.args ?? []).map((a) =>
    a.required ? `<${a.name}${a.variadic ? "..." : ""}>` : `[${a.name}${a.variadic ? "..." : ""}]`,
  );
  return ["jetkit", ...cmd.path, ...args, "[options]"].join(" ");
}

function optionLines(options: OptionDef[]): string[] {
  const width = Math.max(...options.map((o) => flag(o).length), 10) + 2;
  return options.map((o) => {
    const extra = [
      o.env ? `env ${o.env}` : "",
      o.default !== undefined && o.default !== false ? `default ${String(o.default)}` : "",
    ].filter(Boolean);
    return `  ${flag(o).padEnd(width)}${o.description}${extra.length ? ` (${extra.join("; ")})` : ""}`;
  });
}

/** `jetkit <command> --help`. */
export function commandHelp(cmd: CommandDef): string {
  const lines = [`${cmd.summary}`, "", `Usage: ${usageLine(cmd)}`];
  if (cmd.description) lines.push("", cmd.description);
  if (cmd.args?.length) {
    lines.push("", "Arguments:");
    for (const a of cmd.args) lines.push(`  ${a.name.padEnd(14)}${a.description}`);
  }
  if (cmd.options?.length) lines.push("", "Options:", ...optionLines(cmd.options));
  lines.push("", "Global options:", ...optionLines(GLOBAL_OPTIONS));
  lines.push("", "Examples:");
  for (const e of cmd.examples) lines.push(`  $ ${e.command}`, `      ${e.description}`);
  lines.push(
    "",
    "Exit codes: 0 ok, 1 failed (check/plan/drill said no), 2 usage, 3 unavailable (NATS, files), 130 interrupted",
  );
  for (const c of cmd.exitCodes ?? []) lines.push(`  ${c.code}: ${c.meaning}`);
  return `${lines.join("\n")}\n`;
}

/** `jetkit --help` (or the help of a command group, e.g. `jetkit dlq`). */
export function overviewHelp(commands: CommandDef[], prefix: string[] = []): string {
  const shown = commands.filter((c) => prefix.every((p, i) => c.path[i] === p));
  const width = Math.max(...shown.map((c) => c.path.join(" ").length)) + 2;
  const lines = [
    prefix.length
      ? `jetkit ${prefix.join(" ")}: commands`
      : "jetkit: event-driven services on NATS JetStream, from protobuf contracts",
    "",
    `Usage: jetkit ${prefix.length ? prefix.join(" ") : "<command>"} ${prefix.length ? "<subcommand>" : "[subcommand]"} [options]`,
    "",
    "Commands:",
    ...shown.map((c) => `  ${c.path.join(" ").padEnd(width)}${c.summary}`),
    "",
    "Run 'jetkit <command> --help' for options and examples, 'jetkit --version' for the version.",
  ];
  return `${lines.join("\n")}\n`;
}

/** The CLI reference (docs/cli.md), generated from the same definitions as --help. */
export function referenceMarkdown(commands: CommandDef[]): string {
  const out = [
    "# jetkit CLI reference",
    "",
    "Generated from the command definitions by `pnpm --filter @jetkit/cli docs` (a test fails when this",
    "page and `--help` drift apart). Every option can also come from its environment variable or from",
    "the config file (`--config`, default `./jetkit.yaml`): flag > environment > config file > default.",
    "",
    "Exit codes: `0` ok, `1` the command ran and the answer is no (check failed, plan refused, drill",
    "invariant broken), `2` usage error, `3` a dependency is unavailable (NATS, a file), `130` interrupted.",
    "",
    "`jetkit --version` prints the version of the installed `@jetkit/cli` (`--version --json`:",
    '`{"name":"@jetkit/cli","version":"..."}`).',
    "",
    "## Global options",
    "",
    "```",
    ...optionLines(GLOBAL_OPTIONS),
    "```",
    "",
  ];
  for (const cmd of commands) {
    out.push(
      `## jetkit ${cmd.path.join(" ")}`,
      "",
      cmd.summary,
      "",
      "```",
      commandHelp(cmd).trimEnd(),
      "```",
      "",
    );
  }
  return out.join("\n");
}
