// The contract registry in JetStream: versions in KV, images in the Object Store, pushes checked
// against every registered version with the rules of `jetkit contracts check`.

export type {
  CheckHistoryOptions,
  Direction,
  HistoryCheck,
  HistoryEntry,
  RegistryAllowed,
  RegistryProblem,
  RegistryWaived,
} from "./check.js";
export { checkHistory, REGISTRY_BREAKING_CONFIG } from "./check.js";
export type { ContractChange, VersionDiff } from "./diff.js";
export { contractChanges, diffVersions } from "./diff.js";
export type { RegistryErrorCode } from "./errors.js";
export { RegistryErrorCodes } from "./errors.js";
export type { LogEntry } from "./format.js";
export { formatDiff, formatFindings, formatList, formatLog, formatPush, formatShow } from "./format.js";
export type { ReadImage } from "./image.js";
export { completeImage, imageDigest, readImage } from "./image.js";
export type { CompatibilityMode, Modes } from "./modes.js";
export { COMPATIBILITY_MODES, DEFAULT_MODES, formatModes, modeFor, parseModes } from "./modes.js";
export type { PushOptions, PushResult } from "./push.js";
export { loadHistory, pushContracts } from "./push.js";
export type { ResolvedType } from "./resolve.js";
export { RegistryResolver, versionOfImage } from "./resolve.js";
export type { VersionRecord } from "./store.js";
export { IMAGES_BUCKET, RegistryStore, VERSIONS_BUCKET } from "./store.js";
