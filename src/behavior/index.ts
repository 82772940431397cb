// Public surface of the behaviour baselines (issue #12): the monitor the decision pipeline feeds,
// its persistence, and the mesh-wide fan-out share. Other modules import from here only.

export { actionLabel, labelHash, networkLabel, pathPattern } from "./action.js";
export {
  ANOMALY_KINDS, BEHAVIOR_SIGNAL_SOURCE, BehaviorMonitor,
  type AcceptRequest, type AcceptResult, type AnomalyKind, type BaselineReport, type BehaviorDeps, type BehaviorSummary,
  type FanoutShare, type SavedBaseline,
} from "./monitor.js";
export { behaviorStatePath, persistBaselines, readBaselines, writeBaselines, type BaselinePersistence } from "./persist.js";
export { behaviorBucketName, MeshFanout, type MeshFanoutOptions } from "./mesh.js";
export { FNV_PRIME, isIdLike } from "./action.js";
