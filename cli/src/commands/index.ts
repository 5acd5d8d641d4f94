import type { CommandDef } from "../command.js";
import { demoCommands } from "../demo/demo.js";
import { contractsCommands } from "./contracts.js";
import { devCommands } from "./dev.js";
import { dlqCommands } from "./dlq.js";
import { drillCommands } from "./drill.js";
import { eventCommands } from "./events.js";
import { gatewayCommands } from "./gateway.js";
import { generateCommands } from "./generate.js";
import { initCommands } from "./init.js";
import { publishCommands } from "./publish.js";
import { registryCommands } from "./registry.js";
import { streamCommands } from "./streams.js";
import { tailCommands } from "./tail.js";

/** Every command of the CLI, in the order help and docs list them. */
export const commands: CommandDef[] = [
  ...demoCommands,
  ...devCommands,
  ...eventCommands,
  ...streamCommands,
  ...publishCommands,
  ...tailCommands,
  ...dlqCommands,
  ...gatewayCommands,
  ...drillCommands,
  ...contractsCommands,
  ...registryCommands,
  ...generateCommands,
  ...initCommands,
];
