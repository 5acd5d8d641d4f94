import type { EventSpec } from "@jetkit/contracts";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { AckInbox } from "./acks.js";
import type { CircuitBreaker } from "./breaker.js";
import type { EncodedHeaders } from "./headers.js";
import type { RetryOptions } from "./options.js";

/** One event of a batch: encoded, validated, size-checked and with its headers, ready to send. */
export interface BatchMessage {
  readonly spec: EventSpec;
  /** Where it is published (the event's subject, or its schedule's). */
  readonly subject: string;
  readonly payload: Uint8Array;
  readonly headers: EncodedHeaders;
  readonly msgId: string;
}

/** What the batch publishers (atomic, fast-ingest) need of their producer. */
export interface BatchContext {
  readonly nc: NatsConnection;
  readonly acks: AckInbox;
  readonly log: Logger;
  readonly retry: RetryOptions;
  readonly breaker: CircuitBreaker;
  readonly inboxPrefix: string | undefined;
  /** The breaker's bookkeeping for an ambiguous failure. */
  judge(err: unknown, probe: boolean): Promise<void>;
  /** True once the producer is closing. */
  closing(): boolean;
  /** The stream's duplicate window from the contracts, ms. */
  duplicateWindowMs(stream: string): number | undefined;
}

/** True when the connected server's version is at least `min` ("2.12.1"). */
export function serverAtLeast(nc: NatsConnection, min: string): boolean {
  const have = (nc.info?.version ?? "0.0.0").split(/[.-]/).map((p) => Number.parseInt(p, 10) || 0);
  const want = min.split(".").map(Number);
  for (let i = 0; i < want.length; i++) {
    const h = have[i] ?? 0;
    if (h !== want[i]) return h > want[i]!;
  }
  return true;
}
