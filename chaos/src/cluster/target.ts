import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import {
  NatsCluster,
  NatsServer,
  natsServerBinary,
  type ServerOptions,
  type ServerPorts,
} from "@jetkit/launcher";
import { ChaosError, ChaosErrorCodes } from "../errors.js";
import { FaultProxy } from "../proxy/fault-proxy.js";
import { freePort, startRefuser } from "./free-port.js";
import { NetnsNetwork, type NetnsSupport, probeNetns } from "./netns.js";

/** What a drill runs against: a local cluster it started, or an existing one given by URL. */
export interface TargetOptions {
  /** Client URLs of an existing cluster; when set no local cluster is started and process faults are skipped. */
  urls?: string[];
  /** Nodes of the local cluster. Default: 3. */
  nodes?: number;
  /** `sync_interval` of the local cluster's JetStream (`always` fsyncs every write). Default: server default. */
  syncInterval?: string;
  /** Seed of the proxies' random choices. */
  seed: string;
  /** Print server logs to stderr. */
  debug?: boolean;
  /**
   * How cluster routes are carried: `proxies` (a TCP fault proxy per route, no root needed), or
   * `auto`: each node in its own network namespace where the process is root on Linux (real
   * partitions and netem), else proxies. Default: proxies.
   */
  network?: "proxies" | "auto";
}

/** How the target's network was built, for the report. */
export interface NetworkInfo {
  mode: "proxies" | "namespaces" | "url";
  /** Why namespaces were not used (when asked for with `auto`), or netem's status. */
  note?: string;
  support?: NetnsSupport;
}

/** A route between two nodes, carried by a fault proxy so that it can be cut or slowed. */
export interface RouteLink {
  from: string;
  to: string;
  proxy: FaultProxy;
}

/**
 * The drill's view of a cluster: a fault proxy in front of each node's client port, route links
 * between local nodes, and process control where the nodes are local.
 */
export class ChaosTarget {
  readonly kind: "local" | "url";
  readonly nodeNames: string[];
  readonly clientProxies: Map<string, FaultProxy>;
  readonly routeLinks: RouteLink[];
  /** Direct client URLs (no proxy): for the drill's own probes and the final check. */
  readonly directUrls: string[];
  readonly cluster: NatsCluster | undefined;
  /** The nodes' network namespaces, when the target runs in them. */
  readonly netns: NetnsNetwork | undefined;
  readonly network: NetworkInfo;
  /** Plain forwarders from 127.0.0.1 into the namespaces (direct client and monitoring ports). */
  readonly forwarders: FaultProxy[];
  #cleanup: (() => Promise<void>)[];

  /** @internal use {@link openTarget} */
  constructor(init: {
    kind: "local" | "url";
    nodeNames: string[];
    clientProxies: Map<string, FaultProxy>;
    routeLinks: RouteLink[];
    directUrls: string[];
    cluster?: NatsCluster;
    netns?: NetnsNetwork;
    network: NetworkInfo;
    forwarders?: FaultProxy[];
    cleanup: (() => Promise<void>)[];
  }) {
    this.kind = init.kind;
    this.nodeNames = init.nodeNames;
    this.clientProxies = init.clientProxies;
    this.routeLinks = init.routeLinks;
    this.directUrls = init.directUrls;
    this.cluster = init.cluster;
    this.netns = init.netns;
    this.network = init.network;
    this.forwarders = init.forwarders ?? [];
    this.#cleanup = init.cleanup;
  }

  /** Client URLs through the fault proxies: what the workload connects to. */
  get clientUrls(): string[] {
    return [...this.clientProxies.values()].map((p) => p.url);
  }

  /** Every proxy (client and route), e.g. to check they are all closed. */
  get proxies(): FaultProxy[] {
    return [...this.clientProxies.values(), ...this.routeLinks.map((l) => l.proxy), ...this.forwarders];
  }

  node(name: string): NatsServer {
    if (!this.cluster) {
      throw new ChaosError(
        ChaosErrorCodes.FAULT_UNSUPPORTED,
        `process faults need a local cluster; this target is given by URL`,
      );
    }
    return this.cluster.node(name);
  }

  async healthyNodes(): Promise<string[]> {
    if (!this.cluster) return this.nodeNames;
    const up = await Promise.all(this.cluster.nodes.map(async (n) => ((await n.healthy()) ? n.name : "")));
    return up.filter(Boolean);
  }

  /** Removes every toxic from every proxy (the rollback of all network faults). */
  clearAllToxics(): void {
    for (const p of this.proxies) p.clearToxics();
  }

  /** Stops the local cluster (if any), closes every proxy and removes temp dirs. */
  async dispose(): Promise<void> {
    const errors: unknown[] = [];
    for (const step of this.#cleanup.reverse()) {
      try {
        await step();
      } catch (err) {
        errors.push(err);
      }
    }
    this.#cleanup = [];
    if (errors.length > 0) throw errors[0];
  }
}

/** Opens the target: starts a local cluster with proxied client ports and route links, or wraps URLs. */
export async function openTarget(opts: TargetOptions): Promise<ChaosTarget> {
  const cleanup: (() => Promise<void>)[] = [];
  const fail = async (err: unknown): Promise<never> => {
    for (const step of cleanup.reverse()) await step().catch(() => {});
    throw err instanceof ChaosError
      ? err
      : new ChaosError(ChaosErrorCodes.TARGET, `could not open the drill target: ${(err as Error).message}`, {
          cause: err,
        });
  };
  try {
    if (opts.urls && opts.urls.length > 0) return await openUrlTarget(opts.urls, opts.seed, cleanup);
    return await openLocalTarget(opts, cleanup);
  } catch (err) {
    return fail(err);
  }
}

async function openUrlTarget(
  urls: string[],
  seed: string,
  cleanup: (() => Promise<void>)[],
): Promise<ChaosTarget> {
  const clientProxies = new Map<string, FaultProxy>();
  for (const [i, raw] of urls.entries()) {
    const u = new URL(raw.includes("://") ? raw : `nats://${raw}`);
    const name = `s${i + 1}`;
    const proxy = new FaultProxy({
      name: `client:${name}`,
      upstream: { host: u.hostname, port: Number(u.port || 4222) },
      seed: `${seed}/client:${name}`,
    });
    await proxy.listen();
    cleanup.push(() => proxy.close());
    clientProxies.set(name, proxy);
  }
  return new ChaosTarget({
    kind: "url",
    nodeNames: [...clientProxies.keys()],
    clientProxies,
    routeLinks: [],
    directUrls: urls,
    network: { mode: "url" },
    cleanup,
  });
}

async function openLocalTarget(opts: TargetOptions, cleanup: (() => Promise<void>)[]): Promise<ChaosTarget> {
  if (opts.network === "auto") {
    const support = await probeNetns();
    if (support.namespaces) return openNetnsTarget(opts, support, cleanup);
    return openProxyTarget(opts, cleanup, {
      mode: "proxies",
      note: `network namespaces unavailable (${support.reason}); partitions use the route proxies, netem is skipped`,
      support,
    });
  }
  return openProxyTarget(opts, cleanup, { mode: "proxies" });
}

async function openProxyTarget(
  opts: TargetOptions,
  cleanup: (() => Promise<void>)[],
  network: NetworkInfo,
): Promise<ChaosTarget> {
  const size = opts.nodes ?? 3;
  const dir = await mkdtemp(join(tmpdir(), "jetkit-chaos-"));
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  const names = Array.from({ length: size }, (_, i) => `n${i + 1}`);
  const routePorts = new Map<string, number>();
  for (const n of names) routePorts.set(n, await freePort());
  const advertise = new Map<string, number>();
  for (const n of names) {
    const refuser = await startRefuser();
    cleanup.push(() => refuser.close());
    advertise.set(n, refuser.port);
  }
  // One proxy per ordered pair: node `from` solicits its route to `to` through it.
  const routeLinks: RouteLink[] = [];
  for (const from of names) {
    for (const to of names) {
      if (from === to) continue;
      const proxy = new FaultProxy({
        name: `route:${from}->${to}`,
        upstream: { host: "127.0.0.1", port: routePorts.get(to) ?? 0 },
        seed: `${opts.seed}/route:${from}->${to}`,
      });
      await proxy.listen();
      cleanup.push(() => proxy.close());
      routeLinks.push({ from, to, proxy });
    }
  }
  const nodes: NatsServer[] = [];
  for (const name of names) {
    const nodeDir = join(dir, name);
    const routes = routeLinks.filter((l) => l.from === name).map((l) => `"nats://127.0.0.1:${l.proxy.port}"`);
    const config = (ports: ServerPorts | undefined) =>
      [
        `server_name: ${JSON.stringify(name)}`,
        `listen: "127.0.0.1:${ports?.client ?? -1}"`,
        `http: "127.0.0.1:${ports?.monitoring ?? -1}"`,
        `ports_file_dir: ${JSON.stringify(join(nodeDir, "ports"))}`,
        `jetstream { store_dir: ${JSON.stringify(join(nodeDir, "js"))}${opts.syncInterval ? `\n  sync_interval: ${opts.syncInterval}` : ""} }`,
        `cluster {`,
        `  name: "chaos"`,
        `  listen: "127.0.0.1:${routePorts.get(name)}"`,
        `  advertise: "127.0.0.1:${advertise.get(name)}"`,
        `  no_advertise: true`,
        `  routes: [${routes.join(", ")}]`,
        `}`,
      ].join("\n");
    await mkdir(nodeDir, { recursive: true });
    // The launcher's own options; built loosely so that new optional launcher fields keep their defaults.
    const serverOptions: Record<string, unknown> = {
      name,
      jetstream: true,
      config: "",
      dir: nodeDir,
      debug: opts.debug ?? false,
      readyTimeoutMs: 30_000,
      detached: false,
    };
    const node = new NatsServer(serverOptions as unknown as ServerOptions, false, config);
    nodes.push(node);
  }
  const cluster = await startNodes(nodes, dir, cleanup);
  const clientProxies = new Map<string, FaultProxy>();
  for (const n of nodes) {
    const proxy = new FaultProxy({
      name: `client:${n.name}`,
      upstream: { host: "127.0.0.1", port: n.ports.client },
      seed: `${opts.seed}/client:${n.name}`,
    });
    await proxy.listen();
    cleanup.push(() => proxy.close());
    clientProxies.set(n.name, proxy);
  }
  return new ChaosTarget({
    kind: "local",
    nodeNames: names,
    clientProxies,
    routeLinks,
    directUrls: nodes.map((n) => n.url),
    cluster,
    network,
    cleanup,
  });
}

/** The launcher's own options; built loosely so that new optional launcher fields keep their defaults. */
function serverOptions(name: string, dir: string, debug: boolean): ServerOptions {
  const o: Record<string, unknown> = {
    name,
    jetstream: true,
    config: "",
    dir,
    debug,
    readyTimeoutMs: 30_000,
    detached: false,
  };
  return o as unknown as ServerOptions;
}

/**
 * Each node in its own network namespace (see {@link NetnsNetwork}). The launcher starts
 * `nats-server` through a wrapper that enters the namespace named in the node's directory
 * (`ip netns exec` execs, so the pid is the server's: kill -9 and SIGSTOP hit it). Each node
 * listens inside its namespace on the same port numbers as its forwarders on 127.0.0.1, so the
 * launcher's `url`, `monitorUrl` and health checks work unchanged through the forwarders.
 */
async function openNetnsTarget(
  opts: TargetOptions,
  support: NetnsSupport,
  cleanup: (() => Promise<void>)[],
): Promise<ChaosTarget> {
  const size = opts.nodes ?? 3;
  const dir = await mkdtemp(join(tmpdir(), "jetkit-chaos-"));
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  const names = Array.from({ length: size }, (_, i) => `n${i + 1}`);
  const net = await NetnsNetwork.create(names);
  cleanup.push(() => net.dispose());
  const real = natsServerBinary();
  const wrapper = join(dir, "nats-server-in-netns.sh");
  await writeFile(
    wrapper,
    [
      "#!/bin/sh",
      "# Started as: <this> -c <node dir>/nats.conf; the node dir names its namespace.",
      'ns_file="$(dirname "$2")/netns"',
      `if [ -f "$ns_file" ]; then exec ip netns exec "$(cat "$ns_file")" ${JSON.stringify(real)} "$@"; fi`,
      `exec ${JSON.stringify(real)} "$@"`,
      "",
    ].join("\n"),
  );
  await chmod(wrapper, 0o755);
  // The launcher reads the binary from the environment at each start (restarts during faults too):
  // the wrapper stays in place until the target is disposed; other servers go straight through it.
  const previous = process.env.JETKIT_NATS_SERVER;
  process.env.JETKIT_NATS_SERVER = wrapper;
  cleanup.push(async () => {
    if (previous === undefined) delete process.env.JETKIT_NATS_SERVER;
    else process.env.JETKIT_NATS_SERVER = previous;
  });
  const forwarders: FaultProxy[] = [];
  const clientPorts = new Map<string, number>();
  const nodes: NatsServer[] = [];
  for (const name of names) {
    const n = net.node(name);
    const client = await freePort();
    const monitoring = await freePort();
    clientPorts.set(name, client);
    for (const [label, port] of [
      ["direct", client],
      ["monitor", monitoring],
    ] as const) {
      const f = new FaultProxy({
        name: `${label}:${name}`,
        upstream: { host: n.clientAddr, port },
        seed: label,
      });
      await f.listen(port);
      cleanup.push(() => f.close());
      forwarders.push(f);
    }
    const nodeDir = join(dir, name);
    await mkdir(nodeDir, { recursive: true });
    await writeFile(join(nodeDir, "netns"), n.ns);
    const routes = names
      .filter((o) => o !== name)
      .map((o) => `"nats://${net.node(o).clusterAddr}:6222"`)
      .join(", ");
    const config = () =>
      [
        `server_name: ${JSON.stringify(name)}`,
        `listen: "0.0.0.0:${client}"`,
        `http: "0.0.0.0:${monitoring}"`,
        `ports_file_dir: ${JSON.stringify(join(nodeDir, "ports"))}`,
        `jetstream { store_dir: ${JSON.stringify(join(nodeDir, "js"))}${opts.syncInterval ? `\n  sync_interval: ${opts.syncInterval}` : ""} }`,
        `cluster {`,
        `  name: "chaos"`,
        `  listen: "${n.clusterAddr}:6222"`,
        `  no_advertise: true`,
        `  routes: [${routes}]`,
        `}`,
      ].join("\n");
    nodes.push(new NatsServer(serverOptions(name, nodeDir, opts.debug ?? false), false, config));
  }
  // Registered after the network: runs before it (cleanup runs in reverse), so no process is left in a namespace.
  const cluster = await startNodes(nodes, dir, cleanup);
  const clientProxies = new Map<string, FaultProxy>();
  for (const name of names) {
    const proxy = new FaultProxy({
      name: `client:${name}`,
      upstream: { host: net.node(name).clientAddr, port: clientPorts.get(name) ?? 0 },
      seed: `${opts.seed}/client:${name}`,
    });
    await proxy.listen();
    cleanup.push(() => proxy.close());
    clientProxies.set(name, proxy);
  }
  return new ChaosTarget({
    kind: "local",
    nodeNames: names,
    clientProxies,
    routeLinks: [],
    directUrls: nodes.map((n) => n.url),
    cluster,
    netns: net,
    network: {
      mode: "namespaces",
      note: `nodes in network namespaces ${net.namespaces.join(", ")}; ${support.netem ? "netem available" : `netem unavailable: ${support.netemReason}`}`,
      support,
    },
    forwarders,
    cleanup,
  });
}

/** Waits until `check` is true or the deadline passes; returns whether it became true. */
export async function waitFor(
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  stepMs = 100,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await delay(stepMs);
  }
  return false;
}

/**
 * Starts the nodes as one cluster and registers their teardown on `cleanup`; a drill process that
 * dies must not leave servers behind, so an exit hook kills them too.
 */
async function startNodes(
  nodes: NatsServer[],
  dir: string,
  cleanup: (() => Promise<void>)[],
): Promise<NatsCluster> {
  const cluster = new NatsCluster(nodes, dir);
  const killAll = () => {
    for (const n of nodes) {
      const pid = n.pid;
      if (pid) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {}
      }
    }
  };
  process.once("exit", killAll);
  cleanup.push(async () => {
    process.off("exit", killAll);
    await Promise.all(nodes.map((n) => n.kill()));
  });
  await Promise.all(nodes.map((n) => n.start({ waitHealthy: false })));
  await cluster.waitReady(30_000);
  return cluster;
}
