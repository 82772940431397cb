// One source of truth: the ports, addresses, HTTP paths and header names written in envoy/,
// deploy/, the Dockerfile and README.md are the ones src/config/defaults.ts defines.
// The files are parsed and their values compared; nothing here trusts a comment.

import { describe, expect, it } from "vitest";
import * as defaults from "../../src/config/defaults.js";
import {
  DEFAULT_GRPC_HOST, DEFAULT_GRPC_PORT, DEFAULT_GRPC_SOCKET, DEFAULT_HTTP_PORT, PATH_HEALTHZ, PATH_METRICS, PATH_READYZ,
} from "../../src/config/defaults.js";
import { createMetrics } from "../../src/telemetry/metrics.js";
import { execForm, parseDockerfile } from "./dockerfile.js";
import { buildKustomization, parseFlags, type KubeObject } from "./kube.js";
import { filesUnder, isRecord, readRepoFile, readYaml, readYamlDocuments } from "./repo.js";

const HEADERS = new Set(Object.entries(defaults).filter(([k]) => k.startsWith("HEADER_")).map(([, v]) => String(v)));
const PATHS = Object.entries(defaults).filter(([k]) => k.startsWith("PATH_")).map(([, v]) => String(v));

interface Container {
  name: string;
  args?: string[];
  ports?: { name?: string; containerPort: number }[];
  livenessProbe?: { httpGet?: { path: string; port: number | string } };
  readinessProbe?: { httpGet?: { path: string; port: number | string } };
  startupProbe?: { httpGet?: { path: string; port: number | string } };
}

const objects = buildKustomization("deploy/kubernetes").objects.map((o) => o.object);
const deployment = objects.find((o) => o.kind === "Deployment")! as KubeObject & {
  spec: { template: { metadata: { labels: Record<string, string>; annotations: Record<string, string> }; spec: { containers: Container[] } } };
};
const vigil = deployment.spec.template.spec.containers.find((c) => c.name === "vigil")!;
const flags = parseFlags(vigil.args ?? []);

function only(name: string): string {
  const values = flags.get(name);
  if (values?.length !== 1) throw new Error(`vigil needs exactly one ${name}`);
  return values[0]!;
}

function portNumber(c: Container, port: number | string): number {
  if (typeof port === "number") return port;
  const found = (c.ports ?? []).find((p) => p.name === port);
  if (found === undefined) throw new Error(`container ${c.name} has no port named ${port}`);
  return found.containerPort;
}

/** The first typed_config (depth-first) whose "@type" is `typeUrl`. */
function findTyped(value: unknown, typeUrl: string): unknown {
  if (Array.isArray(value)) {
    for (const item of value) {
      const found = findTyped(item, typeUrl);
      if (found !== undefined) return found;
    }
  } else if (isRecord(value)) {
    if (value["@type"] === typeUrl) return value;
    for (const child of Object.values(value)) {
      const found = findTyped(child, typeUrl);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

/** Text of every shipped configuration file and the deploying guide. */
function shippedTexts(): { file: string; text: string }[] {
  const files = [...filesUnder("envoy"), ...filesUnder("deploy"), "Dockerfile", "README.md"];
  return files.map((file) => ({ file, text: readRepoFile(file) }));
}

describe("src/config/defaults.ts is the source of truth", () => {
  it.each(["envoy/envoy.yaml", "envoy/envoy-mcp.yaml"])("%s calls Vigil on DEFAULT_GRPC_SOCKET", (file) => {
    const bootstrap = readYaml(file) as {
      static_resources: {
        clusters: { name: string; load_assignment: { endpoints: { lb_endpoints: { endpoint: { address: unknown } }[] }[] } }[];
      };
    };
    const authz = findTyped(bootstrap, "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz") as {
      grpc_service: { envoy_grpc: { cluster_name: string } };
    };
    const cluster = bootstrap.static_resources.clusters.find((c) => c.name === authz.grpc_service.envoy_grpc.cluster_name);
    const addresses = cluster!.load_assignment.endpoints.flatMap((e) => e.lb_endpoints.map((l) => l.endpoint.address));
    expect(addresses).toEqual([{ pipe: { path: DEFAULT_GRPC_SOCKET } }]);
  });

  it("Vigil's flags in the Deployment use the default gRPC socket and HTTP port", () => {
    expect(only("--grpc-socket")).toBe(DEFAULT_GRPC_SOCKET);
    expect(flags.has("--grpc-host")).toBe(false);
    expect(flags.has("--grpc-port")).toBe(false);
    expect(Number(only("--http-port"))).toBe(DEFAULT_HTTP_PORT);
  });

  it("Vigil's container port, probes and Prometheus annotations use DEFAULT_HTTP_PORT and the PATH_* paths", () => {
    expect(vigil.ports?.map((p) => p.containerPort)).toEqual([DEFAULT_HTTP_PORT]);
    expect(vigil.livenessProbe?.httpGet?.path).toBe(PATH_HEALTHZ);
    expect(vigil.startupProbe?.httpGet?.path).toBe(PATH_HEALTHZ);
    expect(vigil.readinessProbe?.httpGet?.path).toBe(PATH_READYZ);
    for (const probe of [vigil.livenessProbe, vigil.readinessProbe, vigil.startupProbe]) {
      expect(portNumber(vigil, probe!.httpGet!.port)).toBe(DEFAULT_HTTP_PORT);
    }
    const annotations = deployment.spec.template.metadata.annotations;
    expect(Number(annotations["prometheus.io/port"])).toBe(DEFAULT_HTTP_PORT);
    expect(annotations["prometheus.io/path"]).toBe(PATH_METRICS);
  });

  it("Service vigil and the NetworkPolicy open DEFAULT_HTTP_PORT and never DEFAULT_GRPC_PORT", () => {
    const service = objects.find((o) => o.kind === "Service" && o.metadata.name === "vigil") as KubeObject & {
      spec: { ports: { port: number; targetPort: number | string }[] };
    };
    expect(service.spec.ports.map((p) => portNumber(vigil, p.targetPort))).toEqual([DEFAULT_HTTP_PORT]);
    const policy = objects.find((o) => o.kind === "NetworkPolicy" && o.metadata.name === "deploy-api") as KubeObject & {
      spec: { ingress: { ports: { port: number }[] }[] };
    };
    const open = policy.spec.ingress.flatMap((r) => r.ports.map((p) => p.port));
    expect(open).toContain(DEFAULT_HTTP_PORT);
    expect(open).not.toContain(DEFAULT_GRPC_PORT);
  });

  it("the Istio provider and ServiceEntry reach DEFAULT_GRPC_HOST:DEFAULT_GRPC_PORT", () => {
    const [operator] = readYamlDocuments("deploy/istio/mesh-config.yaml") as [{ spec: { meshConfig: { extensionProviders: { envoyExtAuthzGrpc: { port: number } }[] } } }];
    for (const p of operator.spec.meshConfig.extensionProviders) expect(p.envoyExtAuthzGrpc.port).toBe(DEFAULT_GRPC_PORT);
    const [entry] = readYamlDocuments("deploy/istio/serviceentry.yaml") as [{ spec: { endpoints: { address: string }[]; ports: { number: number }[] } }];
    expect(entry.spec.endpoints.map((e) => e.address)).toEqual([DEFAULT_GRPC_HOST]);
    expect(entry.spec.ports.map((p) => p.number)).toEqual([DEFAULT_GRPC_PORT]);
  });

  it("the Dockerfile exposes both ports and health-checks PATH_HEALTHZ on DEFAULT_HTTP_PORT", () => {
    const runtime = parseDockerfile(readRepoFile("Dockerfile")).at(-1)!;
    const exposed = runtime.instructions.filter((i) => i.keyword === "EXPOSE").flatMap((i) => i.args.split(/\s+/).map(Number));
    expect(exposed.sort()).toEqual([DEFAULT_GRPC_PORT, DEFAULT_HTTP_PORT].sort());
    const healthcheck = runtime.instructions.find((i) => i.keyword === "HEALTHCHECK")!.args;
    expect(healthcheck).toContain(`http://127.0.0.1:${DEFAULT_HTTP_PORT}${PATH_HEALTHZ}`);
    const cmd = parseFlags(execForm(runtime.instructions.find((i) => i.keyword === "CMD")!.args));
    for (const name of ["--grpc-port", "--http-port"]) {
      const value = cmd.get(name)?.[0];
      if (value !== undefined) expect([DEFAULT_GRPC_PORT, DEFAULT_HTTP_PORT]).toContain(Number(value));
    }
  });

  it("every x-vigil-* header named in envoy/, deploy/, the Dockerfile and README.md is one Vigil defines", () => {
    const unknown = shippedTexts().flatMap(({ file, text }) => [...text.matchAll(/\bx-vigil-[a-z0-9-]+/gi)]
      .map((m) => m[0].toLowerCase())
      .filter((h) => !HEADERS.has(h))
      .map((h) => `${file}: ${h}`));
    expect(unknown).toEqual([]);
  });

  it("every Vigil HTTP URL in the shipped files and the guide uses a path defaults.ts defines", () => {
    const urls = shippedTexts().flatMap(({ file, text }) => [...text.matchAll(new RegExp(`:${DEFAULT_HTTP_PORT}(/[A-Za-z0-9/_.<>-]*)`, "g"))]
      .map((m) => ({ file, path: m[1]! })));
    expect(urls.length).toBeGreaterThan(0);
    const unknown = urls.filter(({ path }) => !PATHS.some((p) => path === p || path.startsWith(`${p}/`) || path.startsWith(`${p}?`)));
    expect(unknown).toEqual([]);
  });

  it("the 50 ms decision budget is one figure: Envoy timeouts, Istio timeouts, the alert, the dashboard and a histogram bucket", async () => {
    const envoyTimeouts = ["envoy/envoy.yaml", "envoy/envoy-mcp.yaml"].map((f) => {
      const text = readRepoFile(f);
      return /envoy_grpc:[\s\S]*?\n\s+timeout: (\d+(?:\.\d+)?)s/.exec(text)?.[1];
    });
    const [operator] = readYamlDocuments("deploy/istio/mesh-config.yaml") as [{ spec: { meshConfig: { extensionProviders: { envoyExtAuthzGrpc: { timeout: string } }[] } } }];
    const istioTimeouts = operator.spec.meshConfig.extensionProviders.map((p) => p.envoyExtAuthzGrpc.timeout.replace(/s$/, ""));
    const alerts = readRepoFile("deploy/prometheus/vigil-alerts.yaml");
    const alertBucket = /vigil_decision_duration_seconds_bucket\{le="([\d.]+)"\}/.exec(alerts)?.[1];
    const dashboard = JSON.parse(readRepoFile("deploy/grafana/vigil-dashboard.json")) as { panels: unknown[] };
    const thresholds = JSON.stringify(dashboard.panels.filter((p) => isRecord(p) && JSON.stringify(p).includes("histogram_quantile(0.99")));
    const figures = new Set([...envoyTimeouts, ...istioTimeouts, alertBucket].map(Number));
    expect([...figures]).toEqual([0.05]);
    expect(thresholds).toContain("\"value\":0.05");
    // The alert reads the share of decisions above this bucket, so the bucket must exist.
    const text = await createMetrics({ defaultMetrics: false }).registry.metrics();
    expect(text).toContain(`vigil_decision_duration_seconds_bucket{le="${alertBucket}"}`);
  });
});

// Envoy's own ports are not Vigil settings, so defaults.ts does not hold them; the bootstrap is
// their source and the Kubernetes objects must agree with it.
describe("envoy/envoy.yaml is the source of truth for Envoy's ports", () => {
  const bootstrap = readYaml("envoy/envoy.yaml") as {
    admin: { address: { socket_address: { address: string; port_value: number } } };
    static_resources: {
      listeners: { name: string; address: { socket_address: { address: string; port_value: number } } }[];
      clusters: { name: string; load_assignment: { endpoints: { lb_endpoints: { endpoint: { address: { socket_address: { port_value: number } } } }[] }[] } }[];
    };
  };
  const listener = (name: string): number => bootstrap.static_resources.listeners.find((l) => l.name === name)!.address.socket_address.port_value;
  const containers = deployment.spec.template.spec.containers as (Container & { env?: { name: string; value?: string }[] })[];
  const envoy = containers.find((c) => c.name === "envoy")!;
  const app = containers.find((c) => c.name === "app")!;

  it("the envoy container publishes the mTLS and ops listeners, and Service deploy-api targets the mTLS one", () => {
    expect(portNumber(envoy, "envoy-https")).toBe(listener("inbound_mtls"));
    expect(portNumber(envoy, "envoy-ops")).toBe(listener("envoy_ops"));
    const service = objects.find((o) => o.kind === "Service" && o.metadata.name === "deploy-api") as KubeObject & {
      spec: { ports: { targetPort: number | string }[] };
    };
    expect(service.spec.ports.map((p) => portNumber(envoy, p.targetPort))).toEqual([listener("inbound_mtls")]);
    const readiness = envoy.readinessProbe?.httpGet;
    expect(portNumber(envoy, readiness!.port)).toBe(listener("envoy_ops"));
    expect(readRepoFile("envoy/envoy.yaml")).toContain(`match: { path: ${readiness!.path} }`);
  });

  it("the NetworkPolicy opens the mTLS listener to callers and the ops listener to Prometheus only", () => {
    const policy = objects.find((o) => o.kind === "NetworkPolicy" && o.metadata.name === "deploy-api") as KubeObject & {
      spec: { ingress: { from?: unknown[]; ports: { port: number }[] }[] };
    };
    const openToAll = policy.spec.ingress.filter((r) => r.from === undefined).flatMap((r) => r.ports.map((p) => p.port));
    expect(openToAll).toEqual([listener("inbound_mtls")]);
    const restricted = policy.spec.ingress.filter((r) => r.from !== undefined).flatMap((r) => r.ports.map((p) => p.port));
    expect(restricted).toContain(listener("envoy_ops"));
    expect(restricted).not.toContain(bootstrap.admin.address.socket_address.port_value);
  });

  it("the app listens where cluster local_app sends traffic", () => {
    const local = bootstrap.static_resources.clusters.find((c) => c.name === "local_app")!;
    const port = local.load_assignment.endpoints[0]!.lb_endpoints[0]!.endpoint.address.socket_address.port_value;
    const env = Object.fromEntries((app.env ?? []).map((e) => [e.name, e.value]));
    expect(env).toMatchObject({ HOST: "127.0.0.1", PORT: String(port) });
  });
});

