import { execFile } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Repository root (this file is interop/dist/test/polyglot.js). */
export const ROOT = resolve(fileURLToPath(import.meta.url), "../../../..");
const TOOLS = process.env.JETKIT_TOOLS ?? join(homedir(), ".cache/jetkit/tools");
/** Shared with scripts/test-polyglot.sh, so a CI run builds the Rust examples once. */
const CARGO_TARGET_DIR = process.env.CARGO_TARGET_DIR ?? join(TOOLS, "cargo-target");
const GO_BIN = join(TOOLS, "interop-bin");

/** The example programs of docs/go.md and docs/rust.md, built. */
export interface Binaries {
  goProducer: string;
  goConsumer: string;
  rustProducer: string;
  rustConsumer: string;
}

/**
 * Builds the Go and Rust example programs (once per test file; both toolchains cache, so a warm
 * build only checks that nothing changed). Go and Rust must be on PATH.
 */
export async function buildExamples(): Promise<Binaries> {
  const opts = { timeout: 600_000, maxBuffer: 16 << 20 };
  await mkdir(GO_BIN, { recursive: true });
  const go = run(
    "go",
    ["build", "-mod=readonly", "-o", `${GO_BIN}/`, "./examples/producer", "./examples/consumer"],
    { ...opts, cwd: join(ROOT, "contracts/go") },
  );
  const rust = run("cargo", ["build", "--locked", "--quiet", "--examples"], {
    ...opts,
    cwd: join(ROOT, "contracts/rust"),
    env: { ...process.env, CARGO_TARGET_DIR },
  });
  // allSettled: never leave one build running after the other failed.
  const failed = (await Promise.allSettled([go, rust])).find((r) => r.status === "rejected");
  if (failed) {
    const e = failed.reason as { stderr?: string; message: string };
    throw new Error(`building the Go/Rust examples failed: ${e.message}\n${e.stderr ?? ""}`);
  }
  const examples = join(CARGO_TARGET_DIR, "debug/examples");
  return {
    goProducer: join(GO_BIN, "producer"),
    goConsumer: join(GO_BIN, "consumer"),
    rustProducer: join(examples, "producer"),
    rustConsumer: join(examples, "consumer"),
  };
}

/** Runs an example program and parses the JSON line it prints per message. */
export async function runExample(
  bin: string,
  args: string[],
  timeoutMs = 60_000,
): Promise<Record<string, unknown>[]> {
  try {
    const { stdout } = await run(bin, args, { timeout: timeoutMs, maxBuffer: 16 << 20 });
    return stdout
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${bin} ${args.join(" ")} failed: ${e.message}\n${e.stderr ?? ""}`);
  }
}

export function fromHex(hex: unknown): Uint8Array {
  if (typeof hex !== "string") throw new Error(`expected a hex string, got ${String(hex)}`);
  return Uint8Array.from(Buffer.from(hex, "hex"));
}

/** Headers as ordered [name, value] pairs, as the Go and Rust examples report them. */
export type HeaderList = [string, string][];
