import { createServer, type Server, Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { ChaosError, ChaosErrorCodes } from "../errors.js";
import { createRng, type Rng } from "../prng.js";
import { type ActiveToxic, type Direction, resolveToxic, type ToxicSpec } from "./toxics.js";

/** Options of a fault proxy. */
export interface FaultProxyOptions {
  /** Name shown in reports and progress (e.g. `client:n1`, `route:n1->n2`). */
  name: string;
  /** Where connections are forwarded to. */
  upstream: { host: string; port: number };
  /** Seed of the proxy's random choices (jitter, toxicity); same seed, same choices. Default: the name. */
  seed?: string;
}

/** Counters of a proxy, for tests and reports. */
export interface ProxyStats {
  accepted: number;
  open: number;
  bytesUp: number;
  bytesDown: number;
  dropped: number;
  resets: number;
}

const HIGH_WATER = 256;
const LOW_WATER = 32;

class Link {
  readonly client: Socket;
  readonly server: Socket;
  readonly abort = new AbortController();
  /** toxic id -> whether this connection is affected (toxicity drawn once per connection). */
  readonly affected = new Map<number, boolean>();
  readonly timers = new Map<number, NodeJS.Timeout>();
  readonly sent: Record<Direction, number> = { upstream: 0, downstream: 0 };
  droppedWhileHeld = false;
  closed = false;

  constructor(client: Socket, server: Socket) {
    this.client = client;
    this.server = server;
  }
}

/**
 * A TCP proxy on 127.0.0.1 (port chosen by the OS) that forwards to one upstream and applies
 * toxics per direction. Removing every toxic restores a plain pass-through.
 */
export class FaultProxy {
  readonly name: string;
  readonly upstream: { host: string; port: number };
  readonly stats: ProxyStats = { accepted: 0, open: 0, bytesUp: 0, bytesDown: 0, dropped: 0, resets: 0 };
  #server: Server;
  #port = 0;
  #toxics: ActiveToxic[] = [];
  #links = new Set<Link>();
  #nextId = 1;
  #rng: Rng;

  constructor(opts: FaultProxyOptions) {
    this.name = opts.name;
    this.upstream = opts.upstream;
    this.#rng = createRng(opts.seed ?? opts.name);
    this.#server = createServer({ noDelay: true }, (socket) => this.#accept(socket));
  }

  /** Starts listening on 127.0.0.1 (port 0 unless `port` is given, e.g. to keep a port across restarts). */
  async listen(port = 0): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", (err) =>
        reject(
          new ChaosError(ChaosErrorCodes.PROXY, `proxy ${this.name} could not listen: ${err.message}`, {
            cause: err,
          }),
        ),
      );
      this.#server.listen(port, "127.0.0.1", () => resolve());
    });
    const addr = this.#server.address();
    this.#port = typeof addr === "object" && addr ? addr.port : 0;
    return this.#port;
  }

  get port(): number {
    return this.#port;
  }

  /** `nats://127.0.0.1:<port>` */
  get url(): string {
    return `nats://127.0.0.1:${this.#port}`;
  }

  get toxics(): readonly ActiveToxic[] {
    return this.#toxics;
  }

  /** Adds a toxic; returns its id for {@link removeToxic}. */
  addToxic(spec: ToxicSpec): number {
    const toxic = resolveToxic(this.#nextId++, spec);
    this.#toxics.push(toxic);
    for (const link of this.#links) this.#arm(link, toxic);
    return toxic.id;
  }

  /** Removes a toxic. A connection that lost bytes to a blackhole is closed, so both ends reconnect on a clean stream. */
  removeToxic(id: number): void {
    const toxic = this.#toxics.find((t) => t.id === id);
    if (!toxic) return;
    this.#toxics = this.#toxics.filter((t) => t.id !== id);
    for (const link of this.#links) {
      const timer = link.timers.get(id);
      if (timer) clearTimeout(timer);
      link.timers.delete(id);
      link.affected.delete(id);
      if (toxic.type === "timeout" && link.droppedWhileHeld && !this.#holds(link)) this.#close(link, false);
    }
  }

  /** Removes every toxic. */
  clearToxics(): void {
    for (const t of [...this.#toxics]) this.removeToxic(t.id);
  }

  /** Closes every open connection (optionally with a TCP RST). */
  dropConnections(reset = false): void {
    for (const link of [...this.#links]) this.#close(link, reset);
  }

  /** Stops listening, closes every connection and clears toxics. */
  async close(): Promise<void> {
    this.#toxics = [];
    this.dropConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(client: Socket): void {
    this.stats.accepted++;
    const server = new Socket();
    const link = new Link(client, server);
    this.#links.add(link);
    this.stats.open++;
    client.setNoDelay(true);
    server.setNoDelay(true);
    const onError = () => this.#close(link, false);
    client.on("error", onError);
    server.on("error", onError);
    client.on("close", onError);
    server.on("close", onError);
    for (const toxic of this.#toxics) this.#arm(link, toxic);
    server.connect(this.upstream.port, this.upstream.host, () => {
      this.#pipe(link, "upstream", client, server);
      this.#pipe(link, "downstream", server, client);
    });
  }

  #affects(link: Link, toxic: ActiveToxic): boolean {
    let hit = link.affected.get(toxic.id);
    if (hit === undefined) {
      hit = toxic.toxicity >= 1 || this.#rng.next() < toxic.toxicity;
      link.affected.set(toxic.id, hit);
    }
    return hit;
  }

  /** Connection-level effects: a timeout that closes, a reset after a delay. */
  #arm(link: Link, toxic: ActiveToxic): void {
    if (!this.#affects(link, toxic)) return;
    const ms = toxic.attributes.timeout ?? 0;
    if (toxic.type === "reset_peer") {
      link.timers.set(
        toxic.id,
        setTimeout(() => this.#close(link, true), ms),
      );
    } else if (toxic.type === "timeout" && ms > 0) {
      link.timers.set(
        toxic.id,
        setTimeout(() => this.#close(link, false), ms),
      );
    }
  }

  #holds(link: Link, direction?: Direction): boolean {
    return this.#toxics.some(
      (t) =>
        t.type === "timeout" &&
        (direction === undefined || t.directions.includes(direction)) &&
        this.#affects(link, t),
    );
  }

  #pipe(link: Link, direction: Direction, from: Socket, to: Socket): void {
    const queue: { data: Buffer; at: number }[] = [];
    let pumping = false;
    const pump = async () => {
      if (pumping) return;
      pumping = true;
      try {
        while (queue.length > 0 && !link.closed) {
          const item = queue.shift() as { data: Buffer; at: number };
          if (queue.length < LOW_WATER && from.isPaused()) from.resume();
          await this.#deliver(link, direction, item.data, item.at, to);
        }
      } catch {
        this.#close(link, false);
      } finally {
        pumping = false;
      }
    };
    from.on("data", (data: Buffer) => {
      queue.push({ data, at: performance.now() });
      if (queue.length > HIGH_WATER) from.pause();
      void pump();
    });
    from.on("end", () => {
      const finish = async () => {
        while (pumping || queue.length > 0) await sleep(5);
        if (!link.closed) to.end();
      };
      void finish();
    });
  }

  async #deliver(link: Link, direction: Direction, data: Buffer, at: number, to: Socket): Promise<void> {
    const signal = link.abort.signal;
    const active = this.#toxics.filter((t) => t.directions.includes(direction) && this.#affects(link, t));
    if (active.some((t) => t.type === "timeout")) {
      this.stats.dropped += data.length;
      link.droppedWhileHeld = true;
      return;
    }
    for (const t of active) {
      if (t.type === "latency") {
        const jitter = (t.attributes.jitter ?? 0) * (2 * this.#rng.next() - 1);
        const due = at + Math.max(0, (t.attributes.latency ?? 0) + jitter);
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait, undefined, { signal });
      } else if (t.type === "bandwidth" && (t.attributes.rate ?? 0) > 0) {
        await sleep((data.length / ((t.attributes.rate ?? 1) * 1024)) * 1000, undefined, { signal });
      }
    }
    const limit = active.find((t) => t.type === "limit_data");
    if (limit) {
      const left = (limit.attributes.bytes ?? 0) - link.sent[direction];
      if (left <= 0) {
        this.#close(link, false);
        return;
      }
      if (data.length >= left) {
        await this.#write(link, direction, to, data.subarray(0, left));
        this.#close(link, false);
        return;
      }
    }
    const slicer = active.find((t) => t.type === "slicer");
    if (slicer && (slicer.attributes.average_size ?? 0) > 0) {
      const avg = slicer.attributes.average_size ?? 1;
      const variation = slicer.attributes.size_variation ?? 0;
      let offset = 0;
      while (offset < data.length && !link.closed) {
        const size = Math.max(1, Math.round(avg + variation * (2 * this.#rng.next() - 1)));
        await this.#write(link, direction, to, data.subarray(offset, offset + size));
        offset += size;
        const delayUs = slicer.attributes.delay ?? 0;
        if (delayUs > 0 && offset < data.length) await sleep(delayUs / 1000, undefined, { signal });
      }
      return;
    }
    await this.#write(link, direction, to, data);
  }

  async #write(link: Link, direction: Direction, to: Socket, data: Buffer): Promise<void> {
    if (link.closed || data.length === 0) return;
    link.sent[direction] += data.length;
    if (direction === "upstream") this.stats.bytesUp += data.length;
    else this.stats.bytesDown += data.length;
    if (!to.write(data)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          to.off("drain", done);
          to.off("close", done);
          resolve();
        };
        to.once("drain", done);
        to.once("close", done);
      });
    }
  }

  #close(link: Link, reset: boolean): void {
    if (link.closed) return;
    link.closed = true;
    link.abort.abort();
    for (const timer of link.timers.values()) clearTimeout(timer);
    this.#links.delete(link);
    this.stats.open--;
    if (reset) {
      this.stats.resets++;
      // RST on both ends, as a peer reset looks on the wire.
      if (!link.client.destroyed) link.client.resetAndDestroy();
      if (!link.server.destroyed && link.server.readyState !== "opening") link.server.resetAndDestroy();
      else link.server.destroy();
    } else {
      link.client.destroy();
      link.server.destroy();
    }
  }
}
