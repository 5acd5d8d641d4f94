#!/usr/bin/env node
import { runCli } from "./cli.js";
import { commands } from "./commands/index.js";

const controller = new AbortController();
let interrupts = 0;
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    interrupts++;
    // First Ctrl-C: the running command cleans up and returns. Second: leave now.
    if (interrupts > 1) process.exit(130);
    controller.abort(new Error(`interrupted by ${sig}`));
  });
}

// A reader that went away (`jetkit events | head -1`) is not an error: stop quietly, as Unix
// tools do, instead of crashing on EPIPE with a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(process.exitCode ?? 0);
    throw err;
  });
}

// A library promise rejected with nobody listening (typically a NATS request cut off while a
// command shuts its connections down) must not crash the CLI with a stack trace after the work is
// done: report it as an error line and fail the exit code instead.
process.on("unhandledRejection", (err: unknown) => {
  if (controller.signal.aborted) return; // interrupted: cleanup noise
  process.stderr.write(`error[JK_CLI_INTERNAL]: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});

const code = await runCli(commands, process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  signal: controller.signal,
});
process.exitCode = process.exitCode || code;
