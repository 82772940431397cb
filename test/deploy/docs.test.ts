// docs/deploying.md: the guide's manifests are valid Kubernetes objects, the files and commands
// it names exist, and it shows each outcome the way the design says callers see it.

import { describe, expect, it } from "vitest";
import { validateObject, isKubeObject } from "./kube.js";
import { parseYamlDocuments, readRepoFile, repoFileExists } from "./repo.js";

const GUIDE = "docs/deploying.md";
const guide = readRepoFile(GUIDE);
// Fenced blocks, also those indented inside list items (their indentation removed).
const blocks = [...guide.matchAll(/^( *)```(\w*)\n([\s\S]*?)^\1```/gm)].map((m) => ({
  lang: m[2]!,
  body: m[3]!.split("\n").map((line) => line.slice(m[1]!.length)).join("\n"),
}));

describe(GUIDE, () => {
  it("has the sections the README takes over", () => {
    expect(guide.startsWith("## Deploying\n")).toBe(true);
    for (const heading of ["Sidecar with plain Envoy", "Kubernetes, cluster mode with NATS", "Istio", "When an alert fires"]) {
      expect(guide).toMatch(new RegExp(`^###.*${heading}`, "m"));
    }
  });

  it("its Kubernetes manifests validate with no unknown field", () => {
    const manifests = blocks.filter((b) => b.lang === "yaml" && /^kind: /m.test(b.body) && /^apiVersion: /m.test(b.body))
      .flatMap((b) => parseYamlDocuments(b.body, GUIDE));
    expect(manifests.length).toBeGreaterThan(0);
    for (const object of manifests) {
      expect(isKubeObject(object)).toBe(true);
      expect(validateObject(object)).toEqual([]);
    }
  });

  it("names only repository files that exist", () => {
    const named = [...guide.matchAll(/`((?:envoy|deploy|docs|examples|scripts|src)\/[A-Za-z0-9_./-]*[A-Za-z0-9_])`/g)].map((m) => m[1]!);
    const applied = [...guide.matchAll(/kubectl apply -k (\S+)/g)].map((m) => `${m[1]!}/kustomization.yaml`);
    const installed = [...guide.matchAll(/istioctl install -f (\S+)/g)].map((m) => m[1]!);
    const all = [...named, ...applied, ...installed];
    expect(all.length).toBeGreaterThan(5);
    expect(all.filter((f) => !repoFileExists(f))).toEqual([]);
  });

  it("shows each outcome as the caller sees it", () => {
    expect(guide).toMatch(/HTTP\/2 200[\s\S]*"X-Vigil-Caller"/);
    expect(guide).toMatch(/HTTP\/2 403\n[^\n]*\n\n\{"decision_id":"[^"]*","outcome":"deny","reason":"[^"]+"\}/);
    expect(guide).toMatch(/HTTP\/2 403\nx-vigil-step-up: approval\n[\s\S]*?"approval_id":/);
    expect(guide).toMatch(/HTTP\/2 429\nretry-after: \d+\n/);
    expect(guide).toMatch(/"outcome":"revoke"[\s\S]*?HTTP\/2 403[\s\S]*?"outcome":"deny"/);
  });
});
