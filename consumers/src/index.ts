export { nakDelay } from "./backoff.js";
export type { BatchFailure, BatchHandler, BatchMessage, BatchOptions, BatchResult } from "./batch.js";
export type { Consumer, ConsumerLag, Handler, HandlerContext, RegisteredEvent } from "./consumer.js";
export { createConsumer } from "./consumer.js";
export { deadLetterMsgId } from "./dead-letter.js";
export type {
  DeadLetterRecord,
  DeadLetterToolOptions,
  ListDeadLettersOptions,
  PurgeDeadLettersOptions,
  ReplayResult,
} from "./dlq-tools.js";
export {
  listDeadLetters,
  purgeDeadLetters,
  replayDeadLetters,
  showDeadLetter,
} from "./dlq-tools.js";
export type { ConsumerErrorCode } from "./errors.js";
export { ConsumerErrorCodes, isPermanentError, PermanentError } from "./errors.js";
export type { SqliteInboxOptions } from "./inbox.js";
export { SqliteInbox } from "./inbox.js";
export type { PgInboxOptions } from "./inbox-pg.js";
export { PgInbox } from "./inbox-pg.js";
export type {
  BackoffOptions,
  ConsumerOptions,
  DeadLetterOptions,
  GroupOptions,
  HealthOptions,
  IdempotencyOptions,
  RegistryLookup,
} from "./options.js";
export { partitionOf } from "./partition.js";
