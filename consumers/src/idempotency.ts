import { JetkitError } from "@jetkit/contracts";
import type { JetStreamClient } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import { ConsumerErrorCodes } from "./errors.js";
import type { IdempotencyOptions } from "./options.js";

const RECENT = 10_000;

/**
 * Effect records in a JetStream KV bucket with a TTL, one per (durable, ce-id). A record is
 * written only after the handler succeeded, so a message whose record exists already had its effect.
 */
export class IdempotencyStore {
  readonly #kv: KV;
  readonly #prefix: string;
  /** Event ids this process recorded lately, newest last (bounded). */
  readonly #recent = new Set<string>();

  private constructor(kv: KV, durable: string) {
    this.#kv = kv;
    this.#prefix = durable;
  }

  /** Creates the bucket when missing (an existing one is opened as it is). */
  static async open(
    js: JetStreamClient,
    durable: string,
    o: IdempotencyOptions,
    clustered = false,
  ): Promise<IdempotencyStore> {
    try {
      const replicas = o.replicas ?? (clustered ? 3 : 1);
      const kv = await new Kvm(js).create(o.bucket, { ttl: o.ttlMs, history: 1, replicas });
      return new IdempotencyStore(kv, durable);
    } catch (err) {
      throw new JetkitError(
        ConsumerErrorCodes.IDEMPOTENCY,
        `could not create or open the idempotency bucket ${o.bucket}: ${(err as Error).message}. Check JetStream is enabled and the account may create KV buckets.`,
        { cause: err, details: { bucket: o.bucket } },
      );
    }
  }

  /** KV keys allow only [-/=.\w]: the event id is base64url-encoded, behind the durable name. */
  key(eventId: string): string {
    return `${this.#prefix}.${Buffer.from(eventId, "utf8").toString("base64url")}`;
  }

  /** True when the effect of event `eventId` was recorded. */
  async seen(eventId: string): Promise<boolean> {
    const e = await this.#kv.get(this.key(eventId));
    return e !== null && e.operation === "PUT";
  }

  /** Records that the effect of `eventId` happened (stream/seq kept for operators). */
  async record(eventId: string, stream: string, seq: number): Promise<void> {
    await this.#kv.put(this.key(eventId), JSON.stringify({ stream, seq, at: new Date().toISOString() }));
    if (this.#recent.size >= RECENT) this.#recent.delete(this.#recent.values().next().value!);
    this.#recent.add(eventId);
  }

  /**
   * True when this process recorded `eventId` lately. Lookups start when a message arrives, before
   * it waits for a handler slot; a record this process wrote meanwhile is caught here.
   */
  recordedLately(eventId: string): boolean {
    return this.#recent.has(eventId);
  }
}
