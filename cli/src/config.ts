import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { JetkitError } from "@jetkit/contracts";
import { parse } from "yaml";
import type { OptionDef } from "./command.js";

/** Where `jetkit dev` keeps its state and data: $JETKIT_HOME, else ./.jetkit. */
export function jetkitHome(): string {
  return resolve(process.env.JETKIT_HOME ?? join(process.cwd(), ".jetkit"));
}

/** Reads the config file named by --config / JETKIT_CONFIG, or ./jetkit.yaml when present. */
export function loadConfigFile(explicit: string | undefined): Record<string, unknown> {
  const file = explicit ?? (existsSync("jetkit.yaml") ? "jetkit.yaml" : undefined);
  if (!file) return {};
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new JetkitError(
      "JK_CLI_CONFIG",
      `cannot read config file ${file}: ${(err as Error).message}. Pass an existing file with --config or unset JETKIT_CONFIG.`,
      { cause: err },
    );
  }
  let data: unknown;
  try {
    data = parse(text);
  } catch (err) {
    throw new JetkitError(
      "JK_CLI_CONFIG",
      `config file ${file} is not valid YAML: ${(err as Error).message}`,
      { cause: err },
    );
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== "object" || Array.isArray(data)) {
    throw new JetkitError(
      "JK_CLI_CONFIG",
      `config file ${file} must be a YAML mapping of option names to values (e.g. "servers: nats://127.0.0.1:4222").`,
    );
  }
  return data as Record<string, unknown>;
}

/** Fills options missing from the command line from the environment, then the config file. */
export function applyFallbacks(
  defs: OptionDef[],
  opts: Record<string, string | boolean | string[] | undefined>,
  config: Record<string, unknown>,
): void {
  for (const def of defs) {
    if (opts[def.name] !== undefined) continue;
    const env = def.env ? process.env[def.env] : undefined;
    if (env !== undefined && env !== "") {
      opts[def.name] = def.type === "boolean" ? env === "1" || env === "true" : env;
      continue;
    }
    const key = def.config ?? def.name;
    const fromFile = config[key];
    if (fromFile !== undefined) {
      opts[def.name] =
        def.type === "boolean"
          ? Boolean(fromFile)
          : Array.isArray(fromFile)
            ? fromFile.join(",")
            : String(fromFile);
      continue;
    }
    if (def.default !== undefined) opts[def.name] = def.default;
  }
}
