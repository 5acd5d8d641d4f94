import type { StreamSpec } from "../catalog.js";
import { JetkitError } from "../errors.js";
import type { ClusterView } from "./cluster.js";
import { CLUSTER_PING_SUBJECT } from "./cluster.js";
import { StreamsErrorCodes } from "./errors.js";

/** Where a stream's replica count comes from, strongest first. */
export type ReplicasSource = "option" | "contract" | "cluster";

/** How many replicas a stream gets, and why. */
export interface ReplicasChoice {
  readonly count: number;
  readonly source: ReplicasSource;
  /** For people: `replicas option`, `declared in shop/order/v1/events.proto`, `cluster of 3 nodes`, `single server`. */
  readonly reason: string;
}

/** Most copies the default asks for: one node can fail while a quorum (2 of 3) remains. */
const DEFAULT_MAX = 3;

const plural = (n: number) => `${n} node${n === 1 ? "" : "s"}`;

/** The default for streams that neither the option nor the contracts give a count; undefined when it cannot be known. */
function clusterDefault(cluster: ClusterView): ReplicasChoice | undefined {
  const n = cluster.nodes.length;
  if (cluster.complete && cluster.name === undefined)
    return { count: 1, source: "cluster", reason: "single server" };
  if (cluster.complete)
    return { count: Math.min(DEFAULT_MAX, n), source: "cluster", reason: `cluster of ${plural(n)}` };
  // The nodes holding existing streams are a lower bound; enough of them settle the default anyway.
  if (n >= DEFAULT_MAX)
    return { count: DEFAULT_MAX, source: "cluster", reason: `cluster of at least ${plural(n)}` };
  return undefined;
}

function where(cluster: ClusterView): string {
  if (cluster.name === undefined) return `the single JetStream server (${cluster.nodes.join(", ")})`;
  return `the ${cluster.nodes.length} JetStream server(s) of cluster "${cluster.name}" (${cluster.nodes.join(", ")})`;
}

/**
 * Replicas for each stream: the `replicas` option, else what its contract file declares, else
 * min(3, JetStream servers in the cluster), 1 on a single server. Throws before anything is
 * changed when a count exceeds the servers there are (`JK_STREAMS_REPLICAS_EXCEED_CLUSTER`), or
 * when the server is in a cluster of unknown size and a stream would need the default
 * (`JK_STREAMS_CLUSTER_UNKNOWN`).
 */
export function chooseReplicas(
  specs: readonly StreamSpec[],
  cluster: ClusterView,
  replicas: number | undefined,
): Map<string, ReplicasChoice> {
  const fallback = clusterDefault(cluster);
  const choices = new Map<string, ReplicasChoice>();
  const unknown: string[] = [];
  for (const spec of specs) {
    if (replicas !== undefined)
      choices.set(spec.name, { count: replicas, source: "option", reason: "replicas option" });
    else if (spec.replicas !== undefined)
      choices.set(spec.name, {
        count: spec.replicas,
        source: "contract",
        reason: `declared in ${spec.file}`,
      });
    else if (fallback) choices.set(spec.name, fallback);
    else unknown.push(spec.name);
  }
  if (unknown.length > 0) {
    throw new JetkitError(
      StreamsErrorCodes.CLUSTER_UNKNOWN,
      `the server is in cluster "${cluster.name ?? "?"}" but the number of its JetStream servers cannot be read (${cluster.unknownReason ?? "unknown"}), so no replica count can be chosen for ${unknown.join(", ")}; nothing was changed. A guess of 1 would leave single copies that are lost when one node dies. Give the count (--replicas 3 / replicas: 3 for an R3 cluster; --replicas 1 to accept single copies), declare replicas in the contracts, or let this user publish to ${CLUSTER_PING_SUBJECT}.`,
      { details: { streams: unknown, cluster } },
    );
  }
  if (cluster.complete) {
    const tooMany = [...choices].filter(([, c]) => c.count > cluster.nodes.length);
    if (tooMany.length > 0) {
      const most = cluster.nodes.length;
      throw new JetkitError(
        StreamsErrorCodes.REPLICAS_EXCEED_CLUSTER,
        `${tooMany.map(([name, c]) => `${name} asks for ${c.count} replicas (${c.reason})`).join("; ")}, more than ${where(cluster)}: each replica needs its own server; nothing was changed. Ask for at most ${most} (--replicas ${most} / replicas: ${most}), or add servers.`,
        {
          details: {
            streams: tooMany.map(([name, c]) => ({ name, ...c })),
            servers: cluster.nodes,
          },
        },
      );
    }
  }
  return choices;
}
