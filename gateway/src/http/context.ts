import type { Catalog, ContractValidator } from "@jetkit/contracts";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { FastifyRequest } from "fastify";
import type { Logger } from "pino";
import type { Auditor } from "../audit.js";
import type { Identity } from "../identity.js";
import type { Metrics } from "../metrics.js";
import type { Action, Decision } from "../policy/evaluate.js";

/** Request limits of the gateway. */
export interface Limits {
  /** Largest request body, bytes (413 above). Default: 1 MiB. */
  bodyBytes: number;
  /** Longest subject or pattern in a path, characters (400 above). Default: 128. */
  subjectLength: number;
  /** Sustained requests per second per principal (429 above, with Retry-After). 0: no limit. Default: 100. */
  ratePerSecond: number;
  /** Burst of requests per principal. Default: 2 × ratePerSecond. */
  rateBurst: number;
  /** Most messages one pull fetch returns. Default: 256. */
  maxBatch: number;
  /** Longest wait of one pull fetch, ms. Default: 30000. */
  maxWaitMs: number;
}

export const DEFAULT_LIMITS: Limits = {
  bodyBytes: 1 << 20,
  subjectLength: 128,
  ratePerSecond: 100,
  rateBurst: 200,
  maxBatch: 256,
  maxWaitMs: 30_000,
};

/** What publishing needs from the producer SDK. */
export interface EventPublisher {
  publishEncoded(input: {
    subject: string;
    payload: Uint8Array;
    msgId?: string;
    correlationId?: string;
    causationId?: string;
    key?: string;
  }): Promise<{ stream: string; seq: number; duplicate: boolean; msgId: string }>;
}

/** Everything the routes share. */
export interface GatewayContext {
  readonly catalog: Catalog;
  readonly validator: ContractValidator;
  readonly decide: (principal: string, action: Action, subject: string) => Decision;
  readonly publisher: EventPublisher;
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly auditor: Auditor;
  readonly metrics: Metrics;
  readonly limits: Limits;
  /** 0 to proceed, else seconds to wait; a promise when a shared bucket is asked. */
  readonly rateLimiter: { take(principal: string): number | Promise<number> };
  readonly dryRun: boolean;
  readonly log: Logger;
  /** The caller's identity; throws `JK_GATEWAY_UNAUTHENTICATED`. */
  readonly authenticate: (req: FastifyRequest) => Identity;
  /** Key of the HMAC that signs ack tokens. */
  readonly ackSecret: Buffer;
  /** True while the NATS connection is up. */
  readonly natsReady: () => boolean;
}
