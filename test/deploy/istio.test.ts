// deploy/istio: Vigil as an Istio extension provider (envoyExtAuthzGrpc) and the CUSTOM
// AuthorizationPolicies that use it, validated with @kubernetes-models/istio and Istio's
// MeshConfig field set, unknown fields refused.

import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import type { IAuthorizationPolicy } from "@kubernetes-models/istio/security.istio.io/v1";
import type { IServiceEntry } from "@kubernetes-models/istio/networking.istio.io/v1beta1";
import { buildKustomization, isKubeObject, kubectlAvailable, validateObject, type KubeObject } from "./kube.js";
import { filesUnder, parseYamlDocuments, readYamlDocuments } from "./repo.js";

interface Provider {
  name: string;
  envoyExtAuthzGrpc: {
    service: string;
    port: number;
    timeout?: string;
    failOpen?: boolean;
    statusOnError?: string;
    includeRequestBodyInCheck?: { maxRequestBytes: number; allowPartialMessage?: boolean };
  };
}

const manifests = filesUnder("deploy/istio").filter((f) => f.endsWith(".yaml") && !f.endsWith("kustomization.yaml"));
const objects = manifests.flatMap((f) => readYamlDocuments(f).map((doc) => ({ file: f, object: doc as KubeObject })));

const operator = objects.find((o) => o.object.kind === "IstioOperator")!.object as KubeObject & {
  spec: { meshConfig: { extensionProviders: Provider[] } };
};
const providers = operator.spec.meshConfig.extensionProviders;
const policies = objects.filter((o) => o.object.kind === "AuthorizationPolicy").map((o) => o.object as KubeObject & IAuthorizationPolicy);
const serviceEntry = objects.find((o) => o.object.kind === "ServiceEntry")!.object as KubeObject & IServiceEntry;

function provider(name: string): Provider["envoyExtAuthzGrpc"] {
  const found = providers.find((p) => p.name === name);
  if (found === undefined) throw new Error(`no extension provider ${name}`);
  return found.envoyExtAuthzGrpc;
}

describe("deploy/istio", () => {
  it.each(objects.map((o) => [`${o.object.kind}/${o.object.metadata.name} (${o.file})`, o.object] as const))(
    "%s validates with no unknown field",
    (_label, object) => {
      expect(validateObject(object)).toEqual([]);
    },
  );

  it("refuses a misspelled field in an AuthorizationPolicy and in the extension provider", () => {
    const policy = structuredClone(policies[0]!) as unknown as { spec: Record<string, unknown> };
    policy.spec.provder = { name: "vigil" };
    expect(validateObject(policy)).toContainEqual(expect.stringMatching(/^\/spec\/provder: unknown field/));
    const op = structuredClone(operator);
    (op.spec.meshConfig.extensionProviders[0]!.envoyExtAuthzGrpc as Record<string, unknown>).failOpn = false;
    expect(validateObject(op)).toContainEqual(expect.stringContaining("failOpn"));
  });

  it("hands every request of the workload to a Vigil provider (action CUSTOM)", () => {
    expect(policies.length).toBeGreaterThan(0);
    for (const p of policies) {
      expect(p.spec?.action).toBe("CUSTOM");
      expect(providers.map((x) => x.name)).toContain(p.spec?.provider?.name);
      expect(p.spec?.selector?.matchLabels).toBeDefined();
      expect(p.spec?.rules?.length ?? 0).toBeGreaterThan(0);
    }
  });

  it("fails closed with 403 and an explicit timeout (Istio's default is 600s)", () => {
    for (const p of providers) {
      expect(p.envoyExtAuthzGrpc.failOpen).toBe(false);
      expect(p.envoyExtAuthzGrpc.statusOnError).toBe("403");
      expect(p.envoyExtAuthzGrpc.timeout).toMatch(/^\d+(\.\d+)?s$/);
      expect(Number.parseFloat(p.envoyExtAuthzGrpc.timeout!)).toBeLessThan(0.2);
    }
  });

  it("merges slashes before the check (Istio's default BASE lets //v1/deploy through)", () => {
    const mesh = operator.spec.meshConfig as { pathNormalization?: { normalization: string } };
    expect(["MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES"]).toContain(mesh.pathNormalization?.normalization);
  });

  it("sends whole bodies up to 64 KiB to Vigil for MCP workloads only", () => {
    expect(provider("vigil").includeRequestBodyInCheck).toBeUndefined();
    expect(provider("vigil-mcp").includeRequestBodyInCheck).toEqual({ maxRequestBytes: 65536, allowPartialMessage: false });
  });

  it("points the providers at the ServiceEntry for the pod-local Vigil", () => {
    for (const p of providers) {
      expect(serviceEntry.spec?.hosts).toContain(p.envoyExtAuthzGrpc.service);
      const port = serviceEntry.spec?.ports?.find((x) => x.number === p.envoyExtAuthzGrpc.port);
      expect(port?.protocol).toBe("GRPC");
    }
    expect(serviceEntry.spec?.resolution).toBe("STATIC");
  });

  it("applies everything but the mesh config with kubectl apply -k", () => {
    const built = buildKustomization("deploy/istio");
    const listed = new Set(built.files);
    expect(manifests.filter((f) => !listed.has(f))).toEqual(["deploy/istio/mesh-config.yaml"]);
    for (const { object } of built.objects) expect(validateObject(object)).toEqual([]);
  });

  it.skipIf(!kubectlAvailable())("builds with kubectl kustomize", () => {
    const out = execFileSync("kubectl", ["kustomize", "deploy/istio"], { cwd: new URL("../..", import.meta.url), encoding: "utf8" });
    const docs = parseYamlDocuments(out, "kubectl kustomize deploy/istio").filter(isKubeObject);
    expect(docs.map((d) => d.kind).sort()).toEqual(["AuthorizationPolicy", "AuthorizationPolicy", "ServiceEntry"]);
    for (const doc of docs) expect(validateObject(doc)).toEqual([]);
  });
});

