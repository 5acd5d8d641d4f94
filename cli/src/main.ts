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

const code = await runCli(commands, process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  signal: controller.signal,
});
process.exitCode = code;
