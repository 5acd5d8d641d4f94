import type { History } from "../history.js";
import { SupervisedProcess } from "./supervised.js";

const WORKER = new URL("./relay-worker.js", import.meta.url);

/** What one relay worker is told (JETKIT_CHAOS_RELAY). */
export interface RelayConfig {
  /** Supervised name: `relay-1` ... */
  name: string;
  /** Client URLs (the fault proxies). */
  servers: string[];
  /** The workload's SQLite database holding the outbox. */
  file: string;
  /** The relay lease: a standby takes over this long after the active relay died. */
  leaseMs: number;
}

/**
 * One outbox relay process under a supervisor (see {@link SupervisedProcess}). The acks it reports
 * enter the history with their latency from the event's commit, which the workload producer knows.
 */
export class RelayProcess extends SupervisedProcess {
  readonly config: RelayConfig;
  /** Publishes this process's relays reported acknowledged, and when the last one was (progress). */
  readonly stats = { acked: 0, lastAckAt: 0 };

  constructor(
    config: RelayConfig,
    history: History,
    restartDelayMs: number,
    onAck: (ack: { id: string; key: string; seq: number; stream: string; duplicate: boolean }) => void,
  ) {
    super(
      {
        name: config.name,
        script: WORKER,
        env: () => ({ JETKIT_CHAOS_RELAY: JSON.stringify(config) }),
        onLine: (line) => {
          try {
            const e = JSON.parse(line) as {
              kind?: string;
              id: string;
              key: string;
              seq: number;
              stream: string;
              duplicate: boolean;
            };
            if (e.kind !== "ack") return;
            this.stats.acked++;
            this.stats.lastAckAt = Date.now();
            onAck({ ...e, key: e.key || (history.keyOf(e.id) ?? "") });
          } catch {}
        },
        debugTag: "relay",
      },
      history,
      restartDelayMs,
    );
    this.config = config;
  }
}
