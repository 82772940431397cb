export * from "../model/index.js";
export {
  createDecider, credentialStateRank, IDENTITY_RULE, readSignals, requestView, signalsView,
  type Decide, type DeciderDeps, type SignalsRead,
} from "./pipeline.js";
export { Effects, type EffectsOptions, type RevocationEffect } from "./effects.js";
export { createDestinationResolver, gatewayHost, CONTEXT_DESTINATION, type DestinationResult, type ResolveDestination } from "./destination.js";
export { pathProblem } from "./path.js";
