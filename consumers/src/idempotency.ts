import { JetkitError } from "@jetkit/contracts";
import type { JetStreamClient } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { ConsumerErrorCodes } from "./errors.js";
import type { IdempotencyOptions } from "./options.js";
import { ReplyMux } from "./reply-mux.js";

const RECENT = 10_000;
/** JetStream API timeout of nats.js (a KV get or put waits this long for its answer). */
const REQUEST_TIMEOUT_MS = 5000;

/** The fields of @nats-io/kv's `Bucket` (3.4.0, pinned) that say how it addresses its stream. */
interface BucketShape {
  stream?: unknown;
  prefix?: unknown;
  editPrefix?: unknown;
  useJsPrefix?: unknown;
  direct?: unknown;
  codec?: { key?: { encode?: (k: string) => string } };
}

/**
 * Subjects for the direct requests, when the bucket is a plain local one (no mirror, no JS
 * domain, keys not re-encoded, direct get allowed): then a put is a publish to `$KV.<bucket>.<key>`
 * and a get a direct get of that subject's last message, exactly what @nats-io/kv sends.
 */
function directSubjects(kv: KV, bucket: string): { put: string; get: string } | undefined {
  const b = kv as unknown as BucketShape;
  const plain =
    b.stream === `KV_${bucket}` &&
    b.prefix === `$KV.${bucket}` &&
    !b.editPrefix &&
    b.useJsPrefix === false &&
    b.direct === true &&
    b.codec?.key?.encode?.("probe.key") === "probe.key";
  return plain ? { put: `$KV.${bucket}.`, get: `$JS.API.DIRECT.GET.KV_${bucket}.$KV.${bucket}.` } : undefined;
}

/** The mux and the subject prefixes (the key follows) of the direct requests. */
interface DirectRequests {
  mux: ReplyMux;
  put: string;
  get: string;
}

/**
 * Effect records in a JetStream KV bucket with a TTL, one per (durable, ce-id). A record is
 * written only after the handler succeeded, so a message whose record exists already had its effect.
 */
export class IdempotencyStore {
  readonly #kv: KV;
  readonly #prefix: string;
  /** Event ids this process recorded lately, newest last (bounded). */
  readonly #recent = new Set<string>();
  /** Direct requests (see {@link ReplyMux}); undefined: through @nats-io/kv. */
  readonly #direct: DirectRequests | undefined;

  private constructor(kv: KV, durable: string, direct: DirectRequests | undefined) {
    this.#kv = kv;
    this.#prefix = durable;
    this.#direct = direct;
  }

  /** Creates the bucket when missing (an existing one is opened as it is). */
  static async open(
    js: JetStreamClient,
    durable: string,
    o: IdempotencyOptions,
    clustered = false,
    nc?: NatsConnection,
  ): Promise<IdempotencyStore> {
    try {
      const replicas = o.replicas ?? (clustered ? 3 : 1);
      const kv = await new Kvm(js).create(o.bucket, { ttl: o.ttlMs, history: 1, replicas });
      const subjects = nc ? directSubjects(kv, o.bucket) : undefined;
      const direct = nc && subjects ? { mux: new ReplyMux(nc, REQUEST_TIMEOUT_MS), ...subjects } : undefined;
      return new IdempotencyStore(kv, durable, direct);
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
    if (!this.#direct) {
      const e = await this.#kv.get(this.key(eventId));
      return e !== null && e.operation === "PUT";
    }
    const m = await this.#direct.mux.request(this.#direct.get + this.key(eventId), "");
    const h = m.headers;
    if (h && h.code !== 0) {
      if (h.code === 404) return false; // no record
      throw new Error(`direct get of the idempotency record failed: ${h.code} ${h.description}`);
    }
    // As @nats-io/kv reads an entry's operation: a TTL marker ("MaxAge") is a purge, else
    // KV-Operation (DEL, PURGE), PUT when absent.
    if (h?.get("Nats-Marker-Reason") === "MaxAge") return false;
    return (h?.get("KV-Operation") || "PUT") === "PUT";
  }

  /** Records that the effect of `eventId` happened (stream/seq kept for operators). */
  async record(eventId: string, stream: string, seq: number): Promise<void> {
    const value = JSON.stringify({ stream, seq, at: new Date().toISOString() });
    if (this.#direct) {
      const m = await this.#direct.mux.request(this.#direct.put + this.key(eventId), value);
      // The stream's answer: {"stream","seq"} once stored, {"error":{...}} when refused.
      const ack = JSON.parse(m.string()) as { error?: { code?: number; description?: string } };
      if (ack.error) {
        throw new Error(`the idempotency record was refused: ${ack.error.code} ${ack.error.description}`);
      }
    } else await this.#kv.put(this.key(eventId), value);
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

  /** Stops the direct requests (those still waiting fail). */
  close(): void {
    this.#direct?.mux.close();
  }
}
