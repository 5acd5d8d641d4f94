// Streams as code: plan and apply the catalog's JetStream streams against a live server.

export type { AppliedStream, ApplyResult } from "./apply.js";
export { applyStreams } from "./apply.js";
export type { ClusterView } from "./cluster.js";
export { readCluster } from "./cluster.js";
export type { ManagedField, ManagedStreamConfig } from "./config.js";
export { MANAGED_FIELDS, managedPart, streamConfig } from "./config.js";
export type { FieldChange } from "./diff.js";
export { diffStreamConfig } from "./diff.js";
export type { StreamsErrorCode } from "./errors.js";
export { StreamsErrorCodes } from "./errors.js";
export { formatPlan, formatValue, planToJson } from "./format.js";
export type {
  StreamAction,
  StreamPlan,
  StreamPlanEntry,
  StreamSource,
  StreamsOptions,
  StreamsTarget,
  UnmanagedStream,
} from "./plan.js";
export { planStreams } from "./plan.js";
export type { ReplicasChoice, ReplicasSource } from "./replicas.js";
