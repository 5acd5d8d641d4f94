import { setTimeout as sleep } from "node:timers/promises";
import type { ChaosTarget } from "../cluster/target.js";
import type { Rng } from "../prng.js";
import type { FaultProxy } from "../proxy/fault-proxy.js";
import type { ConsumerProcess } from "../workload/consumer-process.js";
import { WORKLOAD_STREAM } from "../workload/events.js";
import type { WorkloadProducer } from "../workload/producer.js";
import type { FaultSpec } from "./spec.js";

/** What a fault acts on. */
export interface FaultContext {
  target: ChaosTarget;
  producer: WorkloadProducer;
  consumer: ConsumerProcess;
  rng: Rng;
  baseHandlerDelayMs: number;
  baseDuplicateRate: number;
  /** Aborted when the drill stops: long faults (a rolling restart) end early. */
  signal: AbortSignal;
}

/** A started fault: `detail` for the history, `rollback` undoes it (idempotent). */
export interface StartedFault {
  detail: string;
  rollback: () => Promise<void>;
}

/** Why a fault cannot run on this target, or undefined when it can. */
export function unsupportedReason(spec: FaultSpec, target: ChaosTarget): string | undefined {
  const processFault = ["kill", "terminate", "pause", "rolling_restart"].includes(spec.action);
  if (processFault && target.kind !== "local")
    return "process faults need the local cluster; the target is given by URL";
  if (spec.action === "partition" && target.kind !== "local")
    return "partitions need the local cluster's route links";
  if (spec.action === "toxic" && spec.link === "route" && target.kind !== "local")
    return "route toxics need the local cluster";
  if (spec.action === "toxic" && spec.link === "route" && target.netns)
    return "route toxics need the route proxies; this cluster runs in network namespaces (use action netem)";
  if (spec.action === "netem") {
    if (!target.netns) {
      return `netem needs the nodes in network namespaces (target network: auto, root on Linux)${target.network.note ? `: ${target.network.note}` : ""}`;
    }
    if (!target.network.support?.netem) return target.network.support?.netemReason ?? "netem unavailable";
  }
  return undefined;
}

/** Resolves a node selector when the fault starts. */
export async function resolveNode(selector: string, ctx: FaultContext): Promise<string[]> {
  const { target, rng } = ctx;
  const names = target.nodeNames;
  switch (selector) {
    case "all":
      return names;
    case "random":
      return [rng.pick(names)];
    case "stream_leader":
      return [(await target.cluster?.streamLeader(WORKLOAD_STREAM)) ?? rng.pick(names)];
    case "meta_leader":
      return [(await target.cluster?.metaLeader()) ?? rng.pick(names)];
    case "follower": {
      const leader = await target.cluster?.streamLeader(WORKLOAD_STREAM);
      return [rng.pick(names.filter((n) => n !== leader))];
    }
    default:
      return [selector];
  }
}

const once = (fn: () => Promise<void>) => {
  let done = false;
  return async () => {
    if (done) return;
    done = true;
    await fn();
  };
};

/** Starts one occurrence of a fault. */
export async function startFault(spec: FaultSpec, ctx: FaultContext): Promise<StartedFault> {
  const { target, producer, consumer } = ctx;
  switch (spec.action) {
    case "kill":
    case "terminate": {
      const [name] = await resolveNode(spec.node ?? "random", ctx);
      const node = target.node(name ?? "n1");
      if (spec.action === "kill") await node.kill();
      else await node.stop();
      return {
        detail: `${spec.action === "kill" ? "kill -9" : "SIGTERM"} ${node.name}`,
        rollback: once(async () => {
          await node.start();
          // Clients reconnect through the same proxy port; drop stale proxy links so they notice at once.
        }),
      };
    }
    case "pause": {
      const [name] = await resolveNode(spec.node ?? "random", ctx);
      const node = target.node(name ?? "n1");
      node.pause();
      return {
        detail: `SIGSTOP ${node.name}`,
        rollback: once(async () => {
          if (node.running) node.resume();
        }),
      };
    }
    case "rolling_restart": {
      const stopped = new Set<string>();
      let cancelled = false;
      const run = (async () => {
        for (const name of target.nodeNames) {
          if (cancelled || ctx.signal.aborted) return;
          const node = target.node(name);
          stopped.add(name);
          await node.stop();
          await node.start();
          stopped.delete(name);
          await sleep(spec.gapMs ?? 1000);
        }
      })();
      await run;
      return {
        detail: `restarted ${target.nodeNames.join(", ")} one by one (SIGTERM, start, healthy)`,
        rollback: once(async () => {
          cancelled = true;
          for (const name of stopped) await target.node(name).start();
        }),
      };
    }
    case "toxic": {
      const names = spec.node ? await resolveNode(spec.node, ctx) : target.nodeNames;
      const proxies: FaultProxy[] =
        spec.link === "route"
          ? target.routeLinks
              .filter((l) => names.includes(l.from) || names.includes(l.to))
              .map((l) => l.proxy)
          : names.map((n) => target.clientProxies.get(n)).filter((p): p is FaultProxy => p !== undefined);
      const toxic = spec.toxic ?? { type: "latency" };
      const ids = proxies.map((p) => [p, p.addToxic(toxic)] as const);
      return {
        detail: `${toxic.type} ${JSON.stringify(toxic.attributes ?? {})} ${toxic.direction ?? "both"} on ${proxies.map((p) => p.name).join(", ")}`,
        rollback: once(async () => {
          for (const [p, id] of ids) p.removeToxic(id);
        }),
      };
    }
    case "partition": {
      const minority = new Set<string>();
      for (const sel of spec.nodes ?? []) for (const n of await resolveNode(sel, ctx)) minority.add(n);
      if (target.netns) return partitionNamespaces(target, [...minority], spec.isolateClients !== false);
      const cut = target.routeLinks.filter((l) => minority.has(l.from) !== minority.has(l.to));
      const ids = cut.map(
        (l) => [l.proxy, l.proxy.addToxic({ type: "timeout", attributes: { timeout: 0 } })] as const,
      );
      const clientIds: (readonly [FaultProxy, number])[] = [];
      if (spec.isolateClients !== false) {
        // Clients are on the majority side: their links to the minority are reset and refused.
        for (const n of minority) {
          const p = target.clientProxies.get(n);
          if (!p) continue;
          clientIds.push([p, p.addToxic({ type: "reset_peer", attributes: { timeout: 0 } })]);
          p.dropConnections(true);
        }
      }
      return {
        detail: `route proxies cut between {${[...minority].join(", ")}} and {${target.nodeNames.filter((n) => !minority.has(n)).join(", ")}} (proxy layer)${clientIds.length ? "; clients refused by the minority" : ""}`,
        rollback: once(async () => {
          for (const [p, id] of [...ids, ...clientIds]) p.removeToxic(id);
        }),
      };
    }
    case "consumer_crash": {
      const pid = consumer.pid;
      await consumer.crash();
      return {
        detail: `kill -9 consumer pid ${pid ?? "?"} (supervisor restarts it)`,
        rollback: async () => {},
      };
    }
    case "poison":
      producer.setPoisonRate(spec.rate ?? 20);
      return {
        detail: `${spec.rate ?? 20} poison messages/s (undecodable bytes and contract violations)`,
        rollback: once(async () => producer.setPoisonRate(0)),
      };
    case "slow_handler":
      consumer.command({ handlerDelayMs: spec.delayMs ?? 0 });
      return {
        detail: `handler takes ${spec.delayMs ?? 0} ms per message`,
        rollback: once(async () => consumer.command({ handlerDelayMs: ctx.baseHandlerDelayMs })),
      };
    case "duplicate_publish":
      producer.setDuplicateRate(spec.rate ?? 0.2);
      return {
        detail: `${Math.round((spec.rate ?? 0.2) * 100)}% of acked messages published again with the same id`,
        rollback: once(async () => producer.setDuplicateRate(ctx.baseDuplicateRate)),
      };
    case "netem": {
      const net = target.netns;
      if (!net) throw new Error("netem needs the nodes in network namespaces");
      const names = new Set<string>();
      for (const sel of spec.nodes ?? []) for (const n of await resolveNode(sel, ctx)) names.add(n);
      const rollbacks: (() => Promise<void>)[] = [];
      const netem = {
        ...(spec.delayMs !== undefined ? { delayMs: spec.delayMs } : {}),
        ...(spec.jitterMs !== undefined ? { jitterMs: spec.jitterMs } : {}),
        ...(spec.lossPct !== undefined ? { lossPct: spec.lossPct } : {}),
      };
      try {
        for (const n of names) rollbacks.push(await net.netem(n, netem));
      } catch (err) {
        for (const r of rollbacks) await r().catch(() => {});
        throw err;
      }
      return {
        detail: `netem ${JSON.stringify(netem)} on the cluster links of ${[...names].join(", ")} (network namespaces)`,
        rollback: once(async () => {
          for (const r of rollbacks) await r();
        }),
      };
    }
  }
}

/** A real partition: the minority's bridge ports move to an isolated bridge; clients are refused by the minority. */
async function partitionNamespaces(
  target: ChaosTarget,
  minority: string[],
  isolateClients: boolean,
): Promise<StartedFault> {
  const net = target.netns;
  if (!net) throw new Error("no namespace network");
  const heal = await net.partition(minority);
  const clientIds: (readonly [FaultProxy, number])[] = [];
  if (isolateClients) {
    for (const n of minority) {
      const p = target.clientProxies.get(n);
      if (!p) continue;
      clientIds.push([p, p.addToxic({ type: "reset_peer", attributes: { timeout: 0 } })]);
      p.dropConnections(true);
    }
  }
  const majority = target.nodeNames.filter((n) => !minority.includes(n));
  return {
    detail: `network partition between {${minority.join(", ")}} and {${majority.join(", ")}} (network namespaces ${net.bridgeNs}: bridge ports moved to an isolated bridge)${clientIds.length ? "; clients refused by the minority" : ""}`,
    rollback: once(async () => {
      await heal();
      for (const [p, id] of clientIds) p.removeToxic(id);
    }),
  };
}
