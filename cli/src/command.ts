import type { Writable } from "node:stream";

/** One option of a command. The same definition drives parsing, `--help` and docs/cli.md. */
export interface OptionDef {
  name: string;
  type: "string" | "boolean";
  short?: string;
  description: string;
  /** Environment variable that supplies the value when the flag is absent, e.g. `JETKIT_SERVERS`. */
  env?: string;
  /** Key in the config file (jetkit.yaml) that supplies the value when flag and env are absent. */
  config?: string;
  default?: string | boolean;
  /** Placeholder shown in help, e.g. `URL`. */
  value?: string;
  multiple?: boolean;
}

export interface ArgDef {
  name: string;
  description: string;
  required?: boolean;
  variadic?: boolean;
}

/** A command: `jetkit <path...> [args] [options]`. */
export interface CommandDef {
  path: string[];
  summary: string;
  description?: string;
  args?: ArgDef[];
  options?: OptionDef[];
  examples: { command: string; description: string }[];
  /** Exit codes beyond the common ones, documented in help. */
  exitCodes?: { code: number; meaning: string }[];
  run(ctx: RunContext): Promise<number>;
}

/** What a command gets: parsed values, output streams, terminal facts and an abort signal. */
export interface RunContext {
  args: string[];
  opts: Record<string, string | boolean | string[] | undefined>;
  stdout: Writable;
  stderr: Writable;
  /** True when colours and live progress may be used (a TTY and not --json / NO_COLOR). */
  tty: boolean;
  json: boolean;
  /** Aborted on Ctrl-C (SIGINT) or SIGTERM. */
  signal: AbortSignal;
  /** Progress line on stderr (rewritten in place on a TTY, one line per update otherwise). */
  progress(text: string): void;
  color: Colors;
}

export interface Colors {
  bold(s: string): string;
  dim(s: string): string;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  cyan(s: string): string;
}

/** Exit codes every command shares. */
export const ExitCode = {
  OK: 0,
  /** The command ran and the answer is "no": a check failed, a drill's invariant broke, a plan was refused. */
  FAILED: 1,
  /** Wrong usage: unknown command or option, missing argument, invalid input. */
  USAGE: 2,
  /** A dependency is unavailable: NATS unreachable, file missing. */
  UNAVAILABLE: 3,
  /** Interrupted by Ctrl-C / SIGTERM after cleaning up. */
  INTERRUPTED: 130,
} as const;

export function colors(enabled: boolean): Colors {
  const wrap = (open: number, close: number) => (s: string) =>
    enabled ? `\u001b[${open}m${s}\u001b[${close}m` : s;
  return {
    bold: wrap(1, 22),
    dim: wrap(2, 22),
    red: wrap(31, 39),
    green: wrap(32, 39),
    yellow: wrap(33, 39),
    cyan: wrap(36, 39),
  };
}
