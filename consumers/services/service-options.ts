import type { Logger } from "pino";
import type { Consumer } from "../src/index.js";

/** Options shared by the example consumer services. */
export interface ServiceOptions {
  /** NATS server URL(s). */
  servers: string | string[];
  /** Durable consumer name; processes with the same name share the work. */
  durable?: string;
  /** Handlers at once. Default: 8. */
  concurrency?: number;
  /** Stops the service when aborted. */
  signal?: AbortSignal;
  logger?: Logger;
  /** How long `stop` waits for in-flight handlers, in ms. Default: 5000. */
  stopTimeoutMs?: number;
}

/** A running example service. */
export interface RunningService {
  readonly consumer: Consumer;
  /** Events handled so far by this process. */
  handled(): number;
  /** Stops consuming (also done when the signal aborts); resolves once drained. */
  stop(): Promise<void>;
  /** Resolves when the service has stopped. */
  readonly stopped: Promise<void>;
}

/**
 * Wires `stop` to the abort signal and returns the service handle. `cleanup` (closing the
 * service's own producer or connection) runs inside `stop`, after the consumer has drained, so
 * `stop()` resolves only when everything the service opened is closed, and its errors are caught.
 */
export function running(
  consumer: Consumer,
  o: ServiceOptions,
  handled: () => number,
  cleanup?: () => Promise<unknown>,
): RunningService {
  let stopping: Promise<void> | undefined;
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((r) => {
    resolveStopped = r;
  });
  const stop = () => {
    stopping ??= consumer
      .stop({ timeoutMs: o.stopTimeoutMs ?? 5000 })
      .then(() => cleanup?.())
      .then(
        () => undefined,
        (err: unknown) => o.logger?.warn({ err }, "service stopped with an error"),
      )
      .finally(resolveStopped);
    return stopping;
  };
  if (o.signal?.aborted) void stop();
  o.signal?.addEventListener("abort", () => void stop(), { once: true });
  return { consumer, handled, stop, stopped };
}

/** Runs a service from the command line: `--servers <url>` (or $NATS_URL), stops on SIGINT/SIGTERM. */
export async function runFromCli(run: (o: ServiceOptions) => Promise<RunningService>): Promise<void> {
  const args = process.argv.slice(2);
  const at = args.indexOf("--servers");
  const servers = (at >= 0 ? args[at + 1] : undefined) ?? process.env.NATS_URL ?? "nats://127.0.0.1:4222";
  const ac = new AbortController();
  process.once("SIGINT", () => ac.abort());
  process.once("SIGTERM", () => ac.abort());
  const svc = await run({ servers, signal: ac.signal });
  await svc.stopped;
}
