import type { JetStreamManager, StreamInfo } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";

/**
 * What the connected server says about the JetStream servers that can hold a new stream's
 * replicas: its own cluster's (JetStream places a stream in the cluster of the server that asks).
 */
export interface ClusterView {
  /** The cluster's name from the server's INFO; absent for a server that is not in a cluster. */
  readonly name?: string;
  /** Names of the JetStream servers known to be in the cluster, sorted. */
  readonly nodes: readonly string[];
  /**
   * True when every running JetStream server of the cluster answered, so `nodes` is its size.
   * False when they could not be asked (`unknownReason` says why); `nodes` then holds only the
   * servers seen holding a replica of an existing stream.
   */
  readonly complete: boolean;
  /** Why the servers could not be asked (e.g. the user may not publish to the ping subject). */
  readonly unknownReason?: string;
}

/**
 * Every account may ask this (the server imports it from the system account into each one);
 * each server answers for the asking account only, `include_unused` makes servers where the
 * account has no connection answer too, and the filter keeps other clusters of a supercluster quiet.
 */
export const CLUSTER_PING_SUBJECT = "$SYS.REQ.ACCOUNT.PING.STATZ";
/**
 * Answers come within milliseconds on an idle network; the ping ends this long after the last
 * one. 400 ms missed the third server of a loaded 2-core CI machine (a 3-node cluster counted
 * as 2), so wait a full second.
 */
const STALL_MS = 1_000;
/** Upper bound when no server answers at all. */
const MAX_WAIT_MS = 3_000;

interface PingReply {
  server?: { name?: string; cluster?: string; jetstream?: boolean; flags?: number };
}

/** @internal the connection a target was made from; undefined for a manager that hides it. */
export function connectionOf(target: JetStreamManager | NatsConnection): NatsConnection | undefined {
  if ("requestMany" in target) return target;
  const nc = (target as unknown as { nc?: NatsConnection }).nc;
  return nc && "requestMany" in nc ? nc : undefined;
}

/** True when `jsm` talks to the connected server's own JetStream (not another domain's). */
function localApi(nc: NatsConnection, jsm: JetStreamManager): boolean {
  const prefix = jsm.getOptions().apiPrefix ?? "$JS.API";
  // Servers send `domain` in INFO when JetStream has one; nats.js does not type it.
  const domain = (nc.info as { domain?: string } | undefined)?.domain;
  return prefix === "$JS.API" || (domain !== undefined && prefix === `$JS.${domain}.API`);
}

async function pingCluster(nc: NatsConnection, name: string): Promise<string[]> {
  const request = JSON.stringify({ include_unused: true, cluster: name, exact_match: true });
  const replies = await nc.requestMany(CLUSTER_PING_SUBJECT, request, {
    strategy: "stall",
    stall: STALL_MS,
    maxWait: MAX_WAIT_MS,
  });
  const nodes: string[] = [];
  for await (const m of replies) {
    let reply: PingReply;
    try {
      reply = m.json<PingReply>();
    } catch {
      continue;
    }
    const s = reply.server;
    // `jetstream` is the older flag; bit 0 of `flags` says the same on newer servers.
    const jetstream = s?.jetstream === true || ((s?.flags ?? 0) & 1) === 1;
    if (s?.name && s.cluster === name && jetstream) nodes.push(s.name);
  }
  return nodes;
}

/**
 * Asks the connected server how many JetStream servers its cluster has, with what an ordinary
 * account may see: the server INFO's cluster name, then a ping every server of that cluster
 * answers (servers that are down do not). Never throws: what cannot be known is reported in
 * `complete` and `unknownReason`.
 */
export async function readCluster(
  target: JetStreamManager | NatsConnection,
  jsm: JetStreamManager,
): Promise<ClusterView> {
  const nc = connectionOf(target) ?? connectionOf(jsm);
  if (!nc?.info) {
    return {
      nodes: [],
      complete: false,
      unknownReason: "the JetStream manager does not expose its connection, so the server cannot be asked",
    };
  }
  if (!localApi(nc, jsm)) {
    return {
      nodes: [],
      complete: false,
      unknownReason: `the JetStream API is in another domain (${jsm.getOptions().apiPrefix}) than the connected server, whose cluster says nothing about it`,
    };
  }
  const name = nc.info.cluster;
  if (!name) return { nodes: [nc.info.server_name], complete: true };
  try {
    const nodes = [...new Set(await pingCluster(nc, name))].sort();
    if (nodes.length > 0) return { name, nodes, complete: true };
    return { name, nodes, complete: false, unknownReason: `no server answered ${CLUSTER_PING_SUBJECT}` };
  } catch (err) {
    return {
      name,
      nodes: [],
      complete: false,
      unknownReason: `asking ${CLUSTER_PING_SUBJECT} failed: ${(err as Error).message}`,
    };
  }
}

/**
 * `view` with the servers that hold a replica of an existing stream of its cluster added: a
 * stream's info names them even while they are down, so a node that is down still counts.
 */
export function withStreamPeers(view: ClusterView, infos: Iterable<StreamInfo>): ClusterView {
  if (view.name === undefined) return view;
  const peers = new Set(view.nodes);
  for (const si of infos) {
    if (si.cluster?.name !== view.name) continue;
    if (si.cluster.leader) peers.add(si.cluster.leader);
    for (const r of si.cluster.replicas ?? []) peers.add(r.name);
  }
  return peers.size === view.nodes.length ? view : { ...view, nodes: [...peers].sort() };
}
