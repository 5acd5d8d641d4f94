import type { CommandDef } from "../command.js";
import { devCommands } from "./dev.js";
import { eventCommands } from "./events.js";
import { streamCommands } from "./streams.js";
import { tailCommands } from "./tail.js";

/** Every command of the CLI, in the order help and docs list them. */
export const commands: CommandDef[] = [...devCommands, ...eventCommands, ...streamCommands, ...tailCommands];
