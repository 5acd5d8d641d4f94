import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import type { History, HistoryEvent } from "../history.js";
import type { ConsumerCommand, ConsumerConfig } from "./consumer-config.js";

const WORKER = new URL("./consumer-worker.js", import.meta.url);

/**
 * Runs one consumer worker as a child process under a supervisor: a crash (or a drill's kill -9)
 * is followed by a restart after `restartDelayMs`, as an orchestrator would do.
 */
export class ConsumerProcess {
  readonly config: ConsumerConfig;
  #history: History;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #supervise = true;
  #restartTimer: NodeJS.Timeout | undefined;
  #restartDelayMs: number;
  #stderr = "";
  /** Deliveries, effects, dead letters seen so far (progress). */
  readonly stats = { deliveries: 0, effects: 0, dlq: 0, restarts: 0, crashes: 0 };
  /**
   * Event ids this process reported effecting (live, for the drain). The checker never uses it:
   * the effect files are the truth (a line written just before a kill -9 may miss stdout).
   */
  readonly effected = new Set<string>();
  /** Live handler delay (re-sent to each new process). */
  handlerDelayMs: number;

  constructor(config: ConsumerConfig, history: History, restartDelayMs = 500) {
    this.config = config;
    this.#history = history;
    this.handlerDelayMs = config.handlerDelayMs;
    this.#restartDelayMs = restartDelayMs;
  }

  get pid(): number | undefined {
    return this.#child && this.#child.exitCode === null && this.#child.signalCode === null
      ? this.#child.pid
      : undefined;
  }

  start(): void {
    this.#supervise = true;
    if (this.pid) return;
    const child = spawn(process.execPath, [WORKER.pathname], {
      stdio: ["pipe", "pipe", "pipe"],
      env: {
        ...process.env,
        JETKIT_CHAOS_CONSUMER: JSON.stringify({ ...this.config, handlerDelayMs: this.handlerDelayMs }),
      },
    });
    this.#child = child;
    this.#history.add({
      t: Date.now(),
      kind: "process",
      name: this.config.name,
      event: "start",
      detail: `pid ${child.pid}`,
      ...(child.pid ? { pid: child.pid } : {}),
    });
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      try {
        const e = JSON.parse(line) as HistoryEvent;
        // The SDK's log lines carry no partition key: it is the one the message was published under.
        if ("key" in e && e.key === "") e.key = this.#history.keyOf(e.id) ?? "";
        if (e.kind === "effect") {
          // Effects enter the history from the effect files at the end of the run, not from here.
          this.stats.effects++;
          this.effected.add(e.id);
          return;
        }
        if (e.kind === "delivery") this.stats.deliveries++;
        else if (e.kind === "dlq") this.stats.dlq++;
        this.#history.add(e);
      } catch {}
    });
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-4000);
      if (process.env.JETKIT_CHAOS_DEBUG) process.stderr.write(`[consumer] ${chunk}`);
    });
    child.stdin?.on("error", () => {});
    this.#exited = new Promise((resolve) =>
      child.once("exit", (code, signal) => {
        this.#history.add({
          t: Date.now(),
          kind: "process",
          name: this.config.name,
          event: "exit",
          ...(child.pid ? { pid: child.pid } : {}),
          detail: signal
            ? `signal ${signal}`
            : `code ${code}${code ? `: ${this.#stderr.trim().split("\n").slice(-3).join(" | ")}` : ""}`,
        });
        if (code !== 0 || signal) this.stats.crashes++;
        if (this.#supervise) {
          this.#restartTimer = setTimeout(() => {
            this.stats.restarts++;
            this.start();
          }, this.#restartDelayMs);
        }
        resolve();
      }),
    );
  }

  /** Sends a live command (e.g. a slower handler). */
  command(cmd: ConsumerCommand): void {
    if (typeof cmd.handlerDelayMs === "number") this.handlerDelayMs = cmd.handlerDelayMs;
    this.#child?.stdin?.write(`${JSON.stringify(cmd)}\n`);
  }

  /** Resolves with the time the current process exits, or undefined after `timeoutMs` (or when none runs). */
  async nextExit(timeoutMs: number): Promise<number | undefined> {
    if (!this.pid) return undefined;
    const exited = this.#exited.then(() => Date.now());
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), timeoutMs);
    });
    try {
      return await Promise.race([exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The process kills itself (SIGKILL) right after appending its n-th effect from now (before the SDK's record and ack). */
  crashAfterEffects(n: number): void {
    this.#child?.stdin?.write(`${JSON.stringify({ crashAfterEffects: n } satisfies ConsumerCommand)}\n`);
  }

  /** SIGSTOP: the process hangs (its timers, renewals and handlers freeze) until {@link resume}. */
  pause(): boolean {
    return this.pid !== undefined && (this.#child?.kill("SIGSTOP") ?? false);
  }

  /** SIGCONT after {@link pause}. */
  resume(): void {
    if (this.pid) this.#child?.kill("SIGCONT");
  }

  /** kill -9 mid-batch; the supervisor restarts it. */
  async crash(): Promise<void> {
    if (!this.pid) return;
    this.#child?.kill("SIGKILL");
    await this.#exited;
  }

  /** Stops for good: SIGTERM (drain), SIGKILL after `timeoutMs`. */
  async stop(timeoutMs = 5000): Promise<void> {
    this.#supervise = false;
    if (this.#restartTimer) clearTimeout(this.#restartTimer);
    if (!this.pid) return;
    this.#child?.kill("SIGTERM");
    const timer = setTimeout(() => this.#child?.kill("SIGKILL"), timeoutMs);
    await this.#exited;
    clearTimeout(timer);
  }
}
