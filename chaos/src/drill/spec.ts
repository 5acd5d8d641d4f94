import type { Invariant } from "../checker.js";
import type { ToxicSpec } from "../proxy/toxics.js";
import type { ConsumerGroupMode, EffectMode } from "../workload/consumer-config.js";

/** Which node a process or network fault hits: a name (`n1`), or chosen when the fault starts. */
export type NodeSelector = string;
export const NODE_SELECTORS = ["stream_leader", "meta_leader", "random", "follower", "all"] as const;

export interface TargetSpec {
  /** `local`: the drill starts its own cluster; `url`: an existing cluster (process faults are skipped). */
  kind: "local" | "url";
  nodes: number;
  syncInterval?: string;
  urls: string[];
  /** `proxies` (default), or `auto`: nodes in network namespaces where root on Linux, else proxies. */
  network: "proxies" | "auto";
}

export interface WorkloadSpec {
  durationMs: number;
  warmupMs: number;
  drainMs: number;
  ratePerSec: number;
  keys: number;
  keyDistribution: "uniform" | "hot";
  /** The producer SDK's maxInFlight. */
  maxInFlight: number;
  /** The producer SDK's retry.attemptTimeoutMs. */
  publishTimeoutMs: number;
  /** The producer SDK's retry.deadlineMs: an event not acked this long after its first attempt fails. */
  publishDeadlineMs: number;
  /** The producer SDK's circuit breaker. */
  breaker: { failureThreshold: number; coolDownMs: number };
  duplicateRate: number;
  /**
   * Transactional outbox mode: the producer commits each event to a SQLite outbox and `relays`
   * supervised relay processes (`relay-1` ...) publish it; absent: the producer publishes.
   */
  outbox?: { relays: number; restartDelayMs: number; leaseMs: number };
  consumer: {
    idempotency: boolean;
    ordering: "per-key" | "none";
    concurrency: number;
    handlerDelayMs: number;
    ackWaitMs: number;
    maxDeliver: number;
    batch: number;
    maxAckPending: number;
    restartDelayMs: number;
    /** Consumer processes on the one durable (`consumer-1` ... `consumer-N`), each supervised. */
    processes: number;
    /** How they share it (see ConsumerGroupMode). */
    group: ConsumerGroupMode;
    /** Where the handler's effect goes (see EffectMode). */
    effect: EffectMode;
  };
}

export const PROBES = [
  "cluster_healthy",
  "publish_p99_ms",
  "publish_error_rate",
  "throughput",
  "consumer_lag",
] as const;
export type ProbeName = (typeof PROBES)[number];
export interface ProbeSpec {
  probe: ProbeName;
  name: string;
  max?: number;
  min?: number;
  windowMs: number;
}

export const FAULT_ACTIONS = [
  "kill",
  "terminate",
  "pause",
  "rolling_restart",
  "toxic",
  "partition",
  "netem",
  "consumer_crash",
  "consumer_pause",
  "poison",
  "slow_handler",
  "duplicate_publish",
  "store_outage",
  "relay_crash",
] as const;
export type FaultAction = (typeof FAULT_ACTIONS)[number];

export interface FaultSpec {
  name: string;
  action: FaultAction;
  atMs: number;
  forMs: number;
  everyMs?: number;
  count?: number;
  node?: NodeSelector;
  nodes?: NodeSelector[];
  link?: "client" | "route";
  toxic?: ToxicSpec;
  gapMs?: number;
  rate?: number;
  delayMs?: number;
  /** netem: jitter around `delayMs`. */
  jitterMs?: number;
  /** netem: packet loss, percent. */
  lossPct?: number;
  isolateClients?: boolean;
  /** consumer_crash: `now` (kill -9 from outside) or `after_effect` (the process kills itself right after an effect). */
  point?: "now" | "after_effect";
  /** consumer_crash, consumer_pause: which consumer process: `random`, `all`, or a name (`consumer-2`). */
  consumer?: string;
  /** relay_crash: which relay process: `active` (the one publishing), `random`, `all`, or a name (`relay-2`). */
  relay?: string;
  /** rolling_restart: how each node goes down. */
  shutdown?: "terminate" | "lame_duck";
  /** rolling_restart with lame_duck: time in lame duck mode before the SIGTERM. */
  lameDuckMs?: number;
}

export const ABORT_METRICS = ["lost", "publish_error_rate", "failed_publishes"] as const;
export interface AbortSpec {
  when: (typeof ABORT_METRICS)[number];
  above: number;
  windowMs: number;
}

/** A drill file, validated and with defaults filled in. */
export interface Drill {
  name: string;
  description: string;
  seed: string;
  target: TargetSpec;
  workload: WorkloadSpec;
  steadyState: ProbeSpec[];
  faults: FaultSpec[];
  abort: AbortSpec[];
  invariants: Invariant[];
  /**
   * `recovery_within_budget`: the most the SDKs may add to the broker's own recovery from a fault
   * (ms, `recoveryBudget` in the file; default 1500).
   */
  recoveryBudgetMs: number;
  /** The file it came from. */
  file: string;
}
