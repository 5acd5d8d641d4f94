import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { freePort } from "@jetkit/launcher";

const SETPRIV = "/usr/bin/setpriv";

/** Options of {@link startPostgres}. */
export interface PostgresOptions {
  /** Extra `-c name=value` server settings. */
  settings: Record<string, string>;
  /** How long to wait for the server to accept connections, in ms. Default: 30000. */
  readyTimeoutMs: number;
}

/**
 * Where Debian's PostgreSQL binaries live: $JETKIT_PG_BIN, then the newest
 * /usr/lib/postgresql/<major>/bin (Debian keeps them off PATH), then PATH.
 */
export function postgresBinDir(): string | undefined {
  if (process.env.JETKIT_PG_BIN) return process.env.JETKIT_PG_BIN;
  const root = "/usr/lib/postgresql";
  if (existsSync(root)) {
    const majors = readdirSync(root)
      .filter((d) => existsSync(join(root, d, "bin", "postgres")))
      .sort((a, b) => Number(b) - Number(a));
    if (majors[0]) return join(root, majors[0], "bin");
  }
  return undefined;
}

/** The uid and gid to run postgres as: ours, or the `postgres` user's when we are root (postgres refuses root). */
function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  for (const name of ["postgres", "nobody"]) {
    const line = readFileSync("/etc/passwd", "utf8")
      .split("\n")
      .find((l) => l.startsWith(`${name}:`));
    if (line) {
      const [, , uid, gid] = line.split(":");
      return { uid: Number(uid), gid: Number(gid) };
    }
  }
  throw new Error("running as root and no postgres (or nobody) user exists to run the test Postgres as");
}

/**
 * A throw-away PostgreSQL server for tests: a fresh cluster (initdb, trust auth on loopback) in a
 * temp dir, listening on a free 127.0.0.1 port, run as a child process (as the `postgres` user
 * when the tests run as root). `stop()`/`start()` restart it on the same data; `dispose()`
 * stops it and removes the dir. `bash scripts/setup.sh` installs Debian's `postgresql`.
 */
export class PostgresServer {
  readonly dir: string;
  readonly port: number;
  readonly #bin: string;
  readonly #as: { uid: number; gid: number } | undefined;
  readonly #opts: PostgresOptions;
  #proc: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #log = "";

  /** @internal use {@link startPostgres} */
  constructor(bin: string, dir: string, port: number, opts: PostgresOptions) {
    this.#bin = bin;
    this.dir = dir;
    this.port = port;
    this.#as = runAs();
    this.#opts = opts;
  }

  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust auth). */
  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  /** @internal */
  init(): void {
    if (this.#as) chownSync(this.dir, this.#as.uid, this.#as.gid);
    execFileSync(
      join(this.#bin, "initdb"),
      [
        "-D",
        join(this.dir, "data"),
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
      ],
      { stdio: ["ignore", "ignore", "pipe"], ...(this.#as ?? {}) },
    );
  }

  /** Starts the server on the existing data dir and waits until it accepts connections. */
  async start(): Promise<void> {
    const args = ["-D", join(this.dir, "data"), "-p", String(this.port), "-k", this.dir];
    // fsync off: a killed server keeps what it committed (the OS has it), only a machine crash
    // would lose it. synchronous_commit stays on, or an immediate stop would lose acknowledged commits.
    const settings: Record<string, string> = {
      listen_addresses: "127.0.0.1",
      fsync: "off",
      full_page_writes: "off",
      max_connections: "100",
      ...this.#opts.settings,
    };
    for (const [k, v] of Object.entries(settings)) args.push("-c", `${k}=${v}`);
    this.#log = "";
    // Through setpriv (util-linux) when there is one, so the server gets SIGQUIT (immediate
    // shutdown) if this process dies without stopping it (a test killed on a timeout).
    const postgres = join(this.#bin, "postgres");
    const [cmd, argv] = existsSync(SETPRIV)
      ? [SETPRIV, ["--pdeathsig", "QUIT", "--", postgres, ...args]]
      : [postgres, args];
    const proc = spawn(cmd, argv, { stdio: ["ignore", "ignore", "pipe"], ...(this.#as ?? {}) });
    proc.stderr!.on("data", (b: Buffer) => {
      this.#log = (this.#log + b.toString()).slice(-8000);
    });
    this.#proc = proc;
    this.#exited = new Promise((resolve) => proc.once("exit", () => resolve()));
    const deadline = Date.now() + this.#opts.readyTimeoutMs;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`postgres exited while starting:\n${this.#log}`);
      if (this.#log.includes("ready to accept connections")) return;
      await delay(25);
    }
    throw new Error(`postgres did not start within ${this.#opts.readyTimeoutMs} ms:\n${this.#log}`);
  }

  /** Stops the server: `fast` (SIGINT: clean shutdown) or `immediate` (SIGQUIT, like a crash). */
  async stop(mode: "fast" | "immediate" = "fast"): Promise<void> {
    const proc = this.#proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill(mode === "fast" ? "SIGINT" : "SIGQUIT");
    await this.#exited;
    this.#proc = undefined;
  }

  /** Stops the server and removes its directory. */
  async dispose(): Promise<void> {
    await this.stop("immediate");
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Starts a throw-away PostgreSQL server (see {@link PostgresServer}). Throws naming the fix when
 * Debian's `postgresql` package is not installed.
 */
export async function startPostgres(opts: Partial<PostgresOptions> = {}): Promise<PostgresServer> {
  const bin = postgresBinDir();
  if (!bin || !existsSync(join(bin, "postgres"))) {
    throw new Error(
      "PostgreSQL is not installed: run 'bash scripts/setup.sh' (it installs Debian's postgresql package), or set JETKIT_PG_BIN to a directory holding initdb and postgres.",
    );
  }
  const dir = mkdtempSync(join(tmpdir(), "jetkit-pg-"));
  const server = new PostgresServer(bin, dir, await freePort(), {
    settings: opts.settings ?? {},
    readyTimeoutMs: opts.readyTimeoutMs ?? 30_000,
  });
  try {
    server.init();
    await server.start();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  // A test process that exits without dispose() must not leave the server behind.
  process.once("exit", () => {
    try {
      process.kill(
        Number(readFileSync(join(dir, "data", "postmaster.pid"), "utf8").split("\n")[0]),
        "SIGQUIT",
      );
    } catch {}
  });
  return server;
}
