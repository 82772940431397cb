// README.md: the guide's manifests are valid Kubernetes objects, the files and commands
// it names exist, and it shows each outcome the way the design says callers see it.

import { describe, expect, it } from "vitest";
import { validateObject, isKubeObject } from "./kube.js";
import { parseYamlDocuments, readRepoFile, repoFileExists } from "./repo.js";
import type { Decision } from "../../src/decision/index.js";
import { encodeCheckResponse } from "../../src/transport/envoy/index.js";
import { decodeWithEnvoyProtos } from "../support/envoy-client.js";

const GUIDE = "README.md";
// The README's "Deploying" section: from its heading to the next level-2 heading.
const readme = readRepoFile(GUIDE);
const guide = readme.slice(readme.indexOf("\n## Deploying\n") + 1).split(/\n## (?!#)/)[0]!;
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
    // Every -f of istioctl install / helm upgrade but the reader's own (your-…).
    const installed = [...guide.matchAll(/(?:istioctl install|helm upgrade)[^\n]*/g)]
      .flatMap((m) => [...m[0].matchAll(/ -f (\S+)/g)].map((f) => f[1]!))
      .filter((f) => !f.startsWith("your-"));
    const all = [...named, ...applied, ...installed];
    expect(all.length).toBeGreaterThan(5);
    expect(all.filter((f) => !repoFileExists(f))).toEqual([]);
  });

  it("shows each outcome as the caller sees it: the headers and body fields Vigil really sends", () => {
    expect(guide).toMatch(/HTTP\/2 200[\s\S]*"X-Vigil-Caller"/);
    const base: Decision = {
      id: "d-1", outcome: "deny", rule: "r", reason: "no", caller: "", trustDomain: "", credentialFingerprint: "",
      headersToRemove: [], durationNs: 0,
    };
    const cases: { decision: Decision; status: string }[] = [
      { decision: base, status: "403" },
      { decision: { ...base, outcome: "step_up", approvalId: "apr_1" }, status: "403" },
      { decision: { ...base, outcome: "delay", retryAfterSeconds: 60 }, status: "429" },
      { decision: { ...base, outcome: "revoke" }, status: "403" },
    ];
    for (const { decision, status } of cases) {
      const sent = decodeWithEnvoyProtos(encodeCheckResponse(decision)).denied_response;
      const headerLines = (sent?.headers ?? []).map((h) => `${h.header?.key ?? ""}: `);
      const bodyKeys = Object.keys(JSON.parse(sent?.body ?? "{}") as object);
      const found = [...guide.matchAll(/HTTP\/2 \d+\n(?:[^\n]+\n)*\n\{[^\n]*\}/g)].map((m) => m[0]);
      const shown = found.some((b) => b.includes(`"outcome":"${decision.outcome}"`) && matchesShape(b, status, headerLines, bodyKeys));
      expect(shown, `${decision.outcome}: ${headerLines.join(" ")} / ${bodyKeys.join(",")}`).toBe(true);
    }
  });
});

/** True when a guide block has exactly Vigil's header names in order and its body has Vigil's keys. */
function matchesShape(block: string, status: string, headerLines: string[], bodyKeys: string[]): boolean {
  const [statusLine = "", ...rest] = block.split("\n");
  const blank = rest.indexOf("");
  const headers = rest.slice(0, blank).map((l) => `${l.slice(0, l.indexOf(":"))}: `);
  const body = JSON.parse(rest.slice(blank + 1).join("\n")) as Record<string, unknown>;
  return statusLine === `HTTP/2 ${status}` && JSON.stringify(headers) === JSON.stringify(headerLines)
    && JSON.stringify(Object.keys(body)) === JSON.stringify(bodyKeys);
}
