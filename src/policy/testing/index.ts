// Policy tests (`vigil test`): the PolicyTest document format, reading test files, comparing an
// answer with its expectation, and the reports. The CLI runs each case through the real decoder
// and pipeline (src/cli/test.ts); nothing here decides anything.

export { POLICY_TEST_API_VERSION, POLICY_TEST_KIND, policyTestManifestSchema } from "./schema.js";
export type { PolicyTestCase, PolicyTestExpectation, PolicyTestManifest } from "./schema.js";
export { loadPolicyTests, type LoadedPolicyTests } from "./load.js";
export { mismatches, type Observed } from "./compare.js";
export { failureLine, junitReport, passed, textReport, uncoveredRules, type CaseResult, type TestRun } from "./report.js";
export type { PolicyTestDocument } from "../documents.js";
