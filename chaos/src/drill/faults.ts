import { setTimeout as sleep } from "node:timers/promises";
import type { NatsConnection } from "@nats-io/nats-core";
import type { ChaosTarget } from "../cluster/target.js";
import { waitFor } from "../cluster/target.js";
import type { Rng } from "../prng.js";
import type { FaultProxy } from "../proxy/fault-proxy.js";
import type { ConsumerProcess } from "../workload/consumer-process.js";
import { WORKLOAD_STREAM } from "../workload/events.js";
import type { WorkloadProducer } from "../workload/producer.js";
import type { RelayProcess } from "../workload/relay-process.js";
import { IDEMPOTENCY_STREAM } from "./setup.js";
import type { FaultSpec } from "./spec.js";

/** What a fault acts on. */
export interface FaultContext {
  target: ChaosTarget;
  producer: WorkloadProducer;
  /** The workload's consumer processes (`consumer-1` ...). */
  consumers: ConsumerProcess[];
  /** Outbox mode: the relay processes (`relay-1` ...); empty otherwise. */
  relays: RelayProcess[];
  /** A connection straight to the nodes (no proxy) for JetStream API calls (leader step-downs). */
  admin?: NatsConnection;
  /** The workload's durable on WORKLOAD_STREAM. */
  durable?: string;
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
  /**
   * When the fault took effect. Default: when startFault returned (the node is dead, the partition
   * or toxic in place). A rolling restart returns when it is over, so it says when it began; a
   * crash planned for the next effect, when the process was gone.
   */
  at?: number;
}

/** Why a fault cannot run on this target, or undefined when it can. */
export function unsupportedReason(spec: FaultSpec, target: ChaosTarget): string | undefined {
  const processFault = ["kill", "terminate", "pause", "rolling_restart", "store_outage"].includes(
    spec.action,
  );
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

/** The consumer processes a consumer fault hits. */
/**
 * The relays a relay_crash hits: `active` is the one that acknowledged a publish last (the lease
 * holder while it publishes), else a random one.
 */
function pickRelays(selector: string | undefined, ctx: FaultContext): RelayProcess[] {
  const all = ctx.relays;
  if (selector === "all") return all;
  if (selector === undefined || selector === "active") {
    const running = all.filter((r) => r.pid !== undefined);
    const latest = running.reduce<RelayProcess | undefined>(
      (best, r) => (r.stats.lastAckAt > (best?.stats.lastAckAt ?? 0) ? r : best),
      undefined,
    );
    return latest ? [latest] : running.length > 0 ? [ctx.rng.pick(running)] : [];
  }
  if (selector === "random") return all.length > 0 ? [ctx.rng.pick(all)] : [];
  return all.filter((r) => r.config.name === selector);
}

function pickConsumers(selector: string | undefined, ctx: FaultContext): ConsumerProcess[] {
  const all = ctx.consumers;
  if (selector === "all") return all;
  if (selector === undefined || selector === "random") return all.length > 0 ? [ctx.rng.pick(all)] : [];
  return all.filter((c) => c.config.name === selector);
}

/**
 * Starts one occurrence of a fault. `step` is told each step of a fault with several (a rolling
 * restart's node by node), for the history's timeline.
 */
export async function startFault(
  spec: FaultSpec,
  ctx: FaultContext,
  step: (what: string) => void = () => {},
): Promise<StartedFault> {
  const { target, producer, consumers } = ctx;
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
      const begun = Date.now();
      const stopped = new Set<string>();
      let cancelled = false;
      const lameDuck = spec.shutdown === "lame_duck";
      const notes: string[] = [];
      const run = (async () => {
        for (const name of target.nodeNames) {
          if (cancelled || ctx.signal.aborted) return;
          const node = target.node(name);
          stopped.add(name);
          if (lameDuck) {
            // nats-server's lame duck mode (SIGUSR2, what `--signal ldm` sends): it stops taking
            // new clients and shuts its JetStream down at once (its Raft leaderships pass to the
            // peers), then waits lame_duck_grace_period (10 s) and closes its clients over
            // lame_duck_duration (30 s at least). A SIGTERM waits that grace out; SIGINT ends it
            // at once, so the drill sends SIGINT after lameDuckMs.
            const t0 = Date.now();
            const wait = spec.lameDuckMs ?? 3000;
            step(`${name}: lame duck (SIGUSR2)`);
            node.signal("SIGUSR2");
            const exited = await waitFor(() => !node.running, wait, 50);
            if (!exited) {
              step(`${name}: SIGINT after ${wait} ms in lame duck`);
              node.signal("SIGINT");
              await waitFor(() => !node.running, 10_000, 50);
            }
            notes.push(
              `${name}: ${exited ? `exited in lame duck after ${Date.now() - t0} ms` : `SIGINT after ${wait} ms in lame duck`}`,
            );
          } else step(`${name}: SIGTERM`);
          // Without lame duck: SIGTERM (and SIGKILL after 10 s); with it, a no-op unless SIGINT did not end it.
          await node.stop();
          step(`${name}: stopped; starting`);
          await node.start();
          step(`${name}: healthy`);
          stopped.delete(name);
          await sleep(spec.gapMs ?? 1000);
        }
      })();
      await run;
      return {
        at: begun,
        detail: lameDuck
          ? `restarted ${target.nodeNames.join(", ")} one by one (lame duck via SIGUSR2, then SIGINT, start, healthy; ${notes.join("; ")})`
          : `restarted ${target.nodeNames.join(", ")} one by one (SIGTERM, start, healthy)`,
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
      const hit = pickConsumers(spec.consumer, ctx);
      if (spec.point === "after_effect") {
        // Which effect, from the seed: the 1st to 5th the process appends from now.
        const plans = hit.map((c) => ({ c, n: 1 + ctx.rng.int(5), pid: c.pid }));
        const exits = plans.map((p) => p.c.nextExit(15_000));
        for (const p of plans) p.c.crashAfterEffects(p.n);
        // The fault is the crash: it starts when the first planned process is gone.
        const times = await Promise.all(exits);
        const at = times.filter((t): t is number => t !== undefined);
        return {
          detail: plans
            .map(
              (p, i) =>
                `${p.c.config.name} (pid ${p.pid ?? "?"}) killed itself (SIGKILL) right after its ${p.n}. effect from the fault's schedule, before the SDK recorded or acked it${times[i] === undefined ? " (it did not crash within 15 s: no effect)" : ""}`,
            )
            .join("; "),
          rollback: async () => {},
          ...(at.length > 0 ? { at: Math.min(...at) } : {}),
        };
      }
      const pids = hit.map((c) => `${c.config.name} pid ${c.pid ?? "?"}`);
      await Promise.all(hit.map((c) => c.crash()));
      return {
        detail: `kill -9 ${pids.join(", ")} (the supervisor restarts it)`,
        rollback: async () => {},
      };
    }
    case "consumer_pause": {
      const hit = pickConsumers(spec.consumer, ctx);
      const paused = hit.filter((c) => c.pause());
      return {
        detail: `SIGSTOP ${paused.map((c) => `${c.config.name} pid ${c.pid ?? "?"}`).join(", ") || "nothing (no process running)"}; SIGCONT at the fault's end`,
        rollback: once(async () => {
          for (const c of paused) c.resume();
        }),
      };
    }
    case "relay_crash": {
      const hit = pickRelays(spec.relay, ctx);
      const pids = hit.map((r) => `${r.config.name} pid ${r.pid ?? "?"}`);
      await Promise.all(hit.map((r) => r.crash()));
      return {
        detail: `kill -9 outbox relay ${pids.join(", ") || "(none running)"} (the supervisor restarts it; a standby takes the lease after it lapses)`,
        rollback: async () => {},
      };
    }
    case "store_outage":
      return storeOutage(ctx, step);
    case "poison":
      producer.setPoisonRate(spec.rate ?? 20);
      return {
        detail: `${spec.rate ?? 20} poison messages/s (undecodable bytes and contract violations)`,
        rollback: once(async () => producer.setPoisonRate(0)),
      };
    case "slow_handler":
      for (const c of consumers) c.command({ handlerDelayMs: spec.delayMs ?? 0 });
      return {
        detail: `handler takes ${spec.delayMs ?? 0} ms per message`,
        rollback: once(async () => {
          for (const c of consumers) c.command({ handlerDelayMs: ctx.baseHandlerDelayMs });
        }),
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

/**
 * Takes the idempotency store down: the node leading the bucket's stream is frozen (SIGSTOP) for
 * the fault's duration. First the workload stream's and the durable's leaderships are moved off
 * that node (leader step-down with it excluded as preferred peer, retried) and the clients' links
 * to it are reset and refused, so what breaks is the store: its stream has no leader until the
 * other two elect one (the leadership poll measures it), and the frozen node comes back stale.
 */
async function storeOutage(ctx: FaultContext, step: (what: string) => void): Promise<StartedFault> {
  const { target, admin } = ctx;
  const leader = await target.cluster?.streamLeader(IDEMPOTENCY_STREAM);
  if (!leader) throw new Error(`no leader of ${IDEMPOTENCY_STREAM} is known`);
  const others = target.nodeNames.filter((n) => n !== leader);
  const moved: string[] = [];
  if (admin) {
    const groups = [
      { name: `stream ${WORKLOAD_STREAM}`, api: `$JS.API.STREAM.LEADER.STEPDOWN.${WORKLOAD_STREAM}` },
      ...(ctx.durable
        ? [
            {
              name: `consumer ${ctx.durable}`,
              api: `$JS.API.CONSUMER.LEADER.STEPDOWN.${WORKLOAD_STREAM}.${ctx.durable}`,
            },
          ]
        : []),
    ];
    for (const g of groups) {
      const current = () =>
        g.name.startsWith("stream")
          ? target.cluster?.streamLeader(WORKLOAD_STREAM)
          : consumerLeader(admin, ctx.durable ?? "");
      for (let attempt = 0; attempt < 5 && (await current()) === leader; attempt++) {
        const preferred = ctx.rng.pick(others);
        step(`${g.name}: leader step-down off ${leader} (preferred ${preferred})`);
        await admin
          .request(g.api, JSON.stringify({ placement: { preferred } }), { timeout: 3000 })
          .catch(() => undefined);
        await waitFor(async () => (await current()) !== leader, 3000, 100);
      }
      const now = await current();
      moved.push(`${g.name} led by ${now ?? "?"}${now === leader ? " (could not be moved)" : ""}`);
    }
  }
  const proxy = target.clientProxies.get(leader);
  const refused = proxy?.addToxic({ type: "reset_peer", attributes: { timeout: 0 } });
  proxy?.dropConnections(true);
  const node = target.node(leader);
  node.pause();
  const at = Date.now();
  return {
    at,
    detail: `SIGSTOP ${leader}, the leader of ${IDEMPOTENCY_STREAM} (the idempotency store); before it: ${moved.join(", ") || "nothing moved"}; clients refused by ${leader}`,
    rollback: once(async () => {
      if (node.running) node.resume();
      if (proxy && refused !== undefined) proxy.removeToxic(refused);
    }),
  };
}

/** The durable's Raft leader as the consumer info says (three tries: it may be electing), or undefined. */
async function consumerLeader(nc: NatsConnection, durable: string): Promise<string | undefined> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const m = await nc.request(`$JS.API.CONSUMER.INFO.${WORKLOAD_STREAM}.${durable}`, "", {
        timeout: 1000,
      });
      const leader = (m.json() as { cluster?: { leader?: string } }).cluster?.leader;
      if (leader) return leader;
    } catch {}
    await sleep(200);
  }
  return undefined;
}
