import {
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  jetstreamManager,
  type StreamInfo,
} from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { StreamSpec } from "../catalog.js";
import { JetkitError } from "../errors.js";
import { subjectsOverlap } from "../subjects.js";
import { type ClusterView, readCluster, withStreamPeers } from "./cluster.js";
import { type ManagedStreamConfig, managedPart, streamConfig } from "./config.js";
import { diffStreamConfig, type FieldChange } from "./diff.js";
import { StreamsErrorCodes } from "./errors.js";
import { chooseReplicas, type ReplicasChoice } from "./replicas.js";

/** Options of {@link planStreams} and `applyStreams`. */
export interface StreamsOptions {
  /**
   * Replicas for every stream, overriding the contracts. Default: what the stream's contract
   * file declares, else min(3, JetStream servers in the connected server's cluster), 1 on a
   * single server. A count above the servers there are is refused before anything changes
   * (`JK_STREAMS_REPLICAS_EXCEED_CLUSTER`); on a cluster whose size cannot be read, a stream
   * without a declared count is refused (`JK_STREAMS_CLUSTER_UNKNOWN`) unless this is given.
   */
  replicas?: number;
  /** Manage only these streams of the catalog (by name). Default: all of them. */
  only?: readonly string[];
  /**
   * Let changes that lose data through: storage or retention changes (delete and create
   * again, dropping every message), shrinking max_age/max_bytes/max_msgs, removing a subject,
   * lowering replicas. Default: false, such changes are refused.
   */
  allowDestructive?: boolean;
}

/** What a plan does with one stream of the catalog. */
export type StreamAction = "create" | "update" | "recreate" | "unchanged" | "refused";

/** One stream of the catalog and what applying the plan does with it. */
export interface StreamPlanEntry {
  readonly name: string;
  readonly action: StreamAction;
  /** The proto file that declares the stream. */
  readonly file: string;
  /** Settings that differ from the server's (empty for create and unchanged). */
  readonly changes: readonly FieldChange[];
  /** For `refused`: why; for `recreate`: why the stream must be deleted and created again. */
  readonly reasons: readonly string[];
  /** Messages the stream holds now (absent when it does not exist); `recreate` drops them all. */
  readonly messages?: number;
  /** For `refused`: whether `allowDestructive` would let it through (never for conflicts). */
  readonly overridable?: boolean;
  /** The configuration the contracts ask for. */
  readonly config: ManagedStreamConfig;
  /** Where `config.num_replicas` comes from: the option, the contract file or the cluster's size. */
  readonly replicas: ReplicasChoice;
}

/** A stream on the server that the catalog does not declare: reported, never touched. */
export interface UnmanagedStream {
  readonly name: string;
  readonly subjects: readonly string[];
  readonly messages: number;
}

/** The difference between the catalog's streams and a live server, and what apply will do. */
export interface StreamPlan {
  readonly entries: readonly StreamPlanEntry[];
  /** The JetStream servers the plan sized replicas by. */
  readonly cluster: ClusterView;
  readonly unmanaged: readonly UnmanagedStream[];
  readonly allowDestructive: boolean;
  /** Number of entries that apply would change (create, update, recreate). */
  readonly pending: number;
  /** Number of refused entries; apply refuses the whole plan when it is not 0. */
  readonly refused: number;
}

/** Anything that holds the streams to manage; a `Catalog` does. */
export interface StreamSource {
  readonly streams: readonly StreamSpec[];
}

/** A JetStream manager, or a connection to make one from. */
export type StreamsTarget = JetStreamManager | NatsConnection;

/** @internal */
export async function managerOf(target: StreamsTarget): Promise<JetStreamManager> {
  if ("streams" in target && "consumers" in target) return target;
  try {
    return await jetstreamManager(target as NatsConnection);
  } catch (err) {
    throw unavailable(err);
  }
}

/** @internal */
export function unavailable(err: unknown): JetkitError {
  return new JetkitError(
    StreamsErrorCodes.UNAVAILABLE,
    `cannot read the server's streams: ${(err as Error).message}. Check that the server runs with JetStream enabled and that this user may use the JetStream API ($JS.API.>).`,
    { cause: err },
  );
}

function selectSpecs(source: StreamSource, opts: StreamsOptions): StreamSpec[] {
  const { replicas, only } = opts;
  if (replicas !== undefined && !(Number.isInteger(replicas) && replicas >= 1 && replicas <= 5)) {
    throw new JetkitError(
      StreamsErrorCodes.INVALID_OPTIONS,
      `replicas must be an integer from 1 to 5 (JetStream's limit), got ${String(replicas)}.`,
      { details: { replicas } },
    );
  }
  if (!only) return [...source.streams];
  const known = new Set(source.streams.map((s) => s.name));
  const missing = only.filter((n) => !known.has(n));
  if (missing.length > 0) {
    throw new JetkitError(
      StreamsErrorCodes.INVALID_OPTIONS,
      `no stream named ${missing.join(", ")} in the contracts. Known streams: ${[...known].sort().join(", ")}.`,
      { details: { missing } },
    );
  }
  return source.streams.filter((s) => only.includes(s.name));
}

async function serverStreams(jsm: JetStreamManager): Promise<Map<string, StreamInfo>> {
  const infos = new Map<string, StreamInfo>();
  try {
    for await (const si of jsm.streams.list()) infos.set(si.config.name, si);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return infos;
    throw unavailable(err);
  }
  return infos;
}

/**
 * Compares the catalog's streams with the server's and says, per stream, what `applyStreams`
 * would do. Reads only; never changes the server.
 */
export async function planStreams(
  target: StreamsTarget,
  source: StreamSource,
  opts: StreamsOptions = {},
): Promise<StreamPlan> {
  const specs = selectSpecs(source, opts);
  const allowDestructive = opts.allowDestructive === true;
  const jsm = await managerOf(target);
  const [infos, asked] = await Promise.all([serverStreams(jsm), readCluster(target, jsm)]);
  const cluster = withStreamPeers(asked, infos.values());
  const replicas = chooseReplicas(specs, cluster, opts.replicas);
  const managed = new Set(specs.map((s) => s.name));
  const catalogNames = new Set(source.streams.map((s) => s.name));
  const others = [...infos.values()].filter((si) => !managed.has(si.config.name));

  const entries = specs.map((spec): StreamPlanEntry => {
    const choice = replicas.get(spec.name)!;
    const config = streamConfig(spec, choice.count);
    const base = { name: spec.name, file: spec.file, config, replicas: choice };
    const conflicts = others.flatMap((si) =>
      config.subjects.flatMap((a) =>
        (si.config.subjects ?? [])
          .filter((b) => subjectsOverlap(a, b))
          .map(
            (b) =>
              `subjects "${a}" overlap "${b}" of stream ${si.config.name}, which the contracts do not manage; rename or delete that stream by hand`,
          ),
      ),
    );
    const info = infos.get(spec.name);
    if (!info) {
      if (conflicts.length > 0) {
        return { ...base, action: "refused", changes: [], reasons: conflicts, overridable: false };
      }
      return { ...base, action: "create", changes: [], reasons: [] };
    }
    const messages = info.state.messages;
    const changes = diffStreamConfig(managedPart(info.config as unknown as Record<string, unknown>), config);
    if (changes.length === 0) return { ...base, action: "unchanged", changes, reasons: [], messages };
    if (conflicts.length > 0) {
      return { ...base, action: "refused", changes, reasons: conflicts, messages, overridable: false };
    }
    const destructive = changes.flatMap((c) => (c.destructive ? [c.destructive] : []));
    if (destructive.length > 0 && !allowDestructive) {
      return { ...base, action: "refused", changes, reasons: destructive, messages, overridable: true };
    }
    if (changes.some((c) => c.recreate)) {
      return { ...base, action: "recreate", changes, reasons: destructive, messages };
    }
    return { ...base, action: "update", changes, reasons: destructive, messages };
  });

  const unmanaged = [...infos.values()]
    .filter((si) => !catalogNames.has(si.config.name))
    .map((si) => ({
      name: si.config.name,
      subjects: [...(si.config.subjects ?? [])],
      messages: si.state.messages,
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
  return {
    entries,
    cluster,
    unmanaged,
    allowDestructive,
    pending: entries.filter((e) => e.action !== "unchanged" && e.action !== "refused").length,
    refused: entries.filter((e) => e.action === "refused").length,
  };
}
