import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { LauncherError, LauncherErrorCodes } from "./errors.js";
import {
  baseConfig,
  NatsServer,
  resolveOptions,
  type ServerOptions,
  type ServerPorts,
  track,
} from "./server.js";

/** Options of a local JetStream cluster. */
export interface ClusterOptions {
  /** Number of nodes. Default: 3. */
  size: number;
  /** Cluster name. Default: `jetkit`. */
  name: string;
  /** Extra configuration appended to every node's config (e.g. `jetstream { sync_interval: always }` is not valid here; use `jetstream`). */
  config: string;
  /** Extra lines inside each node's `jetstream {}` block, e.g. `sync_interval: always`. */
  jetstreamConfig: string;
  /** Print the servers' log lines to stderr. */
  debug: boolean;
  /** How long to wait for the cluster to be ready, in ms. Default: 30000. */
  readyTimeoutMs: number;
  /** Directory for the nodes' data; a fresh temp dir when omitted. */
  dir: string;
  /** Run the nodes detached so they outlive this process (`jetkit dev up --cluster`). */
  detached: boolean;
}

/** A JetStream cluster of real nats-server processes on loopback. */
export class NatsCluster {
  readonly nodes: NatsServer[];
  readonly dir: string;

  /** @internal use {@link startCluster} */
  constructor(nodes: NatsServer[], dir: string) {
    this.nodes = nodes;
    this.dir = dir;
  }

  /** Client URLs of every node, for `servers`. */
  get urls(): string[] {
    return this.nodes.map((n) => n.url);
  }

  node(name: string): NatsServer {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node named ${name} (nodes: ${this.nodes.map((x) => x.name).join(", ")})`);
    return n;
  }

  /** Name of the JetStream meta leader as a running node reports it, or undefined. */
  async metaLeader(): Promise<string | undefined> {
    for (const n of this.nodes.filter((x) => x.running)) {
      const jsz = await monitor<{ meta_cluster?: { leader?: string } }>(n, "/jsz");
      if (jsz?.meta_cluster?.leader) return jsz.meta_cluster.leader;
    }
    return undefined;
  }

  /** Name of the node leading `stream` (its Raft group), as a running node reports it. */
  async streamLeader(stream: string): Promise<string | undefined> {
    for (const n of this.nodes.filter((x) => x.running)) {
      const jsz = await monitor<{
        account_details?: { stream_detail?: { name: string; cluster?: { leader?: string } }[] }[];
      }>(n, "/jsz?accounts=true&streams=true");
      for (const acc of jsz?.account_details ?? []) {
        const s = acc.stream_detail?.find((d) => d.name === stream);
        if (s?.cluster?.leader) return s.cluster.leader;
      }
    }
    return undefined;
  }

  /** Waits until every running node is healthy and a meta leader is elected. */
  async waitReady(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const running = this.nodes.filter((n) => n.running);
      const healthy = await Promise.all(running.map((n) => n.healthy()));
      if (healthy.every(Boolean) && (await this.metaLeader())) return;
      await delay(50);
    }
    throw new LauncherError(LauncherErrorCodes.SERVER_FAILED, `cluster was not ready within ${timeoutMs} ms`);
  }

  /** Stops every node and removes the cluster's temp dir. */
  async dispose(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.dispose()));
    await rm(this.dir, { recursive: true, force: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}

async function monitor<T>(n: NatsServer, path: string): Promise<T | undefined> {
  try {
    const res = await fetch(`${n.monitorUrl}${path}`, { signal: AbortSignal.timeout(1000) });
    return res.ok ? ((await res.json()) as T) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Starts a JetStream cluster on loopback. Ports are chosen by the servers (`-1`) at first start
 * and pinned afterwards, so a restarted node comes back on the same client and route ports.
 */
export async function startCluster(opts: Partial<ClusterOptions> = {}): Promise<NatsCluster> {
  const size = opts.size ?? 3;
  const clusterName = opts.name ?? "jetkit";
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), "jetkit-cluster-")));
  const nodes: NatsServer[] = [];
  const options: ServerOptions[] = [];
  const routePorts: number[] = [];
  const config = (o: ServerOptions, ports: ServerPorts | undefined, routes: number[]) =>
    baseConfig({ ...o, jetstream: false, config: "" }, ports) +
    `\njetstream { store_dir: ${JSON.stringify(join(o.dir, "js"))}\n${opts.jetstreamConfig ?? ""} }\n` +
    `cluster {\n  name: ${JSON.stringify(clusterName)}\n  listen: "127.0.0.1:${ports?.cluster ?? -1}"\n` +
    `  routes: [${routes.map((p) => `"nats://127.0.0.1:${p}"`).join(", ")}]\n}\n${opts.config ?? ""}\n`;
  try {
    for (let i = 0; i < size; i++) {
      const { o } = await resolveOptions({
        name: `n${i + 1}`,
        dir: join(dir, `n${i + 1}`),
        ...(opts.debug !== undefined ? { debug: opts.debug } : {}),
        readyTimeoutMs: opts.readyTimeoutMs ?? 30_000,
        detached: opts.detached ?? false,
      });
      options.push(o);
      const node = new NatsServer(o, false, () => "");
      if (!o.detached) track(node);
      nodes.push(node);
    }
    // JetStream clustering needs routes configured from the first start, so route ports are
    // reserved up front; client and monitoring ports are still chosen by the servers.
    for (let i = 0; i < size; i++) routePorts.push(await freePort());
    nodes.forEach((n, i) => {
      const o = options[i]!;
      n.setConfig((ports) =>
        config(
          o,
          { client: ports?.client ?? -1, monitoring: ports?.monitoring ?? -1, cluster: routePorts[i]! },
          routePorts.filter((_, j) => j !== i),
        ),
      );
    });
    await Promise.all(nodes.map((n) => n.start({ waitHealthy: false })));
    const cluster = new NatsCluster(nodes, dir);
    await cluster.waitReady(opts.readyTimeoutMs ?? 30_000);
    return cluster;
  } catch (err) {
    await Promise.all(nodes.map((n) => n.dispose()));
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * A free port on 127.0.0.1 for a listener that must know its port before it starts (cluster
 * routes, fault proxies). It is taken below the kernel's ephemeral range when that is known
 * (Linux): servers started with `port: -1` and outgoing connections get their ports from that
 * range, so one of them cannot grab this port between the check here and the bind that follows
 * (seen as "bind: address already in use" when nodes of a cluster start together).
 */
export async function freePort(): Promise<number> {
  const low = await ephemeralLow();
  if (low !== undefined && low > MIN_RESERVED + 1000) {
    for (let attempt = 0; attempt < 50; attempt++) {
      const port = MIN_RESERVED + Math.floor(Math.random() * (low - MIN_RESERVED));
      if (await canListen(port)) return port;
    }
  }
  return listenAndClose(0);
}

/** Lowest port {@link freePort} hands out (well above the system's well-known ports). */
const MIN_RESERVED = 20_000;

async function ephemeralLow(): Promise<number | undefined> {
  try {
    const text = await readFile("/proc/sys/net/ipv4/ip_local_port_range", "utf8");
    const low = Number(text.trim().split(/\s+/)[0]);
    return Number.isInteger(low) ? low : undefined;
  } catch {
    return undefined;
  }
}

function canListen(port: number): Promise<boolean> {
  return listenAndClose(port).then(
    () => true,
    () => false,
  );
}

/** Listens on `port` (0: any) of 127.0.0.1, closes again, and returns the port. */
function listenAndClose(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(port, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}
