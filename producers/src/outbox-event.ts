import {
  type Catalog,
  ContractValidator,
  type EventType,
  JetkitError,
  partitionKeyOf,
  uuidv7,
} from "@jetkit/contracts";
import { ProducerErrorCodes } from "./errors.js";
import type { OutboxRow } from "./outbox-relay.js";
import type { PublishOptions } from "./producer.js";

/** What an outbox's `add` stores besides the event (the producer's publish options). */
export type OutboxAddOptions = Pick<
  PublishOptions,
  "msgId" | "correlationId" | "causationId" | "key" | "time"
>;

/** Longest table name: `<table>_relay` and `<table>_unsent` must stay within Postgres' 63 bytes. */
const TABLE = /^[A-Za-z_][A-Za-z0-9_]{0,55}$/;

/** Throws `JK_PRODUCER_OPTIONS` unless `table` is a plain identifier (it is written into SQL). */
export function checkOutboxTable(table: string): string {
  if (!TABLE.test(table)) {
    throw new JetkitError(
      ProducerErrorCodes.OPTIONS,
      `outbox table name "${table}" is invalid: use letters, digits and _ (it is written into SQL).`,
      { details: { option: "table" } },
    );
  }
  return table;
}

/** Encodes and validates events for an outbox, before anything is written. */
export class OutboxEncoder {
  readonly #catalog: Catalog;
  readonly #validator: ContractValidator;

  constructor(catalog: Catalog) {
    this.#catalog = catalog;
    this.#validator = new ContractValidator(catalog);
  }

  /** The row to store (its `seq` is the database's); throws `JK_CONTRACT_VIOLATION` for a bad event. */
  row<T>(Type: EventType<T>, event: T, opts: OutboxAddOptions): Omit<OutboxRow, "seq"> {
    const spec = this.#catalog.byType(Type.$type);
    const payload = Type.encode(event).finish();
    this.#validator.checkEvent(spec, event, () => payload);
    return {
      eventId: opts.msgId ?? uuidv7(),
      type: spec.type,
      payload,
      key:
        opts.key ??
        (spec.partitionKey ? partitionKeyOf(spec, this.#catalog.decode(spec, payload)) : undefined) ??
        null,
      correlationId: opts.correlationId ?? null,
      causationId: opts.causationId ?? null,
      time: opts.time ?? new Date(),
    };
  }
}
