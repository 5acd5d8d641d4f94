export type {
  CheckOptions,
  CheckResult,
  DuplicateEffect,
  EffectRecord,
  Finding,
  Invariant,
  LeadershipAround,
  OrderViolation,
  Recovery,
  Refusal,
  StreamContents,
  Verdict,
  Window,
} from "./checker.js";
export { checkHistory, INVARIANTS, OUTCOME_UNKNOWN_CODES, percentile, sequencesToVerify } from "./checker.js";
export type { RouteLink, TargetOptions } from "./cluster/target.js";
export { ChaosTarget, openTarget, waitFor } from "./cluster/target.js";
export type { DrillSummary } from "./drill/files.js";
export { listDrills, loadDrill, validateDrill } from "./drill/files.js";
export type { ProbeResult } from "./drill/probes.js";
export type {
  DrillOutcome,
  DrillPhase,
  DrillProgress,
  DrillReport,
  FaultRecord,
  RunDrillOptions,
} from "./drill/run.js";
export { runDrill } from "./drill/run.js";
export type {
  AbortSpec,
  Drill,
  FaultAction,
  FaultSpec,
  ProbeSpec,
  TargetSpec,
  WorkloadSpec,
} from "./drill/spec.js";
export { FAULT_ACTIONS } from "./drill/spec.js";
export type { DrillProblem } from "./drill/validate.js";
export { validateDrillDocument } from "./drill/validate.js";
export type { ChaosErrorCode } from "./errors.js";
export { ChaosError, ChaosErrorCodes } from "./errors.js";
export type { EffectEvent, HistoryEvent, PoisonKind } from "./history.js";
export { History, parseHistory } from "./history.js";
export type { Rng } from "./prng.js";
export { createRng } from "./prng.js";
export type { FaultProxyOptions, ProxyStats } from "./proxy/fault-proxy.js";
export { FaultProxy } from "./proxy/fault-proxy.js";
export type { ActiveToxic, Direction, ToxicSpec, ToxicType } from "./proxy/toxics.js";
export { TOXIC_TYPES } from "./proxy/toxics.js";
export { renderHtml } from "./report/html.js";
export { renderMarkdown } from "./report/markdown.js";
export type { ConsumerGroupMode } from "./workload/consumer-config.js";
export type { EffectLine } from "./workload/effect-log.js";
export { compareEffects, EffectLog, effectFile, readEffectLogs } from "./workload/effect-log.js";
