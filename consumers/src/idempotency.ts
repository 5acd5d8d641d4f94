import { JetkitError } from "@jetkit/contracts";
import { JetStreamApiError, type JetStreamClient } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import { type Msg, type NatsConnection, headers as natsHeaders } from "@nats-io/nats-core";
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

/** What the store holds for one event id. */
export type EffectRecord =
  | { readonly state: "none"; readonly revision: number }
  | { readonly state: "done"; readonly revision: number }
  | {
      readonly state: "claimed";
      readonly revision: number;
      readonly owner: string;
      /** Epoch ms the claim lapses unless its owner renews it. */
      readonly expires: number;
    };

/** The outcome of {@link IdempotencyStore.claim}. */
export type ClaimResult =
  | { readonly kind: "claimed"; readonly revision: number }
  | { readonly kind: "done" }
  | { readonly kind: "busy"; readonly owner: string; readonly retryInMs: number };

/** The record changed under a claim: another process took the event over (compare-and-set lost). */
export class ClaimLostError extends Error {
  constructor(eventId: string) {
    super(`the claim on event ${eventId} was taken over by another process`);
    this.name = "ClaimLostError";
  }
}

/** JetStream "wrong last sequence": the compare-and-set of a KV write lost. */
/**
 * (A replicated stream answers 10164 instead while another write of the same key is still in
 * flight, often this process's own renewal: that is "try again", not "lost", and goes the retry
 * path of any other store error.)
 */
const CAS_LOST = new Set([10071]);

/**
 * Effect records in a JetStream KV bucket with a TTL, one per (durable, ce-id), written with
 * compare-and-set on the key's revision so two processes can never both run a handler for one
 * event id:
 * 1. before the handler, the consumer **claims** the id: a create (expected revision 0), or a
 *    takeover of a lapsed claim (expected: the lapsed claim's revision); a live claim of another
 *    process means "busy", a `done` record means "already effected";
 * 2. while the handler runs, the owner **renews** the claim (lease = the durable's ack wait);
 * 3. after the handler, the owner turns the claim into **done** (expected: its claim's revision);
 *    only then is the message acked. A failed write is retried, never acked around;
 * 4. a handler that failed **releases** its claim so the retry (anywhere) can run.
 */
export class IdempotencyStore {
  readonly #kv: KV;
  readonly #prefix: string;
  /** Event ids this process recorded lately, newest last (bounded). */
  readonly #recent = new Set<string>();
  /** Direct requests (see {@link ReplyMux}); undefined: through @nats-io/kv. */
  readonly #direct: DirectRequests | undefined;
  /** Owner id written into claims: this consumer instance. */
  readonly owner: string;
  /** How long a claim lives without renewal, in ms. */
  readonly leaseMs: number;

  private constructor(
    kv: KV,
    durable: string,
    direct: DirectRequests | undefined,
    owner: string,
    leaseMs: number,
  ) {
    this.#kv = kv;
    this.#prefix = durable;
    this.#direct = direct;
    this.owner = owner;
    this.leaseMs = leaseMs;
  }

  /** Creates the bucket when missing (an existing one is opened as it is). */
  static async open(
    js: JetStreamClient,
    durable: string,
    o: IdempotencyOptions & { owner: string; leaseMs: number },
    clustered = false,
    nc?: NatsConnection,
  ): Promise<IdempotencyStore> {
    try {
      const replicas = o.replicas ?? (clustered ? 3 : 1);
      const kv = await new Kvm(js).create(o.bucket, { ttl: o.ttlMs, history: 1, replicas });
      const subjects = nc ? directSubjects(kv, o.bucket) : undefined;
      const direct = nc && subjects ? { mux: new ReplyMux(nc, REQUEST_TIMEOUT_MS), ...subjects } : undefined;
      return new IdempotencyStore(kv, durable, direct, o.owner, o.leaseMs);
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

  /** The record of event `eventId` (a read; see {@link claim} to act on it). */
  async lookup(eventId: string): Promise<EffectRecord> {
    if (!this.#direct) {
      const e = await this.#kv.get(this.key(eventId));
      if (e === null || e.operation !== "PUT") return { state: "none", revision: e?.revision ?? 0 };
      return parseRecord(e.string(), e.revision);
    }
    const m = await this.#direct.mux.request(this.#direct.get + this.key(eventId), "");
    const h = m.headers;
    if (h && h.code !== 0) {
      if (h.code === 404) return { state: "none", revision: 0 }; // no record
      throw new Error(`direct get of the idempotency record failed: ${h.code} ${h.description}`);
    }
    const revision = Number(h?.get("Nats-Sequence") || 0);
    // As @nats-io/kv reads an entry's operation: a TTL marker ("MaxAge") is a purge, else
    // KV-Operation (DEL, PURGE), PUT when absent.
    if (h?.get("Nats-Marker-Reason") === "MaxAge") return { state: "none", revision };
    if ((h?.get("KV-Operation") || "PUT") !== "PUT") return { state: "none", revision };
    return parseRecord(m.string(), revision);
  }

  /** True when the effect of event `eventId` was recorded. */
  async seen(eventId: string): Promise<boolean> {
    return (await this.lookup(eventId)).state === "done";
  }

  /**
   * Claims `eventId` for a handler run by this process, from the record `known` (read on arrival)
   * when given. `busy` when another owner's claim is live, `done` when the effect is recorded.
   * The caller makes sure this process does not claim an id it is running already.
   */
  async claim(eventId: string, known?: EffectRecord): Promise<ClaimResult> {
    // Most ids are new: try the create first (one round trip), read only when it lost.
    let rec: EffectRecord = known ?? { state: "none", revision: 0 };
    for (let tries = 0; ; tries++) {
      if (rec.state === "done") return { kind: "done" };
      if (rec.state === "claimed") {
        const left = rec.expires - Date.now();
        if (rec.owner !== this.owner && left > 0) {
          return { kind: "busy", owner: rec.owner, retryInMs: Math.max(left, 0) };
        }
      }
      // No record, a deleted one, or a lapsed claim: take it with compare-and-set.
      try {
        const revision = await this.#write(eventId, this.#claimValue(), rec.revision);
        return { kind: "claimed", revision };
      } catch (err) {
        if (!(err instanceof ClaimLostError) || tries >= 3) throw err;
        rec = await this.lookup(eventId); // someone wrote meanwhile: decide again on what is there
      }
    }
  }

  /** Extends the claim at `revision`; returns the new revision. ClaimLostError when it was taken over. */
  renew(eventId: string, revision: number): Promise<number> {
    return this.#write(eventId, this.#claimValue(), revision);
  }

  /** Turns the claim at `revision` into the effect record. ClaimLostError when it was taken over. */
  async complete(eventId: string, revision: number, stream: string, seq: number): Promise<void> {
    const value = JSON.stringify({ s: "done", stream, seq, at: new Date().toISOString(), by: this.owner });
    await this.#write(eventId, value, revision);
    if (this.#recent.size >= RECENT) this.#recent.delete(this.#recent.values().next().value!);
    this.#recent.add(eventId);
  }

  /**
   * Writes the effect record of `eventId` without a claim before it (whatever the key holds): for
   * a partitioned group's events that no other process can have run (see consumer.ts).
   */
  async record(eventId: string, stream: string, seq: number): Promise<void> {
    const value = JSON.stringify({ s: "done", stream, seq, at: new Date().toISOString(), by: this.owner });
    const key = this.key(eventId);
    if (this.#direct)
      await this.#answer(await this.#direct.mux.request(this.#direct.put + key, value), eventId);
    else await this.#kv.put(key, value);
    if (this.#recent.size >= RECENT) this.#recent.delete(this.#recent.values().next().value!);
    this.#recent.add(eventId);
  }

  /** Gives the claim at `revision` up (the handler failed; a retry anywhere may claim it). */
  async release(eventId: string, revision: number): Promise<void> {
    if (this.#direct) {
      const h = natsHeaders();
      h.set("KV-Operation", "DEL");
      h.set("Nats-Expected-Last-Subject-Sequence", String(revision));
      await this.#answer(
        await this.#direct.mux.request(this.#direct.put + this.key(eventId), "", h),
        eventId,
      );
    } else await this.#kv.delete(this.key(eventId), { previousSeq: revision });
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

  #claimValue(): string {
    return JSON.stringify({ s: "claim", owner: this.owner, exp: Date.now() + this.leaseMs });
  }

  /** Writes `value` if the key is still at `expected` (0: absent); the new revision. */
  async #write(eventId: string, value: string, expected: number): Promise<number> {
    const key = this.key(eventId);
    if (this.#direct) {
      const h = natsHeaders();
      h.set("Nats-Expected-Last-Subject-Sequence", String(expected));
      return this.#answer(await this.#direct.mux.request(this.#direct.put + key, value, h), eventId);
    }
    try {
      return expected === 0 ? await this.#kv.create(key, value) : await this.#kv.update(key, value, expected);
    } catch (err) {
      if (err instanceof JetStreamApiError && CAS_LOST.has(err.code)) throw new ClaimLostError(eventId);
      throw err;
    }
  }

  /** The stream's answer to a direct write: {"stream","seq"} once stored, {"error":{...}} when refused. */
  #answer(m: Msg, eventId: string): number {
    const ack = JSON.parse(m.string()) as {
      seq?: number;
      error?: { err_code?: number; code?: number; description?: string };
    };
    if (ack.error) {
      if (ack.error.err_code !== undefined && CAS_LOST.has(ack.error.err_code))
        throw new ClaimLostError(eventId);
      throw new Error(`the idempotency record was refused: ${ack.error.code} ${ack.error.description}`);
    }
    return ack.seq ?? 0;
  }
}

/** Reads a stored record; records written before claims existed (`{stream, seq, at}`) are `done`. */
function parseRecord(text: string, revision: number): EffectRecord {
  try {
    const v = JSON.parse(text) as { s?: string; owner?: string; exp?: number };
    if (v.s === "claim" && typeof v.owner === "string" && typeof v.exp === "number") {
      return { state: "claimed", revision, owner: v.owner, expires: v.exp };
    }
  } catch {
    // not JSON: an effect record of an older writer
  }
  return { state: "done", revision };
}
