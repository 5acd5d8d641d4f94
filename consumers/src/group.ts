import { JetkitError } from "@jetkit/contracts";
import { JetStreamApiError, type JetStreamClient } from "@nats-io/jetstream";
import { type KV, Kvm, type KvWatchEntry } from "@nats-io/kv";
import type { QueuedIterator } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { ConsumerErrorCodes } from "./errors.js";
import type { GroupOptions } from "./options.js";

/** JetStream "wrong last sequence": a compare-and-set of a KV write lost (the key changed). */
const CAS_LOST = new Set([10071]);
/**
 * A replicated stream's answer while another write of the same key is still in flight: the
 * outcome is not known yet, so the write is tried again (a renewal next tick, a create at once).
 */
const WRITE_IN_FLIGHT = 10164;

/** The record of one partition in the group bucket. */
interface PartitionRecord {
  /** Instance that owns the partition; empty when released. */
  owner: string;
  /** Member name of the owner (static groups assign partitions to names). */
  member: string;
  /** Stream sequence from which the partition is not yet fully handled (its checkpoint). */
  seq: number;
}

/** What the group knows about one key of the bucket, as last seen by the watcher. */
interface Seen {
  revision: number;
  value: PartitionRecord | MemberRecord | undefined;
  /** performance.now() when this revision was first seen here. */
  at: number;
  /** When the server stored this revision (epoch ms). */
  created: number;
}

interface MemberRecord {
  member: string;
  instance: string;
}

interface GroupConfigRecord {
  partitions: number;
  mode: "elastic" | "static";
}

/** A partition this instance owns. */
interface Owned {
  /** Revision of this instance's last write of the record. */
  revision: number;
  /** When that write was sent (performance.now()). */
  sentAt: number;
  /** The renewal in flight: the next write of the record waits for it. */
  writing: Promise<void> | undefined;
}

/** What the consumer does when the group gives it a partition or takes one away. */
export interface PartitionHandler {
  /**
   * The partition is this instance's from stream sequence `seq` on. `replayUntil` (epoch ms), when
   * it was taken over from an owner that stopped renewing it: events stored until then may have
   * been run by that owner (it starts none later than lease/2 after its last renewal).
   */
  acquired(partition: number, seq: number, replayUntil: number | undefined): void;
  /** Stop taking new messages of the partition, finish those in flight; resolves the checkpoint. */
  release(partition: number): Promise<number>;
  /** The partition was taken over by another instance: drop its messages at once. */
  lost(partition: number): void;
  /** The partition's checkpoint now (written with every renewal). */
  checkpoint(partition: number): number;
}

function isWrongLastSequence(err: unknown): boolean {
  return err instanceof JetStreamApiError && CAS_LOST.has(err.code);
}

/**
 * Membership and partition ownership of one partitioned consumer group on one stream, kept in a
 * JetStream KV bucket with compare-and-set writes (see consumers/README.md, "Partitioned consumer
 * groups"):
 * - `<durable>.<stream>.config`: the partition count and mode; every member must agree;
 * - `<durable>.m.<instance>`: one heartbeat per live instance (elastic groups);
 * - `<durable>.<stream>.p.<n>`: owner and checkpoint of partition n, renewed by its owner every
 *   `leaseMs / 4`. A record that has not changed for `leaseMs` (as observed by this process's own
 *   clock, so clocks need not agree) belongs to a dead owner and may be taken over.
 * An owner starts no handler of a partition unless its last successful renewal was sent less
 * than `leaseMs / 2` ago: a paused process that resumes learns it lost the partition before it
 * touches another message of it.
 */
export class PartitionGroup {
  readonly #kv: KV;
  readonly #prefix: string;
  readonly #partPrefix: string;
  readonly #o: GroupOptions;
  readonly #instance: string;
  readonly #log: Logger;
  readonly #handler: PartitionHandler;
  /** Stream sequence a new group starts at (1 = every stored message). */
  readonly #startSeq: number;
  readonly #seen = new Map<string, Seen>();
  /** Partitions this instance owns: revision of its last write, and when that write was sent. */
  readonly #owned = new Map<number, Owned>();
  /** Partitions being handed to another member (draining). */
  readonly #releasing = new Set<number>();
  #memberRevision = 0;
  #watch: QueuedIterator<KvWatchEntry> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #ticking = false;
  #stopped = false;
  /** Counts for metrics and tests. */
  readonly stats = { acquired: 0, takenOver: 0, released: 0, lost: 0 };

  private constructor(
    kv: KV,
    durable: string,
    stream: string,
    o: GroupOptions,
    instance: string,
    startSeq: number,
    handler: PartitionHandler,
    log: Logger,
  ) {
    this.#kv = kv;
    this.#prefix = durable;
    this.#partPrefix = `${durable}.${stream}.p.`;
    this.#o = o;
    this.#instance = instance;
    this.#startSeq = startSeq;
    this.#handler = handler;
    this.#log = log.child({ group: durable, stream });
  }

  /**
   * Opens (creating when missing) the group bucket and the group's config record. Throws
   * `JK_CONSUMER_GROUP` when the bucket cannot be used or the group exists with another partition
   * count or mode.
   */
  static async join(
    js: JetStreamClient,
    durable: string,
    stream: string,
    o: GroupOptions,
    instance: string,
    startSeq: number,
    clustered: boolean,
    handler: PartitionHandler,
    log: Logger,
  ): Promise<PartitionGroup> {
    let kv: KV;
    try {
      kv = await new Kvm(js).create(o.bucket, { history: 1, replicas: o.replicas ?? (clustered ? 3 : 1) });
    } catch (err) {
      throw new JetkitError(
        ConsumerErrorCodes.GROUP,
        `could not create or open the consumer group bucket ${o.bucket}: ${(err as Error).message}. Check JetStream is enabled and the account may create KV buckets.`,
        { cause: err, details: { bucket: o.bucket } },
      );
    }
    const mode = o.members ? "static" : "elastic";
    const key = `${durable}.${stream}.config`;
    const want: GroupConfigRecord = { partitions: o.partitions, mode };
    try {
      for (let tries = 1; ; tries++) {
        try {
          await kv.create(key, JSON.stringify(want));
          break;
        } catch (err) {
          // Another member writing the config at the same time: try again, then read it.
          if (!(err instanceof JetStreamApiError && err.code === WRITE_IN_FLIGHT) || tries >= 5) throw err;
          await new Promise((r) => setTimeout(r, 50 * tries));
        }
      }
    } catch (err) {
      if (!isWrongLastSequence(err)) {
        throw new JetkitError(
          ConsumerErrorCodes.GROUP,
          `could not write the config of consumer group ${durable}: ${(err as Error).message}.`,
          { cause: err, details: { durable, stream } },
        );
      }
      const e = await kv.get(key);
      const have = e ? (JSON.parse(e.string()) as GroupConfigRecord) : want;
      if (have.partitions !== want.partitions || have.mode !== want.mode) {
        throw new JetkitError(
          ConsumerErrorCodes.GROUP,
          `consumer group ${durable} on stream ${stream} exists with ${have.partitions} partitions (${have.mode}); this member asks for ${want.partitions} (${want.mode}). Every member must use the same partition count and mode: changing them would move keys between partitions and break their order. To change them, stop every member, then delete its keys \`${durable}.*\` from KV bucket ${o.bucket} (e.g. \`nats kv del ${o.bucket} ${durable}.${stream}.config\`), or pick a new durable name.`,
          { details: { durable, stream, existing: have, requested: want } },
        );
      }
    }
    return new PartitionGroup(kv, durable, stream, o, instance, startSeq, handler, log);
  }

  /** Starts the heartbeat, the watcher and the ownership loop. */
  async start(): Promise<void> {
    this.#watch = await this.#kv.watch({ key: [`${this.#prefix}.m.>`, `${this.#partPrefix}>`] });
    void (async () => {
      for await (const e of this.#watch!) this.#observe(e);
    })().catch((err: unknown) => {
      if (!this.#stopped) this.#log.warn({ err }, "consumer group watcher ended");
    });
    await this.#heartbeat();
    const every = Math.max(100, Math.floor(this.#o.leaseMs / 4));
    this.#timer = setInterval(() => void this.#tick(), every);
    this.#timer.unref();
    void this.#tick();
  }

  #observe(e: KvWatchEntry): void {
    const prev = this.#seen.get(e.key);
    if (e.operation !== "PUT") {
      this.#seen.delete(e.key);
      return;
    }
    if (prev && prev.revision === e.revision) return;
    let value: PartitionRecord | MemberRecord | undefined;
    try {
      value = JSON.parse(e.string()) as PartitionRecord | MemberRecord;
    } catch {
      value = undefined;
    }
    this.#seen.set(e.key, {
      revision: e.revision,
      value,
      at: performance.now(),
      created: e.created.getTime(),
    });
  }

  /** True while this instance owns `partition` with a lease fresh enough to start a handler. */
  fresh(partition: number): boolean {
    const o = this.#owned.get(partition);
    return o !== undefined && performance.now() - o.sentAt < this.#o.leaseMs / 2;
  }

  owns(partition: number): boolean {
    return this.#owned.has(partition);
  }

  /** Partitions owned now. */
  get owned(): number[] {
    return [...this.#owned.keys()].sort((a, b) => a - b);
  }

  /** The instances believed alive (elastic), sorted; static groups list their member names. */
  #liveMembers(now: number): string[] {
    if (this.#o.members) return [...this.#o.members];
    const live: string[] = [];
    for (const [key, s] of this.#seen) {
      if (!key.startsWith(`${this.#prefix}.m.`)) continue;
      const mine = key === this.#memberKey();
      if (mine || now - s.at < this.#o.leaseMs) live.push(key.slice(this.#prefix.length + 3));
    }
    if (!live.includes(this.#instance)) live.push(this.#instance);
    return live.sort();
  }

  /** Who should own `partition`: round robin over the sorted members. */
  #assignee(partition: number, members: string[]): string {
    return members[partition % members.length]!;
  }

  #me(): string {
    return this.#o.members ? this.#o.member! : this.#instance;
  }

  #memberKey(): string {
    return `${this.#prefix}.m.${this.#instance}`;
  }

  async #heartbeat(): Promise<void> {
    const value = JSON.stringify({ member: this.#o.member ?? this.#instance, instance: this.#instance });
    this.#memberRevision = await this.#kv.put(this.#memberKey(), value);
  }

  async #tick(): Promise<void> {
    if (this.#ticking || this.#stopped) return;
    this.#ticking = true;
    try {
      await this.#heartbeat().catch((err: unknown) =>
        this.#log.warn({ err }, "consumer group heartbeat failed; retrying"),
      );
      const now = performance.now();
      const members = this.#liveMembers(now);
      const me = this.#me();
      const writes: Promise<void>[] = [];
      for (let p = 0; p < this.#o.partitions; p++) {
        if (this.#stopped) return;
        const assignee = this.#assignee(p, members);
        if (this.#owned.has(p)) {
          // Renewed while it drains too: its handlers need a fresh lease to finish the drain.
          writes.push(this.#renew(p));
          if (assignee !== me && !this.#releasing.has(p) && !this.#o.members) void this.#release(p, assignee);
          continue;
        }
        if (assignee === me) writes.push(this.#tryAcquire(p, now));
      }
      await Promise.all(writes);
    } finally {
      this.#ticking = false;
    }
  }

  #partKey(p: number): string {
    return `${this.#partPrefix}${p}`;
  }

  #record(seq: number): string {
    const r: PartitionRecord = { owner: this.#instance, member: this.#o.member ?? this.#instance, seq };
    return JSON.stringify(r);
  }

  async #tryAcquire(p: number, now: number): Promise<void> {
    const key = this.#partKey(p);
    const seen = this.#seen.get(key);
    const rec = seen?.value as PartitionRecord | undefined;
    let from = "none";
    if (seen && rec?.owner) {
      if (rec.owner === this.#instance) from = "self";
      else if (now - seen.at < this.#o.leaseMs)
        return; // a live owner: wait for it to release or lapse
      else from = rec.owner;
    }
    const seq = rec?.seq ?? this.#startSeq;
    const sentAt = performance.now();
    try {
      const revision = seen
        ? await this.#kv.update(key, this.#record(seq), seen.revision)
        : await this.#kv.create(key, this.#record(seq));
      this.#owned.set(p, { revision, sentAt, writing: undefined });
      this.stats.acquired++;
      if (from !== "none" && from !== "self") this.stats.takenOver++;
      this.#log.info(
        { partition: p, seq, ...(from !== "none" && from !== "self" ? { from } : {}) },
        from !== "none" && from !== "self"
          ? "partition taken over from an owner that stopped renewing it"
          : "partition acquired",
      );
      const takenOver = from !== "none" && from !== "self";
      // Server clocks of the KV and the stream leaders may differ a little: 2 s of margin.
      this.#handler.acquired(p, seq, takenOver ? seen!.created + this.#o.leaseMs / 2 + 2000 : undefined);
    } catch (err) {
      if (!isWrongLastSequence(err)) this.#log.warn({ err, partition: p }, "could not acquire partition");
      // Lost the race: the watcher shows the winner.
    }
  }

  #renew(p: number): Promise<void> {
    const o = this.#owned.get(p);
    if (!o || o.writing) return Promise.resolve();
    o.writing = this.#write(p, o).finally(() => {
      o.writing = undefined;
    });
    return o.writing;
  }

  async #write(p: number, o: Owned): Promise<void> {
    const sentAt = performance.now();
    try {
      o.revision = await this.#kv.update(
        this.#partKey(p),
        this.#record(this.#handler.checkpoint(p)),
        o.revision,
      );
      o.sentAt = sentAt;
    } catch (err) {
      if (this.#owned.get(p) !== o) return; // released meanwhile
      if (isWrongLastSequence(err)) {
        this.#owned.delete(p);
        this.stats.lost++;
        this.#log.warn(
          { partition: p },
          "partition lost: another member took it over (this one paused or was cut off)",
        );
        this.#handler.lost(p);
        return;
      }
      this.#log.warn({ err, partition: p }, "could not renew partition; retrying");
    }
  }

  /** Hands `p` over: drain it, then write its checkpoint with no owner. */
  async #release(p: number, to: string): Promise<void> {
    this.#releasing.add(p);
    this.#log.info({ partition: p, to }, "partition moving to another member: draining it");
    try {
      const seq = await this.#handler.release(p);
      await this.#writeReleased(p, seq);
      this.stats.released++;
      this.#log.info({ partition: p, to, seq }, "partition released");
    } finally {
      this.#releasing.delete(p);
    }
  }

  async #writeReleased(p: number, seq: number): Promise<void> {
    const o = this.#owned.get(p);
    if (!o) return;
    this.#owned.delete(p);
    await o.writing;
    const r: PartitionRecord = { owner: "", member: "", seq };
    try {
      await this.#kv.update(this.#partKey(p), JSON.stringify(r), o.revision);
    } catch (err) {
      // Taken over meanwhile, or the store is down: the record lapses and the next owner
      // starts from the last checkpoint written (an earlier one: at most a replay).
      this.#log.warn({ err, partition: p }, "could not write the released partition's checkpoint");
    }
  }

  /** Releases every partition (drained by the caller first) and leaves the group. */
  async leave(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    for (const p of [...this.#owned.keys()]) await this.#writeReleased(p, this.#handler.checkpoint(p));
    await this.#kv.delete(this.#memberKey(), { previousSeq: this.#memberRevision }).catch(() => {});
    this.#watch?.stop();
  }
}
