import type { Logger } from "pino";
import type { ProducerOptions, PublishAck } from "../src/index.js";
import type { KeyDistribution } from "./keys.js";

/** Options shared by the example producer services. */
export interface ServiceRunOptions<E> {
  /** NATS server URL(s). */
  servers: string | string[];
  /** Events per second (open loop). Default: 10. */
  ratePerSec?: number;
  /** Number of distinct keys (customers, orders). Default: 100. */
  keys?: number;
  /** How keys are drawn. Default: uniform. */
  distribution?: KeyDistribution;
  /** How long to run, in ms. Default: 10000. */
  durationMs?: number;
  /** Stops the run early. */
  signal?: AbortSignal;
  /** Parent logger. Default: pino at "info". */
  logger?: Logger;
  /** Random source in [0, 1), for reproducible runs. Default: Math.random. */
  random?: () => number;
  /** More producer options (retry, breaker, tls, maxInFlight, ...). */
  producer?: Partial<Omit<ProducerOptions, "servers" | "logger">>;
  /** Called with every ack (in the drill history: what the broker promised to keep). */
  onPublished?: (ack: PublishAck, event: E) => void;
  /** Called with every failed publish. */
  onFailed?: (err: unknown, event: E) => void;
}
