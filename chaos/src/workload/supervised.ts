import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import type { History } from "../history.js";

/** What starts one incarnation of a supervised worker. */
export interface WorkerSpec {
  /** The supervised name (`consumer-1`, `relay-2`), in the history's process lines. */
  name: string;
  /** The worker's entry point. */
  script: URL;
  /** Environment of each new process (called at every start: live settings carry over). */
  env: () => Record<string, string>;
  /** Each line the worker prints on stdout. */
  onLine: (line: string) => void;
  /** Prefix of its stderr lines when JETKIT_CHAOS_DEBUG is set. */
  debugTag: string;
}

/**
 * Runs a drill worker as a child process under a supervisor: a crash (or a drill's kill -9) is
 * followed by a restart after `restartDelayMs`, as an orchestrator would do. Starts and exits go
 * in the history as `process` lines.
 */
export class SupervisedProcess {
  readonly #spec: WorkerSpec;
  readonly #history: History;
  readonly #restartDelayMs: number;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #supervise = true;
  #restartTimer: NodeJS.Timeout | undefined;
  #stderr = "";
  /** Restarts by the supervisor, and exits that were not clean. */
  readonly lifecycle = { restarts: 0, crashes: 0 };

  constructor(spec: WorkerSpec, history: History, restartDelayMs: number) {
    this.#spec = spec;
    this.#history = history;
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
    const { name } = this.#spec;
    const child = spawn(process.execPath, [this.#spec.script.pathname], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, ...this.#spec.env() },
    });
    this.#child = child;
    this.#history.add({
      t: Date.now(),
      kind: "process",
      name,
      event: "start",
      detail: `pid ${child.pid}`,
      ...(child.pid ? { pid: child.pid } : {}),
    });
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", this.#spec.onLine);
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-4000);
      if (process.env.JETKIT_CHAOS_DEBUG) process.stderr.write(`[${this.#spec.debugTag}] ${chunk}`);
    });
    child.stdin?.on("error", () => {});
    this.#exited = new Promise((resolve) =>
      child.once("exit", (code, signal) => {
        this.#history.add({
          t: Date.now(),
          kind: "process",
          name,
          event: "exit",
          ...(child.pid ? { pid: child.pid } : {}),
          detail: signal
            ? `signal ${signal}`
            : `code ${code}${code ? `: ${this.#stderr.trim().split("\n").slice(-3).join(" | ")}` : ""}`,
        });
        if (code !== 0 || signal) this.lifecycle.crashes++;
        if (this.#supervise) {
          this.#restartTimer = setTimeout(() => {
            this.lifecycle.restarts++;
            this.start();
          }, this.#restartDelayMs);
        }
        resolve();
      }),
    );
  }

  /** Writes one line to the running process's stdin (a live command). */
  send(line: string): void {
    this.#child?.stdin?.write(`${line}\n`);
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

  /** SIGSTOP: the process hangs (its timers and renewals freeze) until {@link resume}. */
  pause(): boolean {
    return this.pid !== undefined && (this.#child?.kill("SIGSTOP") ?? false);
  }

  /** SIGCONT after {@link pause}. */
  resume(): void {
    if (this.pid) this.#child?.kill("SIGCONT");
  }

  /** kill -9; the supervisor restarts it. */
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
