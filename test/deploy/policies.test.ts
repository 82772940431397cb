// The policies deploy/kubernetes mounts into Vigil: they load and compile with Vigil's own
// policy loader, every file reaches the ConfigMap, and the copies of examples/policies stay
// identical to their originals (kustomize cannot read files outside deploy/kubernetes).

import { describe, expect, it } from "vitest";
import { loadCompiledPolicy } from "../../src/policy/index.js";
import { buildKustomization } from "./kube.js";
import { filesUnder, readRepoFile, repoFileExists, repoPath } from "./repo.js";

const DIR = "deploy/kubernetes/policies";
const files = filesUnder(DIR);

describe(DIR, () => {
  it("loads and compiles with Vigil's policy loader (what `vigil validate` runs)", async () => {
    const loaded = await loadCompiledPolicy(repoPath(DIR));
    expect(loaded.files).toHaveLength(files.length);
    expect(loaded.policy.ruleCount).toBeGreaterThan(0);
  });

  it("goes into ConfigMap vigil-policies file by file", () => {
    const map = buildKustomization("deploy/kubernetes").objects.find((o) => o.object.kind === "ConfigMap" && o.object.metadata.name === "vigil-policies");
    const data = (map?.object as { data?: Record<string, string> } | undefined)?.data ?? {};
    expect(Object.keys(data).sort()).toEqual(files.map((f) => f.slice(DIR.length + 1)).sort());
  });

  it.each(files.filter((f) => repoFileExists(f.replace(DIR, "examples/policies"))))("%s is identical to its original in examples/policies", (file) => {
    expect(readRepoFile(file)).toBe(readRepoFile(file.replace(DIR, "examples/policies")));
  });
});
