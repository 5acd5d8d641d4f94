import { createHash } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import { JetkitError } from "@jetkit/contracts";
import { readCluster } from "@jetkit/contracts/streams";
import { JetStreamApiError, jetstreamManager } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { type ObjectStore, Objm } from "@nats-io/obj";
import type { RegistryAllowed, RegistryWaived } from "./check.js";
import { RegistryErrorCodes } from "./errors.js";
import type { Modes } from "./modes.js";

/** KV bucket of the versions: `v.<n>` -> {@link VersionRecord}, `latest` -> `{ version }`. */
export const VERSIONS_BUCKET = "JETKIT_REGISTRY";
/** Object Store bucket of the images, each named by its digest (`sha256-<hex>`). */
export const IMAGES_BUCKET = "JETKIT_CONTRACTS";
const LATEST = "latest";
const key = (version: number) => `v.${version}`;

/** One registered version of the contracts. */
export interface VersionRecord {
  readonly version: number;
  /** `sha256-<hex>` of the image bytes: the image's object name. */
  readonly digest: string;
  readonly size: number;
  /** Who pushed (git user, else the OS user, or `--who`). */
  readonly who: string;
  /** When, as an ISO 8601 UTC timestamp. */
  readonly when: string;
  /** The git ref and commit the image was built from, when the push ran in a git checkout. */
  readonly git?: { readonly ref?: string; readonly commit?: string };
  readonly message: string;
  /** The compatibility modes the push was checked with, in force until a push changes them. */
  readonly modes: Modes;
  /** Findings accepted with `--allow RULE --reason`, each with its reason. */
  readonly allowed: readonly RegistryAllowed[];
  /** Findings not checked because their stream or package was in mode `none`. */
  readonly waived: readonly RegistryWaived[];
  /** What the image declares, for list and show without fetching it. */
  readonly events: readonly { type: string; subject: string; stream: string }[];
  readonly streams: readonly { name: string; subjects: readonly string[] }[];
}

const unreachable = (what: string, err: unknown) =>
  new JetkitError(
    RegistryErrorCodes.UNREACHABLE,
    `cannot ${what} the contract registry (${(err as Error).message}). Check that the NATS servers are up with JetStream enabled and that --servers names them; a cluster needs a quorum (2 of 3) for the registry's R3 buckets.`,
    { cause: err },
  );

/** How long reads wait out a leader election (a node lost): JetStream answers again within seconds. */
const ELECTION_MS = 20_000;

/** A timeout or "no responders" while a stream elects a new leader; not an answer. */
function transient(err: unknown): boolean {
  const e = err as { name?: string; code?: unknown; message?: string };
  if (err instanceof JetStreamApiError) return err.code === 503 || err.status === 503;
  return (
    e?.name === "TimeoutError" ||
    e?.name === "NoRespondersError" ||
    /timeout|no responders/i.test(e?.message ?? "")
  );
}

/** Runs a read again while the registry's streams are electing a leader, up to {@link ELECTION_MS}. */
async function patiently<T>(f: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + ELECTION_MS;
  for (let attempt = 0; ; attempt++) {
    try {
      return await f();
    } catch (err) {
      if (!transient(err) || Date.now() > deadline) throw err;
      await delay(Math.min(1000, 100 * 2 ** attempt));
    }
  }
}

async function exists(nc: NatsConnection, stream: string): Promise<boolean> {
  try {
    // Creating the manager asks the server too (account info): it also waits out an election.
    await patiently(async () => (await jetstreamManager(nc, { timeout: 5000 })).streams.info(stream));
    return true;
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === 404) return false;
    if ((err as { name?: string }).name === "StreamNotFoundError") return false;
    throw unreachable("read", err);
  }
}

/**
 * The registry's two buckets in the connected cluster. `open` reads only (an empty registry when
 * they do not exist yet); `create` makes them on first push, R3 on a cluster of 3 or more
 * (min(3, JetStream servers), read as `jetkit streams apply` reads it), 1 on a single server.
 */
export class RegistryStore {
  readonly #kv: KV | undefined;
  readonly #os: ObjectStore | undefined;
  /** Images already read back and verified, by digest. */
  readonly #images = new Map<string, Uint8Array>();

  private constructor(kv: KV | undefined, os: ObjectStore | undefined) {
    this.#kv = kv;
    this.#os = os;
  }

  static async open(nc: NatsConnection, opts: { create?: boolean } = {}): Promise<RegistryStore> {
    const present = await exists(nc, `KV_${VERSIONS_BUCKET}`);
    if (!present && !opts.create) return new RegistryStore(undefined, undefined);
    try {
      let replicas = 1;
      if (!present) {
        const jsm = await jetstreamManager(nc);
        const cluster = await readCluster(nc, jsm);
        // A cluster whose size cannot be read gets 3: creating the bucket fails loudly if there are fewer.
        replicas = cluster.name === undefined ? 1 : cluster.complete ? Math.min(3, cluster.nodes.length) : 3;
      }
      const kvm = new Kvm(nc);
      const kv = present
        ? await patiently(() => kvm.open(VERSIONS_BUCKET))
        : await kvm.create(VERSIONS_BUCKET, {
            replicas,
            history: 5,
            description: "jetkit contract registry: versions (v.<n>) and the latest pointer",
          });
      const objm = new Objm(nc);
      const os = (await exists(nc, `OBJ_${IMAGES_BUCKET}`))
        ? await patiently(() => objm.open(IMAGES_BUCKET))
        : await objm.create(IMAGES_BUCKET, {
            replicas,
            description: "jetkit contract registry: contract images by SHA-256 digest",
          });
      return new RegistryStore(kv, os);
    } catch (err) {
      if (err instanceof JetkitError) throw err;
      throw unreachable(present ? "open" : "create", err);
    }
  }

  /** Every version, oldest first (none for an empty registry). */
  async versions(): Promise<VersionRecord[]> {
    const kv = this.#kv;
    if (!kv) return [];
    try {
      const latest = await patiently(() => kv.get(LATEST));
      let n = latest && latest.operation === "PUT" ? (latest.json<{ version: number }>().version ?? 0) : 0;
      const records = await Promise.all(Array.from({ length: n }, (_, i) => this.#read(i + 1)));
      // A push that stopped between storing its version and moving `latest` left a newer version behind.
      for (let next = await this.#read(n + 1); next; next = await this.#read(++n + 1)) records.push(next);
      return records.filter((r): r is VersionRecord => r !== undefined);
    } catch (err) {
      if (err instanceof JetkitError) throw err;
      throw unreachable("read", err);
    }
  }

  async #read(version: number): Promise<VersionRecord | undefined> {
    const kv = this.#kv;
    const e = kv ? await patiently(() => kv.get(key(version))) : null;
    if (e?.operation !== "PUT") return undefined;
    try {
      const r = e.json<VersionRecord>();
      if (r.version !== version || typeof r.digest !== "string") throw new Error("unexpected shape");
      return r;
    } catch (err) {
      throw new JetkitError(
        RegistryErrorCodes.CORRUPT,
        `version ${version} of the registry (key ${key(version)} in bucket ${VERSIONS_BUCKET}) is not a version record: ${(err as Error).message}. It was not written by jetkit; restore it from the bucket's history (history 5) or a backup.`,
        { details: { version } },
      );
    }
  }

  /** One version; `JK_REGISTRY_VERSION_UNKNOWN` when the registry does not hold it. */
  async version(version: number, all?: readonly VersionRecord[]): Promise<VersionRecord> {
    const found = all
      ? all.find((r) => r.version === version)
      : await this.#read(version).catch((err) => {
          if (err instanceof JetkitError) throw err;
          throw unreachable("read", err);
        });
    if (found) return found;
    const latest = all ? all.at(-1)?.version : (await this.versions()).at(-1)?.version;
    throw new JetkitError(
      RegistryErrorCodes.VERSION_UNKNOWN,
      latest === undefined
        ? `the registry holds no version ${version}: it is empty. Push the contracts first with 'jetkit contracts push'.`
        : `the registry holds no version ${version}: versions are 1 to ${latest}. List them with 'jetkit contracts list'.`,
      { details: { version, ...(latest === undefined ? {} : { latest }) } },
    );
  }

  /** The image of a version, read from the object store and checked against its digest (cached). */
  async image(record: VersionRecord): Promise<Uint8Array> {
    const cached = this.#images.get(record.digest);
    if (cached) return cached;
    let bytes: Uint8Array | null;
    try {
      const os = this.#os;
      bytes = os ? await patiently(() => os.getBlob(record.digest)) : null;
    } catch (err) {
      throw unreachable("read", err);
    }
    const digest = bytes ? `sha256-${createHash("sha256").update(bytes).digest("hex")}` : undefined;
    if (!bytes || digest !== record.digest) {
      throw new JetkitError(
        RegistryErrorCodes.CORRUPT,
        `the image of version ${record.version} (${record.digest}) is ${bytes ? `not what was pushed (its bytes hash to ${digest})` : "missing"} in bucket ${IMAGES_BUCKET}. Re-push that image (the same bytes restore the object), or restore the bucket from a backup.`,
        { details: { version: record.version, digest: record.digest } },
      );
    }
    this.#images.set(record.digest, bytes);
    return bytes;
  }

  /**
   * Stores a new version: the image under its digest (kept if already there: same name, same
   * bytes), then `v.<n>` with KV create, which fails if another push took that number (then
   * `JK_REGISTRY_PUSH_RACED`, nothing overwritten), then moves `latest` with compare-and-set.
   */
  async store(record: VersionRecord, bytes: Uint8Array): Promise<void> {
    const kv = this.#kv;
    const os = this.#os;
    if (!kv || !os) throw new Error("the registry was opened read-only");
    try {
      const info = await patiently(() => os.info(record.digest));
      // Same name, same bytes: a retried put after a lost answer rewrites what it wrote.
      if (!info || info.deleted) await patiently(() => os.putBlob({ name: record.digest }, bytes));
    } catch (err) {
      throw unreachable("store an image in", err);
    }
    const value = JSON.stringify(record);
    try {
      // Retried through a leader election: a first attempt that was stored makes the retry fail, and reads back as ours below.
      await patiently(() => kv.create(key(record.version), value));
    } catch (err) {
      const taken = await patiently(() => kv.get(key(record.version))).catch(() => null);
      if (taken && taken.operation === "PUT" && taken.string() === value)
        return this.#moveLatest(kv, record.version);
      if (taken && taken.operation === "PUT") {
        throw new JetkitError(
          RegistryErrorCodes.PUSH_RACED,
          `another push stored version ${record.version} while this one was being checked; nothing was stored by this push. Re-run 'jetkit contracts push': it checks against the new version too.`,
          { cause: err, details: { version: record.version } },
        );
      }
      throw unreachable("store a version in", err);
    }
    await this.#moveLatest(kv, record.version);
  }

  async #moveLatest(kv: KV, version: number): Promise<void> {
    try {
      const latest = await patiently(() => kv.get(LATEST));
      const pointed = latest?.operation === "PUT" ? latest.json<{ version: number }>().version : 0;
      // A slower push with a lower number must not move the pointer back.
      if (latest && pointed >= version) return;
      const value = JSON.stringify({ version });
      if (latest) await kv.update(LATEST, value, latest.revision);
      else await kv.create(LATEST, value);
    } catch {
      // The version is stored; readers find it past a stale `latest` (see versions()).
    }
  }
}
