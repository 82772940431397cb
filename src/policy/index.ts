// The policy module: document schema, loader and hot reload, compiler (index + CEL) and
// evaluator. The decision pipeline builds a PolicyInput and calls CompiledPolicy.evaluate.

export type { CompiledPolicy, PolicyInput, PolicyResult, RequestView, SignalsView, SourceView, StepUpParams } from "./types.js";
export type { PolicyIssue, PolicySource } from "./diagnostics.js";
export { formatIssue, formatPolicyError } from "./diagnostics.js";
export type { PolicyDocument } from "./documents.js";
export { parsePolicyDocuments, readPolicyDocuments } from "./documents.js";
export type { LoadedPolicy, LoadedPolicyDir } from "./loader.js";
export { isRequiredPolicy, loadCompiledPolicy, loadPolicyDir, REQUIRED_ANNOTATION, requiredPolicyProblems } from "./loader.js";
export type { CompileOptions } from "./compiler.js";
export { CONTROLS, controlProblem, findControl, type Control } from "./controls.js";
export { EvidenceCollector, evidenceTable, SAMPLE_IDS, type ControlEvidence, type EvidenceReport } from "./evidence.js";
export { compilePolicy, policyVersion, CONDITION_ERROR_REASON, EVALUATION_ERROR_REASON, NOTHING_MATCHED_REASON } from "./compiler.js";
export type { PolicyLoadInfo, PolicyWatch, PolicyWatchOptions } from "./watch.js";
export { watchPolicyDir } from "./watch.js";
export type { ChangeWindowSpec, PolicyManifest, PolicyRuleSpec, RevocationTarget, Weekday } from "./schema.js";
export { OUTCOMES, POLICY_API_VERSION, POLICY_KIND, policyManifestSchema } from "./schema.js";
export type { EntitiesWatch, EntitiesWatchOptions, EntityEntry } from "./entities.js";
export { ENTITIES_KIND, EntityBook, loadEntitiesFile, NO_ENTITIES, parseEntities, watchEntitiesFile } from "./entities.js";
