// Kubernetes and Istio objects: strict validation with kubernetes-models, and the file list a
// kustomization builds (resources + generated ConfigMaps) without needing kustomize.
//
// kubernetes-models validates types, enums and required fields but, like the API server's
// default, lets unknown fields through. To refuse them, validation runs on a Proxy that records
// every property the schema's validator reads: the validators touch each property their schema
// declares (and enumerate the keys of free-form maps such as labels), so a key that was never
// read is one the schema does not know, e.g. a misspelled `readOnlyRootFilesytem`.

import { execFileSync } from "node:child_process";
import { basename, dirname, join } from "node:path";
import { ConfigMap, Namespace, Pod, Secret, Service, ServiceAccount } from "kubernetes-models/v1";
import { Deployment, StatefulSet } from "kubernetes-models/apps/v1";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { AuthorizationPolicy } from "@kubernetes-models/istio/security.istio.io/v1";
import { ServiceEntry } from "@kubernetes-models/istio/networking.istio.io/v1beta1";
import { IstioOperator } from "@kubernetes-models/istio/install.istio.io/v1alpha1";
import { z } from "zod";
import { isRecord, parseYamlDocuments, readRepoFile, readYamlDocuments, repoFileExists } from "./repo.js";

interface Validatable { validate(): void }
type ModelClass = new (data: never) => Validatable;

/** The object kinds shipped in deploy/ and README.md, by "apiVersion/kind". Anything else is refused. */
const MODELS: Readonly<Record<string, ModelClass>> = {
  "v1/Namespace": Namespace,
  "v1/ServiceAccount": ServiceAccount,
  "v1/Secret": Secret,
  "v1/Service": Service,
  "v1/ConfigMap": ConfigMap,
  "v1/Pod": Pod,
  "apps/v1/Deployment": Deployment,
  "apps/v1/StatefulSet": StatefulSet,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "security.istio.io/v1/AuthorizationPolicy": AuthorizationPolicy,
  "networking.istio.io/v1beta1/ServiceEntry": ServiceEntry,
  "install.istio.io/v1alpha1/IstioOperator": IstioOperator,
};

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

export function isKubeObject(value: unknown): value is KubeObject {
  return isRecord(value) && typeof value.apiVersion === "string" && typeof value.kind === "string"
    && isRecord(value.metadata) && typeof value.metadata.name === "string";
}

/** Wraps `value` so that every own property the validator reads is recorded under its JSON path. */
function watchReads(value: unknown, path: string, reads: Map<string, Set<string>>): unknown {
  if (typeof value !== "object" || value === null) return value;
  const record = (key: string): void => {
    let set = reads.get(path);
    if (set === undefined) reads.set(path, set = new Set());
    set.add(key);
  };
  return new Proxy(value, {
    get(target, key, receiver) {
      const result: unknown = Reflect.get(target, key, receiver);
      if (typeof key !== "string" || !Object.hasOwn(target, key)) return result;
      record(key);
      return watchReads(result, `${path}/${key}`, reads);
    },
    has(target, key) {
      if (typeof key === "string") record(key);
      return Reflect.has(target, key);
    },
    ownKeys(target) {
      const keys = Reflect.ownKeys(target);
      for (const key of keys) if (typeof key === "string") record(key);
      return keys;
    },
  });
}

function unreadKeys(value: unknown, path: string, reads: Map<string, Set<string>>, out: string[]): void {
  if (Array.isArray(value)) {
    value.forEach((item, i) => { unreadKeys(item, `${path}/${i}`, reads, out); });
    return;
  }
  if (!isRecord(value)) return;
  const known = reads.get(path);
  for (const [key, child] of Object.entries(value)) {
    if (known?.has(key) === true) unreadKeys(child, `${path}/${key}`, reads, out);
    else out.push(`${path}/${key}`);
  }
}

/**
 * Validates one object with its kubernetes-models class and refuses unknown fields. Returns the
 * problems found (empty = valid). IstioOperator's spec is free-form in its CRD; it is checked
 * separately by {@link istioOperatorSpecSchema}.
 */
export function validateObject(object: unknown): string[] {
  if (!isKubeObject(object)) return ["not a Kubernetes object (apiVersion, kind, metadata.name)"];
  const key = `${object.apiVersion}/${object.kind}`;
  const Model = MODELS[key];
  if (Model === undefined) return [`no model for ${key}: add it to MODELS in test/deploy/kube.ts`];
  const problems: string[] = [];
  let data: Record<string, unknown> = object;
  if (key === "install.istio.io/v1alpha1/IstioOperator") {
    const { spec, ...rest } = object;
    const parsed = istioOperatorSpecSchema.safeParse(spec);
    if (!parsed.success) problems.push(...parsed.error.issues.map((i) => `/spec/${i.path.join("/")}: ${i.message}`));
    data = rest;
  }
  const model = new Model(data as never);
  const reads = new Map<string, Set<string>>();
  const watched = watchReads(model, "", reads) as Validatable;
  try {
    watched.validate();
  } catch (error) {
    problems.push(error instanceof Error ? error.message : String(error));
  }
  const unknown: string[] = [];
  unreadKeys(JSON.parse(JSON.stringify(model)), "", reads, unknown);
  problems.push(...unknown.map((p) => `${p}: unknown field (not in the ${key} schema)`));
  return problems;
}

// Istio's MeshConfig.ExtensionProvider.EnvoyExternalAuthorizationGrpcProvider (istio/api
// mesh/v1alpha1/config.proto), as proto3 JSON (camelCase) under IstioOperator spec.meshConfig.
const durationString = z.string().regex(/^\d+(\.\d{1,9})?s$/, "a proto3 JSON duration such as \"0.05s\"");
const requestBody = z.strictObject({
  maxRequestBytes: z.number().int().positive(),
  allowPartialMessage: z.boolean().optional(),
  packAsBytes: z.boolean().optional(),
});
export const envoyExtAuthzGrpcSchema = z.strictObject({
  service: z.string().min(1),
  port: z.number().int().min(1).max(65535),
  timeout: durationString.optional(),
  failOpen: z.boolean().optional(),
  statusOnError: z.string().regex(/^\d{3}$/).optional(),
  includeRequestBodyInCheck: requestBody.optional(),
  clearRouteCache: z.boolean().optional(),
});
export const istioOperatorSpecSchema = z.strictObject({
  meshConfig: z.strictObject({
    // MeshConfig.ProxyPathNormalization (istio/api mesh/v1alpha1/config.proto).
    pathNormalization: z.strictObject({
      normalization: z.enum(["DEFAULT", "NONE", "BASE", "MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES"]),
    }).optional(),
    extensionProviders: z.array(z.strictObject({
      name: z.string().min(1),
      envoyExtAuthzGrpc: envoyExtAuthzGrpcSchema,
    })).min(1),
  }),
});

// ---- kustomize, as far as these manifests use it ----

const kustomizationSchema = z.strictObject({
  apiVersion: z.literal("kustomize.config.k8s.io/v1beta1"),
  kind: z.literal("Kustomization"),
  namespace: z.string().optional(),
  resources: z.array(z.string()).default([]),
  // Generated names here never carry kustomize's hash suffix, so the option changes nothing below.
  generatorOptions: z.strictObject({ disableNameSuffixHash: z.boolean() }).optional(),
  // Only inline `$patch: delete` patches (dropping an object a base ships); kubectl's kustomize
  // checks the rest in the tests that need it.
  patches: z.array(z.strictObject({ patch: z.string() })).default([]),
  configMapGenerator: z.array(z.strictObject({
    name: z.string(),
    files: z.array(z.string()).min(1),
  })).default([]),
});

export interface BuiltObject {
  /** Repository-relative file the object came from (for generated ConfigMaps: the kustomization). */
  source: string;
  object: KubeObject;
}

export interface Kustomization {
  /** Every object the kustomization produces, generated ConfigMaps included, namespace applied. */
  objects: BuiltObject[];
  /** Every file the kustomization (and those it includes) reads. */
  files: string[];
}

/** Resolves `dir/kustomization.yaml` and what it includes, the way `kustomize build` would. */
export function buildKustomization(dir: string, inheritedNamespace?: string): Kustomization {
  const path = join(dir, "kustomization.yaml");
  const k = kustomizationSchema.parse(readYamlDocuments(path)[0]);
  const namespace = k.namespace ?? inheritedNamespace;
  const objects: BuiltObject[] = [];
  const files = [path];
  const place = (object: KubeObject): KubeObject => {
    if (namespace === undefined || object.kind === "Namespace") return object;
    return { ...object, metadata: { ...object.metadata, namespace } };
  };
  for (const resource of k.resources) {
    const target = join(dir, resource);
    if (repoFileExists(join(target, "kustomization.yaml"))) {
      const sub = buildKustomization(target, namespace);
      objects.push(...sub.objects);
      files.push(...sub.files);
      continue;
    }
    if (!repoFileExists(target)) throw new Error(`${path}: resource ${resource} does not exist`);
    files.push(target);
    for (const doc of readYamlDocuments(target)) {
      if (!isKubeObject(doc)) throw new Error(`${target}: a document is not a Kubernetes object`);
      objects.push({ source: target, object: place(doc) });
    }
  }
  for (const generator of k.configMapGenerator) {
    const data: Record<string, string> = {};
    for (const file of generator.files) {
      const [key, from] = file.includes("=") ? file.split("=", 2) as [string, string] : [basename(file), file];
      const filePath = join(dir, from);
      if (!repoFileExists(filePath)) throw new Error(`${path}: configMapGenerator ${generator.name} file ${from} does not exist`);
      if (!dirname(join(dir, from)).startsWith(dir)) throw new Error(`${path}: ${from} is outside the kustomization (kustomize refuses it)`);
      files.push(filePath);
      data[key] = readRepoFile(filePath);
    }
    objects.push({
      source: path,
      object: place({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: generator.name }, data }),
    });
  }
  for (const { patch } of k.patches) {
    const doc = readDeletePatch(patch, path);
    const index = objects.findIndex((o) => o.object.apiVersion === doc.apiVersion && o.object.kind === doc.kind && o.object.metadata.name === doc.metadata.name);
    if (index < 0) throw new Error(`${path}: $patch: delete of ${doc.kind}/${doc.metadata.name}, which nothing ships`);
    objects.splice(index, 1);
  }
  return { objects, files };
}

function readDeletePatch(text: string, path: string): KubeObject {
  const [doc] = parseYamlDocuments(text, `${path} patch`);
  if (!isKubeObject(doc) || (doc as { $patch?: unknown }).$patch !== "delete" || Object.keys(doc).length !== 4) {
    throw new Error(`${path}: only inline "$patch: delete" patches are understood here`);
  }
  return doc;
}

/** `--flag value` pairs of a command line (every Vigil serve flag takes a value). */
export function parseFlags(args: readonly string[]): Map<string, string[]> {
  const flags = new Map<string, string[]>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg?.startsWith("--") !== true) continue;
    const value = args[i + 1];
    if (value === undefined || value.startsWith("--")) throw new Error(`flag ${arg} has no value`);
    flags.set(arg, [...flags.get(arg) ?? [], value]);
    i++;
  }
  return flags;
}

/** Whether `kubectl` (with its built-in kustomize) is on PATH; the build tests need it. */
export function kubectlAvailable(): boolean {
  try {
    execFileSync("kubectl", ["version", "--client"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
