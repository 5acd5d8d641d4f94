import type { OptionDef } from "./command.js";

/** Options every command accepts. */
export const GLOBAL_OPTIONS: OptionDef[] = [
  {
    name: "servers",
    type: "string",
    short: "s",
    value: "URLS",
    description:
      "NATS server URL(s), comma-separated. Default: the local dev server from 'jetkit dev up', else nats://127.0.0.1:4222",
    env: "JETKIT_SERVERS",
    config: "servers",
  },
  {
    name: "config",
    type: "string",
    value: "FILE",
    description: "Config file (YAML). Default: ./jetkit.yaml when it exists",
    env: "JETKIT_CONFIG",
  },
  { name: "json", type: "boolean", description: "Machine-readable JSON output", env: "JETKIT_JSON" },
  {
    name: "no-color",
    type: "boolean",
    description: "No colours (also when NO_COLOR is set or output is not a TTY)",
  },
  { name: "help", type: "boolean", short: "h", description: "Show help for the command" },
];
