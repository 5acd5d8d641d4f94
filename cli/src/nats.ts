import { JetkitError } from "@jetkit/contracts";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { RunContext } from "./command.js";
import { isAlive, readDevState } from "./dev-state.js";

/** The servers to use: --servers / JETKIT_SERVERS / config, else the running dev server, else :4222. */
export function serversOf(ctx: RunContext): string[] {
  const explicit = ctx.opts.servers;
  if (typeof explicit === "string" && explicit)
    return explicit
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
  const dev = readDevState();
  if (dev?.nodes.some((n) => isAlive(n.pid))) return dev.nodes.map((n) => n.url);
  return ["nats://127.0.0.1:4222"];
}

/** Connects to NATS or throws `JK_CLI_NATS_UNAVAILABLE` saying how to start one. */
export async function connectNats(ctx: RunContext, name = "jetkit-cli"): Promise<NatsConnection> {
  const servers = serversOf(ctx);
  try {
    return await connect({ servers, name, timeout: 5000 });
  } catch (err) {
    throw new JetkitError(
      "JK_CLI_NATS_UNAVAILABLE",
      `cannot connect to NATS at ${servers.join(", ")}: ${(err as Error).message}. Start a local server with 'jetkit dev up' or pass --servers.`,
      { cause: err },
    );
  }
}
