import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, existsSync, openSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { LauncherError, LauncherErrorCodes } from "./errors.js";

/** Options of one nats-server process. Every option is optional. */
export interface ServerOptions {
  /** Name of the server (`server_name`); also the JetStream node name. Default: `n1`. */
  name: string;
  /** Enable JetStream with a store in the server's temp dir. Default: true. */
  jetstream: boolean;
  /** Extra configuration appended verbatim to the generated config (e.g. `max_payload: 65536`). */
  config: string;
  /** Working dir; a fresh temp dir when omitted. Removed by `stop()` only when it was created here. */
  dir: string;
  /** Print the server's own log lines to stderr (for debugging a test). Default: false. */
  debug: boolean;
  /** How long to wait for the server to be ready, in ms. Default: 20000. */
  readyTimeoutMs: number;
  /**
   * Run detached from this process (own process group, log in `<dir>/nats.log`), so it outlives
   * it: for `jetkit dev up`. Default: false (tests: the server dies with the test process).
   */
  detached: boolean;
}

/** The ports a running server listens on, read from its ports file. */
export interface ServerPorts {
  client: number;
  monitoring: number;
  cluster?: number;
}

/** Where the pinned nats-server lives: $JETKIT_NATS_SERVER, the set-up cache, then PATH. */
export function natsServerBinary(): string {
  const fromEnv = process.env.JETKIT_NATS_SERVER;
  if (fromEnv) return fromEnv;
  const cached = join(
    process.env.JETKIT_TOOLS ?? join(homedir(), ".cache", "jetkit", "tools"),
    "bin",
    "nats-server",
  );
  if (existsSync(cached)) return cached;
  return "nats-server";
}

/** A real nats-server child process on loopback. */
export class NatsServer {
  readonly name: string;
  readonly dir: string;
  readonly configFile: string;
  ports: ServerPorts = { client: 0, monitoring: 0 };
  #proc: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #opts: ServerOptions;
  #ownsDir: boolean;
  #config: (ports: ServerPorts | undefined) => string;

  /** @internal the cluster launcher pins routes once every node's ports are known */
  setConfig(config: (ports: ServerPorts | undefined) => string): void {
    this.#config = config;
  }

  /** Waits until `/healthz` answers ok. */
  async waitHealthy(timeoutMs = this.#opts.readyTimeoutMs): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (await this.healthy()) return;
      await delay(50);
    }
    throw new Error(`nats-server ${this.name} did not become healthy within ${timeoutMs} ms`);
  }

  /** @internal use {@link startServer} or {@link startCluster} */
  constructor(opts: ServerOptions, ownsDir: boolean, config: (ports: ServerPorts | undefined) => string) {
    this.#opts = opts;
    this.name = opts.name;
    this.dir = opts.dir;
    this.configFile = join(opts.dir, "nats.conf");
    this.#ownsDir = ownsDir;
    this.#config = config;
  }

  /** `nats://127.0.0.1:<port>` of the client listener. */
  get url(): string {
    return `nats://127.0.0.1:${this.ports.client}`;
  }

  /** `http://127.0.0.1:<port>` of the monitoring listener. */
  get monitorUrl(): string {
    return `http://127.0.0.1:${this.ports.monitoring}`;
  }

  /** The process id while running. */
  get pid(): number | undefined {
    return this.#proc?.exitCode === null ? this.#proc.pid : undefined;
  }

  get running(): boolean {
    return this.#proc !== undefined && this.#proc.exitCode === null && this.#proc.signalCode === null;
  }

  /**
   * Starts the process (first start picks free ports; restarts keep them) and waits until
   * `/healthz` answers ok, or only until the ports are known when `waitHealthy` is false (the
   * first node of a cluster cannot be healthy before its peers exist).
   */
  async start(opts: { waitHealthy?: boolean } = {}): Promise<void> {
    const waitHealthy = opts.waitHealthy ?? true;
    if (this.running) return;
    const first = this.ports.client === 0;
    await writeFile(this.configFile, this.#config(first ? undefined : this.ports));
    const portsDir = join(this.dir, "ports");
    await rm(portsDir, { recursive: true, force: true });
    await mkdir(portsDir, { recursive: true });
    const bin = natsServerBinary();
    const detached = this.#opts.detached;
    const logFd = detached ? openSync(join(this.dir, "nats.log"), "a") : undefined;
    const proc = spawn(bin, ["-c", this.configFile], {
      stdio: ["ignore", "ignore", logFd ?? "pipe"],
      detached,
    });
    if (logFd !== undefined) {
      closeSync(logFd);
      proc.unref();
    }
    this.#proc = proc;
    let log = "";
    proc.stderr?.setEncoding("utf8");
    proc.stderr?.on("data", (chunk: string) => {
      if (this.#opts.debug) process.stderr.write(`[${this.name}] ${chunk}`);
      log = (log + chunk).slice(-8000);
    });
    let spawnError: Error | undefined;
    proc.once("error", (err) => {
      spawnError = err;
    });
    this.#exited = new Promise((resolve) => proc.once("exit", () => resolve()));
    const deadline = Date.now() + this.#opts.readyTimeoutMs;
    while (Date.now() < deadline) {
      if (spawnError) {
        throw new LauncherError(
          LauncherErrorCodes.SERVER_MISSING,
          `could not start nats-server (${bin}): ${spawnError.message}. Install nats-server >= 2.12.7 (https://github.com/nats-io/nats-server/releases, or 'go install github.com/nats-io/nats-server/v2@v2.14.9') and put it on PATH, or set JETKIT_NATS_SERVER to its path; in the jetkit repository 'bash scripts/setup.sh' installs the pinned one.`,
          { cause: spawnError },
        );
      }
      if (proc.exitCode !== null) {
        if (detached) log = await readFile(join(this.dir, "nats.log"), "utf8").catch(() => "");
        throw new LauncherError(
          LauncherErrorCodes.SERVER_FAILED,
          `nats-server ${this.name} exited with code ${proc.exitCode} while starting:\n${log.slice(-4000)}`,
        );
      }
      const files = await readdir(portsDir).catch(() => [] as string[]);
      const file = files.find((f) => f.endsWith(".ports"));
      if (file) {
        // nats-server creates the file before it writes it: an empty or partial file means "not yet"
        const parsed = await readFile(join(portsDir, file), "utf8")
          .then(
            (text) =>
              JSON.parse(text) as {
                nats?: string[];
                monitoring?: string[];
                cluster?: string[];
              },
          )
          .catch(() => undefined);
        if (!parsed) {
          await delay(25);
          continue;
        }
        const port = (urls: string[] | undefined) => (urls?.[0] ? Number(new URL(urls[0]).port) : 0);
        const cluster = port(parsed.cluster);
        this.ports = {
          client: port(parsed.nats),
          monitoring: port(parsed.monitoring),
          ...(cluster ? { cluster } : {}),
        };
        if (!waitHealthy || (await this.healthy())) return;
      }
      await delay(25);
    }
    throw new LauncherError(
      LauncherErrorCodes.SERVER_FAILED,
      `nats-server ${this.name} was not ready within ${this.#opts.readyTimeoutMs} ms:\n${log}`,
    );
  }

  /** True when `/healthz` answers ok (for JetStream: the server is current). */
  async healthy(): Promise<boolean> {
    if (!this.ports.monitoring) return false;
    try {
      const res = await fetch(`${this.monitorUrl}/healthz`, { signal: AbortSignal.timeout(1000) });
      return res.ok;
    } catch {
      return false;
    }
  }

  /** Sends a signal to the process (SIGSTOP/SIGCONT pause and resume it; SIGKILL is kill -9). */
  signal(sig: NodeJS.Signals): void {
    if (!this.#proc || this.#proc.exitCode !== null)
      throw new Error(`nats-server ${this.name} is not running`);
    this.#proc.kill(sig);
  }

  /** Pauses the process (SIGSTOP): it holds its sockets but answers nothing. */
  pause(): void {
    this.signal("SIGSTOP");
  }

  /** Resumes a paused process (SIGCONT). */
  resume(): void {
    this.signal("SIGCONT");
  }

  /** Kills the process with SIGKILL (no shutdown) and waits for it to be gone. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.#proc?.kill("SIGCONT");
    this.#proc?.kill("SIGKILL");
    await this.#exited;
  }

  /** Stops the process gracefully (SIGTERM, SIGKILL after `timeoutMs`) and waits for it to exit. */
  async stop(timeoutMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.#proc?.kill("SIGCONT");
    this.#proc?.kill("SIGTERM");
    const timer = setTimeout(() => this.#proc?.kill("SIGKILL"), timeoutMs);
    await this.#exited;
    clearTimeout(timer);
  }

  /** Stops (gracefully unless `kill`) and starts again on the same ports with the same store. */
  async restart(opts: { kill?: boolean } = {}): Promise<void> {
    if (opts.kill) await this.kill();
    else await this.stop();
    await this.start();
  }

  /** Stops the process and removes its temp dir. */
  async dispose(): Promise<void> {
    await this.kill();
    if (this.#ownsDir) await rm(this.dir, { recursive: true, force: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}

const live = new Set<NatsServer>();
let exitHookInstalled = false;
/** @internal */
export function track(server: NatsServer): void {
  live.add(server);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // A test that forgets to stop its server must not leave it running after the process ends.
    process.once("exit", () => {
      for (const s of live) {
        const pid = s.pid;
        if (pid) {
          try {
            process.kill(pid, "SIGKILL");
          } catch {}
        }
      }
    });
  }
}

/** @internal */
export function baseConfig(opts: ServerOptions, ports: ServerPorts | undefined): string {
  return [
    `server_name: ${JSON.stringify(opts.name)}`,
    `listen: "127.0.0.1:${ports?.client ?? -1}"`,
    `http: "127.0.0.1:${ports?.monitoring ?? -1}"`,
    `ports_file_dir: ${JSON.stringify(join(opts.dir, "ports"))}`,
    opts.jetstream ? `jetstream { store_dir: ${JSON.stringify(join(opts.dir, "js"))} }` : "",
    opts.config,
  ].join("\n");
}

/** @internal */
export async function resolveOptions(
  opts: Partial<ServerOptions>,
): Promise<{ o: ServerOptions; owns: boolean }> {
  const owns = opts.dir === undefined;
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), "jetkit-nats-")));
  await mkdir(dir, { recursive: true });
  return {
    owns,
    o: {
      name: opts.name ?? "n1",
      jetstream: opts.jetstream ?? true,
      config: opts.config ?? "",
      dir,
      debug: opts.debug ?? process.env.JETKIT_NATS_DEBUG === "1",
      readyTimeoutMs: opts.readyTimeoutMs ?? 20_000,
      detached: opts.detached ?? false,
    },
  };
}

/** Starts a single nats-server with JetStream on loopback with free ports. */
export async function startServer(opts: Partial<ServerOptions> = {}): Promise<NatsServer> {
  const { o, owns } = await resolveOptions(opts);
  const server = new NatsServer(o, owns, (ports) => baseConfig(o, ports));
  if (!o.detached) track(server);
  try {
    await server.start();
  } catch (err) {
    await server.dispose();
    throw err;
  }
  return server;
}
