// The Node flags the sidecar runs with: the image sets them in NODE_OPTIONS, and a manifest that
// sets NODE_OPTIONS replaces the image's value, so each must repeat them; the benches that start
// Vigil as its own process pass the same list (bench/lib.ts), so they measure what ships.

import { describe, expect, it } from "vitest";
import { SIDECAR_NODE_FLAGS } from "../../bench/lib.js";
import { parseDockerfile } from "./dockerfile.js";
import { readRepoFile, readYamlDocuments } from "./repo.js";

/** Every `NODE_OPTIONS` env value in a parsed YAML tree. */
function nodeOptionsIn(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(nodeOptionsIn);
  if (typeof value !== "object" || value === null) return [];
  const entry = value as Record<string, unknown>;
  const own = entry.name === "NODE_OPTIONS" && typeof entry.value === "string" ? [entry.value] : [];
  return [...own, ...Object.values(entry).flatMap(nodeOptionsIn)];
}

/** NODE_OPTIONS as the runtime stage's ENV sets it (`ENV A=1 B=2` form). */
function imageNodeOptions(): string[] {
  const runtime = parseDockerfile(readRepoFile("Dockerfile")).at(-1)!;
  return runtime.instructions
    .filter((i) => i.keyword === "ENV")
    .flatMap((i) => [...i.args.matchAll(/(?:^|\s)NODE_OPTIONS=("[^"]*"|\S+)/g)].map((m) => m[1]!.replace(/^"|"$/g, "")));
}

describe("the sidecar's Node flags", () => {
  it("bound V8's young generation (Node 24 otherwise grows it to 128 MB and keeps it)", () => {
    expect(SIDECAR_NODE_FLAGS).toContainEqual(expect.stringMatching(/^--max-semi-space-size=\d+$/));
  });

  it.each([
    ["the image (Dockerfile ENV)", imageNodeOptions],
    ["deploy/kubernetes/deployment.yaml", () => nodeOptionsIn(readYamlDocuments("deploy/kubernetes/deployment.yaml"))],
    ["deploy/istio/sidecar/vigil-container.yaml", () => nodeOptionsIn(readYamlDocuments("deploy/istio/sidecar/vigil-container.yaml"))],
  ] as const)("are in every NODE_OPTIONS of %s", (_where, read) => {
    const values = read();
    expect(values.length).toBeGreaterThan(0);
    for (const value of values) expect(value.split(/\s+/)).toEqual(expect.arrayContaining([...SIDECAR_NODE_FLAGS]));
  });
});
