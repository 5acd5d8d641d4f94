import type { Catalog } from "@jetkit/contracts";
import type { NodeConnectionOptions } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { BreakerChange } from "./breaker.js";

/** How failed publish attempts are retried. */
export interface RetryOptions {
  /**
   * Give up (JK_PRODUCER_OUTCOME_UNKNOWN) when no definite answer arrived this long after the
   * publish began, in ms. Default: 30000, which covers a stream leader election with default
   * server settings (4-9 s leaderless) several times over.
   */
  deadlineMs: number;
  /**
   * How long one attempt waits for its ack, in ms; then it is sent again with the same msg id.
   * Default: 2000 (a lost ack, e.g. of a request routed to a node that died, costs this long).
   */
  attemptTimeoutMs: number;
  /** First backoff cap, in ms; each retry doubles it (full jitter: the wait is random below the cap). Default: 25. */
  initialDelayMs: number;
  /**
   * Largest backoff cap, in ms. Default: 250, so a publish waiting through an election goes
   * through within ~250 ms of the new leader (no-responders answers are cheap for the server;
   * a broker that is really down is the breaker's job).
   */
  maxDelayMs: number;
}

/** When the circuit breaker opens and how it probes. */
export interface BreakerOptions {
  /**
   * Consecutive attempts that found the broker unreachable (timed out while disconnected or while
   * the server did not answer a ping) that open the breaker. Default: 5.
   */
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
  /**
   * Most events in one atomic batch (publishAtomic); more fail with JK_PRODUCER_BATCH_TOO_LARGE
   * before anything is sent. Default: 1000, nats-server's default `max_batch_size`; raise both together.
   */
  maxAtomicBatch?: number;
  /** Validate every event against its contract's rules before sending. Default: true. */
  validate?: boolean;
  /** Retry policy of transient failures. */
  retry?: Partial<RetryOptions>;
  /** Circuit breaker policy. */
  breaker?: Partial<BreakerOptions>;
  /** Called on every breaker state change (also logged). */
  onBreakerChange?: (change: BreakerChange) => void;
  /**
   * CloudEvents content mode of the messages (contracts/WIRE.md §4): `binary` (`ce-*` headers,
   * the protobuf payload as the body) or `structured` (`content-type: application/cloudevents+json`,
   * the body the JSON event format with the payload in `data_base64`), for readers that take
   * structured mode only. Every jetkit reader reads both. Default: `binary`.
   */
  contentMode?: "binary" | "structured";
  /**
   * The contract registry version this producer's catalog was pushed as (`jetkit contracts push`
   * prints it; `jetkit contracts list` lists them). When set, every event carries
   * `ce-dataschema: jetkit:registry/<version>#<type>` (contracts/WIRE.md §4), so a reader built
   * with older contracts can fetch the version and decode the event. Default: no ce-dataschema.
   */
  registryVersion?: number;
}

export const DEFAULT_RETRY: RetryOptions = {
  deadlineMs: 30_000,
  attemptTimeoutMs: 2_000,
  initialDelayMs: 25,
  maxDelayMs: 250,
};

export const DEFAULT_BREAKER: BreakerOptions = { failureThreshold: 5, coolDownMs: 1_000 };

export const DEFAULT_MAX_IN_FLIGHT = 256;
