import { parseArgs } from "node:util";
import { findJetkitError } from "@jetkit/contracts";
import { type CommandDef, colors, ExitCode, type RunContext } from "./command.js";
import { applyFallbacks, loadConfigFile } from "./config.js";
import { commandHelp, overviewHelp } from "./help.js";
import { GLOBAL_OPTIONS } from "./options.js";
import { cliPackage } from "./version.js";

export interface CliIO {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  signal?: AbortSignal;
}

/** Finds the longest command path that prefixes argv. */
function match(
  commands: CommandDef[],
  argv: string[],
): { cmd?: CommandDef; rest: string[]; prefix: string[] } {
  let best: CommandDef | undefined;
  for (const c of commands) {
    if (c.path.every((p, i) => argv[i] === p) && (!best || c.path.length > best.path.length)) best = c;
  }
  if (best) return { cmd: best, rest: argv.slice(best.path.length), prefix: best.path };
  const group = argv[0] && commands.some((c) => c.path[0] === argv[0]) ? [argv[0]] : [];
  return { rest: argv.slice(group.length), prefix: group };
}

/** Runs the CLI with `argv` (without node and script) and returns the exit code. */
export async function runCli(commands: CommandDef[], argv: string[], io: CliIO): Promise<number> {
  if (argv[0] === "--version" && argv.slice(1).every((a) => a === "--json")) {
    const { name, version } = cliPackage();
    io.stdout.write(argv.includes("--json") ? `${JSON.stringify({ name, version })}\n` : `${version}\n`);
    return ExitCode.OK;
  }
  const { cmd, rest, prefix } = match(commands, argv);
  const wantsHelp = argv.includes("--help") || argv.includes("-h");
  if (!cmd) {
    if (argv.length === 0 || wantsHelp || (prefix.length > 0 && rest.length === 0)) {
      io.stdout.write(overviewHelp(commands, prefix));
      return argv.length === 0 || wantsHelp ? ExitCode.OK : ExitCode.USAGE;
    }
    io.stderr.write(
      `error[JK_CLI_USAGE]: unknown command "${argv.filter((a) => !a.startsWith("-")).join(" ")}". Run 'jetkit --help' for the list of commands.\n`,
    );
    return ExitCode.USAGE;
  }
  if (wantsHelp) {
    io.stdout.write(commandHelp(cmd));
    return ExitCode.OK;
  }
  const defs = [...GLOBAL_OPTIONS, ...(cmd.options ?? [])];
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: rest,
      allowPositionals: true,
      strict: true,
      options: Object.fromEntries(
        defs.map((d) => [
          d.name,
          { type: d.type, ...(d.short ? { short: d.short } : {}), ...(d.multiple ? { multiple: true } : {}) },
        ]),
      ),
    });
  } catch (err) {
    io.stderr.write(
      `error[JK_CLI_USAGE]: ${(err as Error).message}. Run 'jetkit ${cmd.path.join(" ")} --help'.\n`,
    );
    return ExitCode.USAGE;
  }
  const positionals = parsed.positionals;
  const required = (cmd.args ?? []).filter((a) => a.required);
  if (positionals.length < required.length) {
    const missing = required.slice(positionals.length).map((a) => `<${a.name}>`);
    io.stderr.write(
      `error[JK_CLI_USAGE]: missing ${missing.join(" ")}. Usage: jetkit ${cmd.path.join(" ")} ${(cmd.args ?? []).map((a) => `<${a.name}>`).join(" ")}. Run with --help for examples.\n`,
    );
    return ExitCode.USAGE;
  }
  if (!(cmd.args ?? []).some((a) => a.variadic) && positionals.length > (cmd.args ?? []).length) {
    io.stderr.write(
      `error[JK_CLI_USAGE]: unexpected argument "${positionals[(cmd.args ?? []).length]}". Run 'jetkit ${cmd.path.join(" ")} --help'.\n`,
    );
    return ExitCode.USAGE;
  }
  const opts = parsed.values as Record<string, string | boolean | string[] | undefined>;
  try {
    applyFallbacks(
      defs,
      opts,
      loadConfigFile((opts.config as string | undefined) ?? process.env.JETKIT_CONFIG),
    );
  } catch (err) {
    return reportError(err, io);
  }
  const json = opts.json === true;
  const tty = Boolean(io.stdout.isTTY) && !json && !opts["no-color"] && !process.env.NO_COLOR;
  const errTty = Boolean(io.stderr.isTTY) && !process.env.NO_COLOR && !opts["no-color"];
  let lastProgress = "";
  const ctx: RunContext = {
    args: positionals,
    opts,
    stdout: io.stdout as RunContext["stdout"],
    stderr: io.stderr as RunContext["stderr"],
    tty,
    json,
    signal: io.signal ?? new AbortController().signal,
    color: colors(tty),
    progress(text: string) {
      if (text === lastProgress) return;
      lastProgress = text;
      if (errTty) io.stderr.write(`\r\u001b[2K${text}`);
      else io.stderr.write(`${text}\n`);
    },
  };
  try {
    const code = await cmd.run(ctx);
    if (errTty && lastProgress) io.stderr.write("\r\u001b[2K");
    return code;
  } catch (err) {
    if (errTty && lastProgress) io.stderr.write("\n");
    if (ctx.signal.aborted) return ExitCode.INTERRUPTED;
    return reportError(err, io);
  }
}

/** Prints an error as `error[CODE]: message` (and JSON with --json) and picks the exit code. */
export function reportError(err: unknown, io: CliIO): number {
  const found = findJetkitError(err);
  const code = found?.code ?? codeOf(err);
  const message = found?.message ?? (err instanceof Error ? err.message : String(err));
  io.stderr.write(`error[${code}]: ${message}\n`);
  if (code === "JK_CLI_USAGE" || code === "JK_CLI_CONFIG") return ExitCode.USAGE;
  if (
    code === "JK_CLI_NATS_UNAVAILABLE" ||
    code === "JK_REGISTRY_UNREACHABLE" ||
    code === "JK_CLI_FILE" ||
    code === "JK_NATS_SERVER_MISSING"
  )
    return ExitCode.UNAVAILABLE;
  return ExitCode.FAILED;
}

function codeOf(err: unknown): string {
  const c = (err as { code?: unknown })?.code;
  return typeof c === "string" && c.startsWith("JK_") ? c : "JK_CLI_INTERNAL";
}
