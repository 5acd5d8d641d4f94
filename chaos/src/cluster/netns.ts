import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";

/**
 * Real network faults between cluster nodes: every node runs in its own network namespace
 * (`jk-<run>-n1`), joined to a bridge in another namespace (`jk-<run>-br`) by a veth pair, with
 * addresses that exist only inside those namespaces (10.231.<b>.0/24). Each node also has a
 * point-to-point veth to the root namespace (10.232.<b>.<4i+1>/30 on the root side), which is the
 * only way in: the drill's proxies on 127.0.0.1 connect through it. No default route anywhere.
 *
 * A partition moves the minority's bridge ports to a second, isolated bridge (the minority still
 * reaches itself, nothing else). netem adds delay/jitter/loss on a node's cluster link with tc.
 * Everything is deleted on dispose, and by a synchronous exit hook if the process dies first.
 */

/** What this machine allows. */
export interface NetnsSupport {
  /** Network namespaces, veth pairs and bridges can be created (root on Linux with iproute2). */
  namespaces: boolean;
  /** Why not, when `namespaces` is false. */
  reason?: string;
  /** `tc qdisc ... netem` works inside a namespace. */
  netem: boolean;
  /** Why not, when `netem` is false. */
  netemReason?: string;
}

const TIMEOUT_MS = 10_000;

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: TIMEOUT_MS, encoding: "utf8" }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(" ")}: ${(stderr || err.message).trim()}`));
      else resolve(stdout);
    });
  });
}

const ip = (...args: string[]) => run("ip", args);

let probed: Promise<NetnsSupport> | undefined;

/** Probes once per process: creates and deletes a namespace, a veth pair, a bridge and a netem qdisc. */
export function probeNetns(): Promise<NetnsSupport> {
  probed ??= (async (): Promise<NetnsSupport> => {
    if (process.platform !== "linux") return { namespaces: false, reason: "not Linux", netem: false };
    if (process.getuid?.() !== 0)
      return { namespaces: false, reason: "not running as root", netem: false, netemReason: "not root" };
    const ns = `jk-${randomBytes(3).toString("hex")}-probe`;
    try {
      await ip("netns", "add", ns);
    } catch (err) {
      return { namespaces: false, reason: `ip netns add failed: ${(err as Error).message}`, netem: false };
    }
    try {
      await ip("-n", ns, "link", "set", "lo", "up");
      await ip("-n", ns, "link", "add", "b0", "type", "bridge");
      await ip("-n", ns, "link", "add", "v0", "type", "veth", "peer", "name", "v1");
    } catch (err) {
      await ip("netns", "del", ns).catch(() => {});
      return { namespaces: false, reason: (err as Error).message, netem: false };
    }
    let netem = true;
    let netemReason: string | undefined;
    try {
      await run("ip", [
        "netns",
        "exec",
        ns,
        "tc",
        "qdisc",
        "add",
        "dev",
        "lo",
        "root",
        "netem",
        "delay",
        "1ms",
      ]);
    } catch (err) {
      netem = false;
      netemReason = `tc qdisc add ... netem failed (${(err as Error).message.split(": ").pop()}): the kernel module sch_netem is not available`;
    }
    await ip("netns", "del", ns).catch(() => {});
    return { namespaces: true, netem, ...(netemReason ? { netemReason } : {}) };
  })();
  return probed;
}

/** One node's place in the network. */
export interface NetnsNode {
  name: string;
  /** Its namespace. */
  ns: string;
  /** Address on the cluster bridge (routes listen here). */
  clusterAddr: string;
  /** Address of its end of the link to the root namespace (clients and monitoring connect here). */
  clientAddr: string;
  /** Its port on the bridge (in the bridge namespace). */
  bridgePort: string;
  /** The root namespace's end of its client link. */
  hostIf: string;
}

/** Netem settings of a link. */
export interface NetemSpec {
  delayMs?: number;
  jitterMs?: number;
  lossPct?: number;
}

/** The namespaces, bridges and veth pairs of one drill run. */
export class NetnsNetwork {
  readonly runId: string;
  readonly bridgeNs: string;
  readonly nodes: Map<string, NetnsNode>;
  readonly subnet: number;
  #disposed = false;
  #exitHook: () => void;

  private constructor(runId: string, subnet: number, nodes: Map<string, NetnsNode>) {
    this.runId = runId;
    this.subnet = subnet;
    this.bridgeNs = `jk-${runId}-br`;
    this.nodes = nodes;
    // A run that dies (uncaught error, process.exit) must not leave namespaces behind.
    this.#exitHook = () => this.#deleteSync();
    process.once("exit", this.#exitHook);
  }

  /** Every namespace this run created. */
  get namespaces(): string[] {
    return [this.bridgeNs, ...[...this.nodes.values()].map((n) => n.ns)];
  }

  /** Creates the network for `names`; on failure removes whatever was created and throws. */
  static async create(names: string[]): Promise<NetnsNetwork> {
    const runId = randomBytes(3).toString("hex");
    const subnet = await freeSubnet();
    const nodes = new Map<string, NetnsNode>();
    for (const [i, name] of names.entries()) {
      nodes.set(name, {
        name,
        ns: `jk-${runId}-${name}`,
        clusterAddr: `10.231.${subnet}.${11 + i}`,
        clientAddr: `10.232.${subnet}.${4 * i + 2}`,
        bridgePort: `p${i + 1}`,
        hostIf: `jk${runId}c${i + 1}`,
      });
    }
    const net = new NetnsNetwork(runId, subnet, nodes);
    try {
      const br = net.bridgeNs;
      await ip("netns", "add", br);
      await ip("-n", br, "link", "set", "lo", "up");
      for (const b of ["br0", "br1"]) {
        await ip("-n", br, "link", "add", b, "type", "bridge");
        await ip("-n", br, "link", "set", b, "up");
      }
      for (const [i, n] of [...nodes.values()].entries()) {
        await ip("netns", "add", n.ns);
        await ip("-n", n.ns, "link", "set", "lo", "up");
        await ip(
          "-n",
          n.ns,
          "link",
          "add",
          "eth0",
          "type",
          "veth",
          "peer",
          "name",
          n.bridgePort,
          "netns",
          br,
        );
        await ip("-n", n.ns, "addr", "add", `${n.clusterAddr}/24`, "dev", "eth0");
        await ip("-n", n.ns, "link", "set", "eth0", "up");
        await ip("-n", br, "link", "set", n.bridgePort, "master", "br0");
        await ip("-n", br, "link", "set", n.bridgePort, "up");
        await ip("link", "add", n.hostIf, "type", "veth", "peer", "name", "cli0", "netns", n.ns);
        await ip("addr", "add", `10.232.${subnet}.${4 * i + 1}/30`, "dev", n.hostIf);
        await ip("link", "set", n.hostIf, "up");
        await ip("-n", n.ns, "addr", "add", `${n.clientAddr}/30`, "dev", "cli0");
        await ip("-n", n.ns, "link", "set", "cli0", "up");
      }
    } catch (err) {
      await net.dispose().catch(() => {});
      throw err;
    }
    return net;
  }

  node(name: string): NetnsNode {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`no node ${name} in the namespace network`);
    return n;
  }

  /**
   * Partitions `minority` from the rest: their bridge ports move to the isolated bridge `br1`.
   * Packets are dropped silently, as on a real network split. Returns the rollback.
   */
  async partition(minority: string[]): Promise<() => Promise<void>> {
    const ports = minority.map((m) => this.node(m).bridgePort);
    for (const p of ports) await ip("-n", this.bridgeNs, "link", "set", p, "master", "br1");
    return async () => {
      if (this.#disposed) return;
      for (const p of ports) await ip("-n", this.bridgeNs, "link", "set", p, "master", "br0");
    };
  }

  /** Adds netem delay/jitter/loss on `node`'s cluster link (both ways: its egress and its bridge port's). */
  async netem(node: string, spec: NetemSpec): Promise<() => Promise<void>> {
    const n = this.node(node);
    const args: string[] = [];
    if (spec.delayMs)
      args.push("delay", `${spec.delayMs}ms`, ...(spec.jitterMs ? [`${spec.jitterMs}ms`] : []));
    if (spec.lossPct) args.push("loss", `${spec.lossPct}%`);
    if (args.length === 0) args.push("delay", "0ms");
    const links: [string, string][] = [
      [n.ns, "eth0"],
      [this.bridgeNs, n.bridgePort],
    ];
    const added: [string, string][] = [];
    try {
      for (const [ns, dev] of links) {
        await run("ip", ["netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "netem", ...args]);
        added.push([ns, dev]);
      }
    } catch (err) {
      for (const [ns, dev] of added)
        await run("ip", ["netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root"]).catch(() => {});
      throw err;
    }
    return async () => {
      if (this.#disposed) return;
      for (const [ns, dev] of added)
        await run("ip", ["netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root"]);
    };
  }

  /** Runs `args` inside `node`'s namespace (e.g. a connectivity check). */
  exec(node: string, cmd: string, args: string[]): Promise<string> {
    return run("ip", ["netns", "exec", this.node(node).ns, cmd, ...args]);
  }

  /** Deletes every namespace (their veth pairs and bridges go with them). Processes inside must be stopped first. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    process.off("exit", this.#exitHook);
    const errors: string[] = [];
    for (const ns of this.namespaces) {
      await ip("netns", "del", ns).catch((err: Error) => {
        if (!/No such file/.test(err.message)) errors.push(err.message);
      });
    }
    // Root-side ends vanish with their peers; delete any left over (a half-built network).
    for (const n of this.nodes.values()) await ip("link", "del", n.hostIf).catch(() => {});
    if (errors.length > 0) throw new Error(`could not delete namespaces: ${errors.join("; ")}`);
  }

  #deleteSync(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const ns of this.namespaces) {
      try {
        execFileSync("ip", ["netns", "del", ns], { stdio: "ignore", timeout: TIMEOUT_MS });
      } catch {}
    }
    for (const n of this.nodes.values()) {
      try {
        execFileSync("ip", ["link", "del", n.hostIf], { stdio: "ignore", timeout: TIMEOUT_MS });
      } catch {}
    }
  }
}

/** A third octet whose 10.232.<b>.0/24 client links collide with no address in the root namespace. */
async function freeSubnet(): Promise<number> {
  const used = await ip("-4", "-o", "addr", "show").catch(() => "");
  for (let tries = 0; tries < 50; tries++) {
    const b = 1 + ((randomBytes(1)[0] ?? 0) % 254);
    if (!used.includes(`10.232.${b}.`)) return b;
  }
  throw new Error("no free 10.232.x.0/24 subnet for the namespace client links");
}

/** Names of namespaces and links of a run that still exist (for tests: must be empty after dispose). */
export async function leftovers(runId: string): Promise<string[]> {
  const ns = await ip("netns", "list").catch(() => "");
  const links = await ip("-o", "link", "show").catch(() => "");
  return [
    ...ns.split("\n").filter((l) => l.includes(`jk-${runId}-`)),
    ...links.split("\n").filter((l) => l.includes(`jk${runId}`)),
  ].map((l) => l.trim());
}
