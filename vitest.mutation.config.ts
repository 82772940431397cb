// The test set StrykerJS runs against each mutant (`npm run mutation`): every unit and contract
// test plus the in-process hostile tables, without the suites that spawn whole processes or check
// shipped files (CLI, durability faults, cluster, deploy). Each of those takes seconds per mutant
// and kills nothing the in-process tables do not; on 2 cores they made a run take hours.
import { defineConfig, mergeConfig } from "vitest/config";
import base from "./vitest.config.js";

export default mergeConfig(base, defineConfig({
  test: {
    exclude: [
      "node_modules/**",
      "test/deploy/**",
      "test/e2e/cli.test.ts",
      "test/e2e/cluster.test.ts",
      "test/e2e/durability.test.ts",
      "test/e2e/hostile-durability.test.ts",
    ],
  },
}));
