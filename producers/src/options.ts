import type { Catalog } from "@jetkit/contracts";
import type { NodeConnectionOptions } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { BreakerChange } from "./breaker.js";

/** How failed publish attempts are retried. */
export interface RetryOptions {
  /** Give up (JK_PRODUCER_TIMEOUT) when no ack arrived this long after the publish began, in ms. Default: 30000. */
  deadlineMs: number;
  /** How long one attempt waits for its ack, in ms. Default: 5000. */
  attemptTimeoutMs: number;
  /** First backoff cap, in ms; each retry doubles it (full jitter: the wait is random below the cap). Default: 50. */
  initialDelayMs: number;
  /** Largest backoff cap, in ms. Default: 2000. */
  maxDelayMs: number;
}

/** When the circuit breaker opens and how it probes. */
export interface BreakerOptions {
  /** Consecutive failed attempts that open the breaker. Default: 5. */
  failureThreshold: number;
  /** How long the breaker stays open before one probe may pass (half-open), in ms. Default: 1000. */
  coolDownMs: number;
}

/** Options of {@link createProducer}. Only `servers` and `name` are required. */
export interface ProducerOptions {
  /** NATS server URL(s), e.g. `nats://127.0.0.1:4222`. */
  servers: string | string[];
  /** Service name: the `ce-source` (`/jetkit/<name>`), the NATS connection name and the logger's `service`. */
  name: string;
  /** TLS options of the NATS connection (client certificates, CA). */
  tls?: NodeConnectionOptions["tls"];
  /** Other NATS connection options (credentials, ...); jetkit sets reconnect-forever by default. */
  connection?: Partial<NodeConnectionOptions>;
  /** Parent logger; the producer logs through a child `{ service: name, component: "producer" }`. Default: pino at level "info". */
  logger?: Logger;
  /** The contract catalog. Default: the packaged one (`getCatalog()`). */
  catalog?: Catalog;
  /** `ce-source` of every event. Default: `/jetkit/<name>`. */
  source?: string;
  /** Most publishes unacknowledged at once, over all calls (backpressure beyond it). Default: 256. */
  maxInFlight?: number;
  /** Validate every event against its contract's rules before sending. Default: true. */
  validate?: boolean;
  /** Retry policy of transient failures. */
  retry?: Partial<RetryOptions>;
  /** Circuit breaker policy. */
  breaker?: Partial<BreakerOptions>;
  /** Called on every breaker state change (also logged). */
  onBreakerChange?: (change: BreakerChange) => void;
}

export const DEFAULT_RETRY: RetryOptions = {
  deadlineMs: 30_000,
  attemptTimeoutMs: 5_000,
  initialDelayMs: 50,
  maxDelayMs: 2_000,
};

export const DEFAULT_BREAKER: BreakerOptions = { failureThreshold: 5, coolDownMs: 1_000 };

export const DEFAULT_MAX_IN_FLIGHT = 256;
