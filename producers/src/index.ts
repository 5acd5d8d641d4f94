export type { AtomicAck, AtomicEvent, Transaction } from "./atomic.js";
export { DEFAULT_MAX_ATOMIC_BATCH } from "./atomic.js";
export type { Admission, BreakerChange, BreakerState } from "./breaker.js";
export { CircuitBreaker } from "./breaker.js";
export type { FailureKind, ProducerErrorCode } from "./errors.js";
export { classify, ProducerErrorCodes } from "./errors.js";
export type { BreakerOptions, ProducerOptions, RetryOptions } from "./options.js";
export { DEFAULT_BREAKER, DEFAULT_MAX_IN_FLIGHT, DEFAULT_RETRY } from "./options.js";
export type { SqliteOutboxOptions } from "./outbox.js";
export { SqliteOutbox } from "./outbox.js";
export type { OutboxAddOptions } from "./outbox-event.js";
export type { PgClientLike, PgOutboxOptions, PgPoolLike, PgQueryable } from "./outbox-pg.js";
export { PgOutbox } from "./outbox-pg.js";
export type {
  OutboxAdapter,
  OutboxRelay,
  OutboxRelayOptions,
  OutboxRow,
  RelayableOutbox,
} from "./outbox-relay.js";
export { startOutboxRelay } from "./outbox-relay.js";
export type {
  EncodedEvent,
  Expectations,
  ProducerStats,
  PublishAck,
  PublishManyOptions,
  PublishOptions,
} from "./producer.js";
export { createProducer, Producer } from "./producer.js";
export { backoffDelay } from "./retry.js";
