// Mutation runs (`npm run mutation`, not part of CI): StrykerJS with its vitest runner mutates the
// security checks (identity, signals, approvals, admin auth, the decision phases) and reports
// which mutants the suite kills. A surviving mutant in a security check needs a test or a note in
// SECURITY.md saying why it is harmless. The HTML report lands in reports/mutation/.
//
// A full run takes hours on 2 cores; narrow it with `npm run mutation -- --mutate 'src/identity/**/*.ts'`.
/** @type {import("@stryker-mutator/api/core").PartialStrykerOptions} */
export default {
  testRunner: "vitest",
  vitest: { configFile: "vitest.mutation.config.ts" },
  plugins: ["@stryker-mutator/vitest-runner"],
  coverageAnalysis: "perTest",
  mutate: [
    "src/identity/**/*.ts",
    "src/signals/**/*.ts",
    "!src/signals/nats-store.ts",
    "src/approvals/**/*.ts",
    "src/transport/http/auth.ts",
    "src/decision/**/*.ts",
    "!src/**/index.ts",
  ],
  ignorePatterns: ["dist", "coverage", ".cache", "reports", ".vigil", "bench"],
  reporters: ["clear-text", "progress", "html", "json"],
  htmlReporter: { fileName: "reports/mutation/index.html" },
  jsonReporter: { fileName: "reports/mutation/mutation.json" },
  concurrency: 2,
  timeoutMS: 20000,
  tempDirName: ".stryker-tmp",
  cleanTempDir: "always",
};
