// deploy/istio: Vigil as an Istio extension provider (envoyExtAuthzGrpc) and the CUSTOM
// AuthorizationPolicies that use it, validated with @kubernetes-models/istio and Istio's
// MeshConfig field set, unknown fields refused; the meshConfig as an IstioOperator overlay and as
// istiod Helm values, equal; the namespace resources (NATS reused from deploy/kubernetes, policies
// and signals for trust domain cluster.local); and the sidecar Component that adds Vigil to an
// Istio-injected workload, rendered with kubectl's kustomize (deploy/istio-demo and a scratch
// kustomization of two workloads) and checked object by object.

import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { IAuthorizationPolicy } from "@kubernetes-models/istio/security.istio.io/v1";
import type { IServiceEntry } from "@kubernetes-models/istio/networking.istio.io/v1beta1";
import type { IDeployment } from "kubernetes-models/apps/v1";
import type { IContainer } from "kubernetes-models/v1";
import { loadConfig, parseServeArgs } from "../../src/config/index.js";
import { loadCompiledPolicy } from "../../src/policy/index.js";
import { buildKustomization, isKubeObject, istioOperatorSpecSchema, kubectlAvailable, validateObject, type KubeObject } from "./kube.js";
import { filesUnder, parseYamlDocuments, readRepoFile, readYaml, readYamlDocuments, repoPath } from "./repo.js";

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

/** The Kubernetes objects at the top of deploy/istio (policies/ and signals.yaml are Vigil's, sidecar/ a patch). */
const NOT_OBJECTS = new Set(["deploy/istio/istiod-values.yaml", "deploy/istio/signals.yaml"]);
const manifests = filesUnder("deploy/istio")
  .filter((f) => /^deploy\/istio\/[^/]+\.yaml$/.test(f) && !f.endsWith("kustomization.yaml") && !NOT_OBJECTS.has(f));
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
    // The NATS of deploy/kubernetes, not a copy.
    expect(built.files).toContain("deploy/kubernetes/nats/statefulset.yaml");
    for (const { object } of built.objects) expect(validateObject(object)).toEqual([]);
  });

  it.skipIf(!kubectlAvailable())("builds with kubectl kustomize", () => {
    const out = execFileSync("kubectl", ["kustomize", "deploy/istio"], { cwd: new URL("../..", import.meta.url), encoding: "utf8" });
    const docs = parseYamlDocuments(out, "kubectl kustomize deploy/istio").filter(isKubeObject);
    expect(docs.filter((d) => d.kind !== "ConfigMap").map((d) => `${d.kind}/${d.metadata.name}`).sort()).toEqual([
      "AuthorizationPolicy/change-mgmt-vigil", "AuthorizationPolicy/deploy-api-vigil", "Namespace/vigil-demo", "NetworkPolicy/nats",
      "PodDisruptionBudget/nats", "Service/nats", "Service/nats-headless", "Service/vigil",
      "ServiceAccount/nats", "ServiceEntry/vigil-local", "StatefulSet/nats",
    ]);
    // Fixed names: workloads built in another kustomization mount them by these names.
    expect(docs.filter((d) => d.kind === "ConfigMap").map((d) => d.metadata.name)).toEqual(expect.arrayContaining(["vigil-policies", "vigil-signals"]));
    for (const doc of docs) expect(validateObject(doc)).toEqual([]);
  });

  it("leaves Vigil's own HTTP port out of the CUSTOM policies (its API has tokens; Prometheus must reach it)", () => {
    for (const p of policies) {
      expect(p.spec?.rules).toEqual([{ to: [{ operation: { notPorts: ["9192"] } }] }]);
    }
  });

  it("ships no Secret, so applying it again never replaces the admin tokens or the NATS password with empty ones", () => {
    expect(buildKustomization("deploy/istio").objects.filter((o) => o.object.kind === "Secret")).toEqual([]);
    // ...while the NATS it reuses does ship one (dropped by the patch, not by a copy).
    expect(buildKustomization("deploy/kubernetes/nats").objects.map((o) => `${o.object.kind}/${o.object.metadata.name}`)).toContain("Secret/nats-auth");
  });

  it("injects sidecars in the namespace", () => {
    const namespace = objects.find((o) => o.object.kind === "Namespace")?.object;
    expect(namespace?.metadata.labels?.["istio-injection"]).toBe("enabled");
  });
});

describe("deploy/istio meshConfig as a merge into an existing install", () => {
  const values = readYaml("deploy/istio/istiod-values.yaml") as { meshConfig: unknown };

  it("istiod's Helm values carry exactly the IstioOperator's meshConfig and nothing else", () => {
    expect(Object.keys(values)).toEqual(["meshConfig"]);
    expect(values.meshConfig).toEqual(operator.spec.meshConfig);
    expect(istioOperatorSpecSchema.safeParse({ meshConfig: values.meshConfig }).success).toBe(true);
  });

  it("says how to merge, never to install from this file alone", () => {
    const mesh = readRepoFile("deploy/istio/mesh-config.yaml");
    expect(mesh).toContain("istioctl install -f your-istio-operator.yaml -f deploy/istio/mesh-config.yaml");
    expect(mesh).not.toMatch(/^#\s+istioctl install -f deploy\/istio\/mesh-config\.yaml\s*$/m);
    expect(readRepoFile("deploy/istio/istiod-values.yaml")).toContain("--reuse-values -f deploy/istio/istiod-values.yaml");
  });

  it("refuses an unknown meshConfig field in the Helm values too", () => {
    const broken = structuredClone(values) as { meshConfig: { extensionProviders: Record<string, unknown>[] } };
    broken.meshConfig.extensionProviders[0] = { ...broken.meshConfig.extensionProviders[0], envoyExtAuthzGprc: {} };
    expect(istioOperatorSpecSchema.safeParse(broken).success).toBe(false);
  });
});

describe("deploy/istio policies and signals for Istio's trust domain", () => {
  const POLICIES = "deploy/istio/policies";
  const files = filesUnder(POLICIES);
  /** deploy/kubernetes' text with Istio's default trust domain: the only difference allowed. */
  const forIstio = (text: string): string => text.replaceAll("example.org", "cluster.local");

  it.each(files.map((f) => [f] as const))("%s is deploy/kubernetes' with trust domain cluster.local", (file) => {
    expect(readRepoFile(file)).toBe(forIstio(readRepoFile(file.replace(POLICIES, "deploy/kubernetes/policies"))));
  });

  it("has every policy file of deploy/kubernetes, loads and compiles, and names no other trust domain", async () => {
    expect(files.map((f) => f.slice(POLICIES.length))).toEqual(filesUnder("deploy/kubernetes/policies").map((f) => f.slice("deploy/kubernetes/policies".length)));
    const loaded = await loadCompiledPolicy(repoPath(POLICIES));
    expect(loaded.policy.ruleCount).toBeGreaterThan(0);
    for (const file of [...files, "deploy/istio/signals.yaml"]) {
      const ids = readRepoFile(file).match(/spiffe:\/\/[^/"\s]+/g) ?? [];
      expect(ids.length, file).toBeGreaterThan(0);
      expect(new Set(ids), file).toEqual(new Set(["spiffe://cluster.local"]));
    }
    expect(readRepoFile("deploy/istio/signals.yaml")).toBe(forIstio(readRepoFile("deploy/kubernetes/signals.yaml")));
  });


  it("puts every policy file into ConfigMap vigil-policies", () => {
    const map = buildKustomization("deploy/istio").objects.find((o) => o.object.kind === "ConfigMap" && o.object.metadata.name === "vigil-policies");
    expect(Object.keys((map?.object as { data?: Record<string, string> } | undefined)?.data ?? {}).sort()).toEqual(files.map((f) => f.slice(POLICIES.length + 1)).sort());
  });
});

type Deployment = KubeObject & IDeployment;

function kustomize(dir: string): KubeObject[] {
  const out = execFileSync("kubectl", ["kustomize", dir], { cwd: repoPath("."), encoding: "utf8" });
  return parseYamlDocuments(out, `kubectl kustomize ${dir}`).filter(isKubeObject);
}

function containers(deployment: Deployment): IContainer[] {
  return deployment.spec?.template.spec?.containers ?? [];
}

/** The vigil container's command line with Kubernetes' $(VAR) expansion from its env (downward API labels resolved). */
function vigilArgs(deployment: Deployment): string[] {
  const vigil = containers(deployment).find((c) => c.name === "vigil");
  const labels = deployment.spec?.template.metadata?.labels ?? {};
  const env = new Map((vigil?.env ?? []).map((e) => {
    const label = /^metadata\.labels\['(.+)'\]$/.exec(e.valueFrom?.fieldRef?.fieldPath ?? "")?.[1];
    return [e.name, label !== undefined ? labels[label] ?? "" : e.value ?? ""] as const;
  }));
  return (vigil?.args ?? []).map((a) => a.replace(/\$\(([A-Z_]+)\)/g, (_m, name: string) => env.get(name) ?? `$(${name})`));
}

describe.skipIf(!kubectlAvailable())("the sidecar Component adds Vigil to Istio-injected workloads", () => {
  const demo = kustomize("deploy/istio-demo");
  const deployment = demo.find((o) => o.kind === "Deployment" && o.metadata.name === "deploy-api") as Deployment;
  const scratch = mkdtempSync(join(tmpdir(), "vigil-istio-"));
  afterAll(() => { rmSync(scratch, { recursive: true, force: true }); });

  it.each(demo.map((o) => [`${o.kind}/${o.metadata.name}`, o] as const))("deploy/istio-demo: %s validates with no unknown field", (_label, object) => {
    expect(validateObject(object)).toEqual([]);
  });

  it("gives deploy-api the vigil container next to its app, with no envoy of its own (istio-proxy is the Envoy)", () => {
    expect(containers(deployment).map((c) => c.name).sort()).toEqual(["app", "vigil"]);
    const source = readYamlDocuments("deploy/istio-demo/deploy-api.yaml").find((d) => isKubeObject(d) && d.kind === "Deployment") as Deployment;
    // The workload as written names no Vigil container, volume or flag: only the label.
    expect(containers(source).map((c) => c.name)).toEqual(["app"]);
    expect(JSON.stringify(source)).not.toContain("vigil-policies");
  });

  it("starts Vigil with flags it understands: Check on loopback TCP 9191 for the provider, cluster.local, NATS, the workload's own name", () => {
    const args = vigilArgs(deployment);
    expect(args[0]).toBe("serve");
    const { values, positionals } = parseServeArgs(args.slice(1));
    expect(positionals).toEqual([]);
    const config = loadConfig({ ...values, "admin-tokens-file": undefined }, {});
    expect(config.grpc).toMatchObject({ host: "127.0.0.1", port: 9191, socket: "" });
    expect(config.identity.trustDomains).toEqual(["cluster.local"]);
    expect(config.store).toMatchObject({ bus: "nats://nats:4222", replicas: 3 });
    expect(config.destination.name).toBe("deploy-api");
    // The provider and ServiceEntry point at that port.
    for (const p of providers) expect(p.envoyExtAuthzGrpc.port).toBe(config.grpc.port);
    expect(serviceEntry.spec?.endpoints?.map((e) => e.address)).toEqual([config.grpc.host]);
  });

  it("mounts only what deploy/istio ships or the README has you create, every mount with its volume", () => {
    const spec = deployment.spec?.template.spec;
    const volumes = new Map((spec?.volumes ?? []).map((v) => [v.name, v]));
    for (const c of containers(deployment)) for (const m of c.volumeMounts ?? []) expect(volumes.has(m.name), `${c.name}: ${m.name}`).toBe(true);
    const names = new Set(demo.map((o) => `${o.kind}/${o.metadata.name}`));
    for (const v of volumes.values()) {
      if (v.configMap !== undefined) expect(names, v.name).toContain(`ConfigMap/${v.configMap.name ?? ""}`);
      // The two Secrets the README has the operator create, with the keys the mounts read.
      if (v.secret !== undefined) expect(["vigil-secrets", "nats-auth"], v.name).toContain(v.secret.secretName);
    }
    expect(volumes.get("vigil-nats-auth")?.secret?.items).toEqual([{ key: "vigil-password", path: "password" }]);
    const natsPassword = readRepoFile("deploy/kubernetes/nats/statefulset.yaml") + readRepoFile("deploy/kubernetes/nats/nats.conf");
    expect(natsPassword).toMatch(/vigil-password|VIGIL_PASSWORD/i);
  });

  it("labels the pods so NATS admits them, Service vigil selects them, and the CUSTOM policy and the policies name the workload", async () => {
    const labels = deployment.spec?.template.metadata?.labels ?? {};
    const nats = demo.find((o) => o.kind === "NetworkPolicy" && o.metadata.name === "nats") as unknown as { spec: { ingress: { from?: { podSelector?: { matchLabels?: Record<string, string> } }[] }[] } };
    const admitted = nats.spec.ingress.flatMap((r) => r.from ?? []).map((f) => f.podSelector?.matchLabels).filter((m) => m !== undefined);
    expect(admitted.some((m) => Object.entries(m).every(([k, v]) => labels[k] === v))).toBe(true);
    const service = demo.find((o) => o.kind === "Service" && o.metadata.name === "vigil") as unknown as { spec: { selector: Record<string, string> } };
    expect(Object.entries(service.spec.selector).every(([k, v]) => labels[k] === v)).toBe(true);
    const policy = policies.find((p) => p.metadata.name === "deploy-api-vigil");
    expect(Object.entries(policy?.spec?.selector?.matchLabels ?? {}).every(([k, v]) => labels[k] === v)).toBe(true);
    const loaded = await loadCompiledPolicy(repoPath("deploy/istio/policies"));
    expect(JSON.stringify(loaded.documents)).toContain("\"deploy-api\"");
  });

  it("patches every labelled Deployment of a team's own kustomization, each with its own destination, and leaves the others alone", () => {
    writeFileSync(join(scratch, "kustomization.yaml"), [
      "apiVersion: kustomize.config.k8s.io/v1beta1", "kind: Kustomization", "resources:", "- workloads.yaml",
      "components:", `- ${relative(scratch, repoPath("deploy/istio/sidecar"))}`, "",
    ].join("\n"));
    const workload = (name: string, inject: boolean): string => [
      "apiVersion: apps/v1", "kind: Deployment", "metadata:", `  name: ${name}`, ...(inject ? ["  labels:", "    vigil.dev/inject: \"true\""] : []),
      "spec:", "  selector:", "    matchLabels:", `      app.kubernetes.io/name: ${name}`, "  template:", "    metadata:", "      labels:", `        app.kubernetes.io/name: ${name}`,
      "    spec:", "      containers:", "      - name: app", "        image: example/app:1", "",
    ].join("\n");
    writeFileSync(join(scratch, "workloads.yaml"), [workload("tickets", true), workload("payments", true), workload("reports", false)].join("---\n"));
    const built = kustomize(scratch) as Deployment[];
    const byName = new Map(built.map((d) => [d.metadata.name, d]));
    for (const name of ["tickets", "payments"]) {
      const d = byName.get(name)!;
      expect(containers(d).map((c) => c.name).sort()).toEqual(["app", "vigil"]);
      expect(validateObject(d)).toEqual([]);
      const { values } = parseServeArgs(vigilArgs(d).slice(1));
      expect(loadConfig({ ...values, "admin-tokens-file": undefined }, {}).destination.name).toBe(name);
    }
    expect(containers(byName.get("reports")!).map((c) => c.name)).toEqual(["app"]);
  });
});

