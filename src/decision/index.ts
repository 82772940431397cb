export * from "./request.js";
export { createDecider, requestView, signalsView, type Decide, type DeciderDeps } from "./pipeline.js";
export { Effects, type EffectsOptions, type RevocationEffect } from "./effects.js";
