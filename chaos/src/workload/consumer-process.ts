import type { History, HistoryEvent } from "../history.js";
import type { ConsumerCommand, ConsumerConfig } from "./consumer-config.js";
import { SupervisedProcess } from "./supervised.js";

const WORKER = new URL("./consumer-worker.js", import.meta.url);

/**
 * One consumer worker (a child process under a supervisor, see {@link SupervisedProcess}): its
 * deliveries, dead letters and SDK notes go in the history, its effects are counted live.
 */
export class ConsumerProcess extends SupervisedProcess {
  readonly config: ConsumerConfig;
  /** Deliveries, effects, dead letters seen so far (progress). */
  readonly stats = { deliveries: 0, effects: 0, dlq: 0 };
  /**
   * Event ids this process reported effecting (live, for the drain). The checker never uses it:
   * the effect files are the truth (a line written just before a kill -9 may miss stdout).
   */
  readonly effected = new Set<string>();
  /** Live handler delay (re-sent to each new process). */
  handlerDelayMs: number;

  constructor(config: ConsumerConfig, history: History, restartDelayMs = 500) {
    super(
      {
        name: config.name,
        script: WORKER,
        env: () => ({
          JETKIT_CHAOS_CONSUMER: JSON.stringify({ ...config, handlerDelayMs: this.handlerDelayMs }),
        }),
        onLine: (line) => {
          try {
            const e = JSON.parse(line) as HistoryEvent;
            // The SDK's log lines carry no partition key: it is the one the message was published under.
            if ("key" in e && e.key === "") e.key = history.keyOf(e.id) ?? "";
            if (e.kind === "effect") {
              // Effects enter the history from the effect files at the end of the run, not from here.
              this.stats.effects++;
              this.effected.add(e.id);
              return;
            }
            if (e.kind === "delivery") this.stats.deliveries++;
            else if (e.kind === "dlq") this.stats.dlq++;
            history.add(e);
          } catch {}
        },
        debugTag: "consumer",
      },
      history,
      restartDelayMs,
    );
    this.config = config;
    this.handlerDelayMs = config.handlerDelayMs;
  }

  /** Sends a live command (e.g. a slower handler). */
  command(cmd: ConsumerCommand): void {
    if (typeof cmd.handlerDelayMs === "number") this.handlerDelayMs = cmd.handlerDelayMs;
    this.send(JSON.stringify(cmd));
  }

  /** The process kills itself (SIGKILL) right after appending its n-th effect from now (before the SDK's record and ack). */
  crashAfterEffects(n: number): void {
    this.send(JSON.stringify({ crashAfterEffects: n } satisfies ConsumerCommand));
  }
}
