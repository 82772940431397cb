// deploy/kubernetes: every object valid against the Kubernetes schemas with unknown fields
// refused, the pod hardened, Vigil's ports exposed exactly as intended, and every reference
// (volumes, service accounts, selectors, ports) pointing at something the kustomization ships.

import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { IDeployment, IStatefulSet } from "kubernetes-models/apps/v1";
import type { IConfigMap, IContainer, IPodSpec, ISecret, IService } from "kubernetes-models/v1";
import type { INetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { DEFAULT_GRPC_PORT, DEFAULT_GRPC_SOCKET } from "../../src/config/defaults.js";
import { loadConfig, parseServeArgs } from "../../src/config/index.js";
import { VigilError } from "../../src/errors/index.js";
import { createNatsStore } from "../../src/signals/index.js";
import { captureLogger } from "../signals/support.js";
import { NATS_SERVER, startNats } from "../signals/nats-server.js";
import { signalSchema } from "../../src/signals/model.js";
import { buildKustomization, isKubeObject, kubectlAvailable, parseFlags, validateObject, type KubeObject } from "./kube.js";
import { filesUnder, parseYamlDocuments, readRepoFile, readYaml } from "./repo.js";

const built = buildKustomization("deploy/kubernetes");
const objects = built.objects.map((b) => b.object);

function find(kind: string, name: string): unknown {
  const object = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (object === undefined) throw new Error(`deploy/kubernetes has no ${kind} ${name}`);
  return object;
}

const deployment = find("Deployment", "deploy-api") as IDeployment;
const nats = find("StatefulSet", "nats") as IStatefulSet;
const workloads: { name: string; pod: IPodSpec; labels: Record<string, string>; claims: string[] }[] = [
  { name: "Deployment deploy-api", pod: deployment.spec!.template.spec!, labels: deployment.spec!.template.metadata!.labels!, claims: [] },
  {
    name: "StatefulSet nats", pod: nats.spec!.template.spec!, labels: nats.spec!.template.metadata!.labels!,
    claims: (nats.spec!.volumeClaimTemplates ?? []).map((t) => t.metadata!.name!),
  },
];

function container(pod: IPodSpec, name: string): IContainer {
  const found = pod.containers.find((c) => c.name === name);
  if (found === undefined) throw new Error(`no container ${name}`);
  return found;
}

const vigil = container(deployment.spec!.template.spec!, "vigil");

function flag(name: string): string {
  const values = parseFlags(vigil.args ?? []).get(name);
  if (values?.length !== 1) throw new Error(`vigil args need exactly one ${name}`);
  return values[0]!;
}

function mountFor(c: IContainer, file: string): { volume: string; mountPath: string } {
  const mount = (c.volumeMounts ?? []).filter((m) => file === m.mountPath || file.startsWith(`${m.mountPath}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  if (mount === undefined) throw new Error(`${file} is on no volume of container ${c.name}`);
  return { volume: mount.name, mountPath: mount.mountPath };
}

function volume(pod: IPodSpec, name: string): NonNullable<IPodSpec["volumes"]>[number] {
  const found = (pod.volumes ?? []).find((v) => v.name === name);
  if (found === undefined) throw new Error(`no volume ${name}`);
  return found;
}

function selects(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  return selector !== undefined && Object.entries(selector).every(([k, v]) => labels[k] === v);
}

describe("deploy/kubernetes objects", () => {
  it("puts every manifest under deploy/kubernetes into the kustomization", () => {
    const shipped = filesUnder("deploy/kubernetes");
    expect(shipped.filter((f) => !built.files.includes(f))).toEqual([]);
  });

  it("builds the objects a sidecar deployment needs", () => {
    const kinds = objects.map((o) => `${o.kind}/${o.metadata.name}`);
    expect(kinds).toEqual(expect.arrayContaining([
      "Deployment/deploy-api", "ConfigMap/vigil-policies", "Secret/vigil-secrets", "Service/deploy-api",
      "Service/vigil", "NetworkPolicy/deploy-api", "ServiceAccount/deploy-api",
      "StatefulSet/nats", "Service/nats", "Service/nats-headless", "ConfigMap/nats-config", "ConfigMap/vigil-envoy",
    ]));
  });

  it.each(built.objects.map((b) => [`${b.object.kind}/${b.object.metadata.name} (${b.source})`, b.object] as const))(
    "%s validates against its schema with no unknown field",
    (_label, object) => {
      expect(validateObject(object)).toEqual([]);
    },
  );

  it("refuses a misspelled field (the models alone would accept it)", () => {
    const copy = structuredClone(deployment) as unknown as KubeObject & IDeployment;
    const c = copy.spec!.template.spec!.containers.find((x) => x.name === "vigil")!;
    (c.securityContext as Record<string, unknown>).readOnlyRootFilesytem = true;
    (copy.spec as unknown as Record<string, unknown>).replica = 3;
    expect(validateObject(copy)).toEqual([
      expect.stringMatching(/^\/spec\/template\/spec\/containers\/2\/securityContext\/readOnlyRootFilesytem: unknown field/),
      expect.stringMatching(/^\/spec\/replica: unknown field/),
    ]);
  });

  it("refuses a value of the wrong type", () => {
    const copy = structuredClone(nats) as unknown as KubeObject;
    (copy.spec as Record<string, unknown>).replicas = "three";
    expect(validateObject(copy)).toContainEqual(expect.stringContaining("/spec/replicas"));
  });
});

describe.each(workloads)("$name pod security", ({ pod }) => {
  it("runs as a non-root user with the RuntimeDefault seccomp profile and no service account token", () => {
    expect(pod.securityContext?.runAsNonRoot).toBe(true);
    expect(pod.securityContext?.runAsUser).toBe(10001);
    expect(pod.securityContext?.seccompProfile?.type).toBe("RuntimeDefault");
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.hostNetwork ?? false).toBe(false);
    expect(pod.hostPID ?? false).toBe(false);
  });

  it.each(pod.containers.map((c) => [c.name, c] as const))("container %s is locked down and sized", (_name, c) => {
    const sc = c.securityContext ?? {};
    expect(sc.runAsNonRoot ?? pod.securityContext?.runAsNonRoot).toBe(true);
    expect(sc.runAsUser ?? pod.securityContext?.runAsUser).not.toBe(0);
    expect(sc.readOnlyRootFilesystem).toBe(true);
    expect(sc.allowPrivilegeEscalation).toBe(false);
    expect(sc.privileged ?? false).toBe(false);
    expect(sc.capabilities?.drop).toContain("ALL");
    expect(sc.capabilities?.add ?? []).toEqual([]);
    expect((sc.seccompProfile ?? pod.securityContext?.seccompProfile)?.type).toBe("RuntimeDefault");
    expect(c.resources?.requests?.cpu).toBeDefined();
    expect(c.resources?.requests?.memory).toBeDefined();
    expect(c.resources?.limits?.cpu).toBeDefined();
    expect(c.resources?.limits?.memory).toBeDefined();
    expect(c.image).toMatch(/^[^:]+:(?!latest$)[\w.-]+$/);
  });
});

describe("the vigil container", () => {
  it("serves Check on a Unix socket in an emptyDir, not on TCP, and publishes no container port for gRPC", () => {
    const pod = deployment.spec!.template.spec!;
    expect(flag("--grpc-socket")).toBe(DEFAULT_GRPC_SOCKET);
    // With the socket set, host and port are unused: naming them would suggest a TCP listener.
    const args = parseFlags(vigil.args ?? []);
    expect(args.has("--grpc-host")).toBe(false);
    expect(args.has("--grpc-port")).toBe(false);
    const socket = mountFor(vigil, flag("--grpc-socket"));
    expect(volume(pod, socket.volume).emptyDir).toBeDefined();
    for (const c of pod.containers) {
      expect((c.ports ?? []).map((p) => p.containerPort)).not.toContain(DEFAULT_GRPC_PORT);
    }
  });

  it("mounts the socket's volume in the envoy and vigil containers only, never in the app", () => {
    const pod = deployment.spec!.template.spec!;
    const socketVolume = mountFor(vigil, flag("--grpc-socket")).volume;
    const mounting = pod.containers.filter((c) => (c.volumeMounts ?? []).some((m) => m.name === socketVolume)).map((c) => c.name);
    expect(mounting.sort()).toEqual(["envoy", "vigil"]);
    expect(pod.initContainers ?? []).toEqual([]);
    const app = container(pod, "app");
    expect(() => mountFor(app, flag("--grpc-socket"))).toThrow(/on no volume/);
  });

  it("has Envoy dial the same socket Vigil listens on, through the same volume", () => {
    const pod = deployment.spec!.template.spec!;
    const envoy = container(pod, "envoy");
    const bootstrap = readYaml("envoy/envoy.yaml") as {
      static_resources: { clusters: { name: string; load_assignment: { endpoints: { lb_endpoints: { endpoint: { address: { pipe?: { path: string } } } }[] }[] } }[] };
    };
    const authz = bootstrap.static_resources.clusters.find((c) => c.name === "vigil_authz")!;
    const paths = authz.load_assignment.endpoints.flatMap((e) => e.lb_endpoints.map((l) => l.endpoint.address.pipe?.path));
    expect(paths).toEqual([flag("--grpc-socket")]);
    const envoySide = mountFor(envoy, paths[0]!);
    const vigilSide = mountFor(vigil, flag("--grpc-socket"));
    expect(envoySide).toEqual(vigilSide);
    // Envoy only connects; a read-only mount keeps it from replacing the socket.
    expect(envoy.volumeMounts!.find((m) => m.name === envoySide.volume)!.readOnly).toBe(true);
  });

  it("lets Envoy open the 0660 socket: both containers run in the group that owns it", () => {
    const pod = deployment.spec!.template.spec!;
    const envoy = container(pod, "envoy");
    const group = vigil.securityContext?.runAsGroup ?? pod.securityContext?.runAsGroup;
    expect(group).toBeDefined();
    const envoyGroups = [envoy.securityContext?.runAsGroup ?? pod.securityContext?.runAsGroup, pod.securityContext?.fsGroup];
    expect(envoyGroups).toContain(group);
  });

  it("binds HTTP on all interfaces (kubelet probes hit the pod IP) behind a NetworkPolicy", () => {
    expect(flag("--http-host")).toBe("0.0.0.0");
    const httpPort = Number(flag("--http-port"));
    const policies = objects.filter((o): o is KubeObject & INetworkPolicy => o.kind === "NetworkPolicy")
      .filter((p) => selects(p.spec?.podSelector.matchLabels, deployment.spec!.template.metadata!.labels!));
    expect(policies.length).toBeGreaterThan(0);
    const rules = policies.flatMap((p) => p.spec?.ingress ?? []);
    const admitting = rules.filter((r) => (r.ports ?? []).some((p) => p.port === httpPort));
    expect(admitting.length).toBeGreaterThan(0);
    for (const rule of admitting) expect(rule.from?.length ?? 0).toBeGreaterThan(0);
    // No rule opens every port.
    for (const rule of rules) expect(rule.ports?.length ?? 0).toBeGreaterThan(0);
  });

  it("is probed over HTTP: liveness /healthz, readiness /readyz", () => {
    expect(vigil.livenessProbe?.httpGet?.path).toMatch(/healthz$/);
    expect(vigil.readinessProbe?.httpGet?.path).toMatch(/readyz$/);
  });

  it("gets the resources measured for it (BENCHMARKS.md)", () => {
    expect(vigil.resources).toEqual({ requests: { cpu: "100m", memory: "128Mi" }, limits: { cpu: "500m", memory: "384Mi" } });
  });

  it("reads policies from a mounted ConfigMap directory and its signals from a ConfigMap file", () => {
    const pod = deployment.spec!.template.spec!;
    const policies = mountFor(vigil, flag("--policy"));
    expect(policies.mountPath).toBe(flag("--policy"));
    const policyMap = find("ConfigMap", volume(pod, policies.volume).configMap!.name!) as IConfigMap;
    expect(Object.keys(policyMap.data ?? {}).length).toBeGreaterThan(0);

    const signals = mountFor(vigil, flag("--signals"));
    const signalMap = find("ConfigMap", volume(pod, signals.volume).configMap!.name!) as IConfigMap;
    expect(signalMap.data).toHaveProperty(flag("--signals").slice(signals.mountPath.length + 1));
  });

  it("keeps the journal on an emptyDir; only it and the Check socket's volume are writable", () => {
    const pod = deployment.spec!.template.spec!;
    const journal = mountFor(vigil, flag("--journal"));
    const socket = mountFor(vigil, flag("--grpc-socket"));
    expect(volume(pod, journal.volume).emptyDir).toBeDefined();
    for (const m of vigil.volumeMounts ?? []) {
      if (m.name !== journal.volume && m.name !== socket.volume) expect(m.readOnly).toBe(true);
    }
  });

  it("reads admin tokens and the SSF JWKS from the Secret, which ships without any token", () => {
    const pod = deployment.spec!.template.spec!;
    const secret = find("Secret", "vigil-secrets") as ISecret;
    for (const file of [flag("--admin-tokens-file"), flag("--ssf-jwks-file")]) {
      const mount = mountFor(vigil, file);
      expect(volume(pod, mount.volume).secret?.secretName).toBe("vigil-secrets");
      expect(secret.stringData).toHaveProperty(file.slice(mount.mountPath.length + 1));
    }
    const tokens = secret.stringData!["admin-tokens"]!.split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
    expect(tokens).toEqual([]);
    const jwks = JSON.parse(secret.stringData!["jwks.json"]!) as { keys?: unknown };
    expect(Array.isArray(jwks.keys)).toBe(true);
    expect(flag("--ssf-issuer")).toMatch(/^https:\/\//);
  });

  it("uses the NATS cluster of this kustomization as its bus, with one replica per server", () => {
    const bus = new URL(flag("--bus"));
    expect(bus.protocol).toBe("nats:");
    const service = find("Service", bus.hostname) as IService;
    expect(service.spec?.ports?.map((p) => p.port)).toContain(Number(bus.port));
    expect(selects(service.spec?.selector, nats.spec!.template.metadata!.labels!)).toBe(true);
    expect(Number(flag("--bus-replicas"))).toBe(nats.spec!.replicas);
    expect(deployment.spec!.template.metadata!.labels!["vigil.dev/nats-client"]).toBe("true");
  });
});

describe("references between objects", () => {
  it("every configMap and secret volume names an object the kustomization ships, with the keys it mounts", () => {
    for (const { pod, claims } of workloads) {
      for (const v of pod.volumes ?? []) {
        if (v.configMap !== undefined) {
          const map = find("ConfigMap", v.configMap.name!) as IConfigMap;
          for (const item of v.configMap.items ?? []) expect(map.data).toHaveProperty(item.key);
        }
        if (v.secret !== undefined) find("Secret", v.secret.secretName!);
      }
      for (const c of pod.containers) {
        for (const m of c.volumeMounts ?? []) expect([...(pod.volumes ?? []).map((v) => v.name), ...claims]).toContain(m.name);
      }
      if (pod.serviceAccountName !== undefined) find("ServiceAccount", pod.serviceAccountName);
    }
  });

  it("every Service selects a pod template and targets a port its containers declare", () => {
    for (const service of objects.filter((o): o is KubeObject & IService => o.kind === "Service")) {
      const targets = workloads.filter((w) => selects(service.spec?.selector, w.labels));
      expect(targets.length, `Service ${service.metadata.name}`).toBeGreaterThan(0);
      for (const port of service.spec?.ports ?? []) {
        for (const { pod } of targets) {
          const declared = pod.containers.flatMap((c) => c.ports ?? []);
          const target = port.targetPort ?? port.port;
          const match = typeof target === "number" ? declared.some((p) => p.containerPort === target) : declared.some((p) => p.name === target);
          expect(match, `Service ${service.metadata.name} port ${port.name ?? port.port}`).toBe(true);
        }
      }
    }
  });

  it("every probe targets a declared port", () => {
    for (const { pod } of workloads) {
      for (const c of pod.containers) {
        for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe]) {
          const port = probe?.httpGet?.port;
          if (port === undefined) continue;
          const declared = c.ports ?? [];
          expect(typeof port === "number" ? declared.some((p) => p.containerPort === port) : declared.some((p) => p.name === port)).toBe(true);
        }
      }
    }
  });

  it("mounts the Envoy bootstrap from envoy/ unchanged", () => {
    const pod = deployment.spec!.template.spec!;
    const envoy = container(pod, "envoy");
    const configPath = envoy.args![envoy.args!.indexOf("--config-path") + 1]!;
    const mount = mountFor(envoy, configPath);
    const map = find("ConfigMap", volume(pod, mount.volume).configMap!.name!) as IConfigMap;
    expect(map.data?.["envoy.yaml"]).toBe(readRepoFile("envoy/envoy.yaml"));
  });
});

describe("NATS JetStream (deploy/kubernetes/nats)", () => {
  const conf = (find("ConfigMap", "nats-config") as IConfigMap).data!["nats.conf"]!;

  it("runs three servers in one cluster, routed through the headless Service", () => {
    expect(nats.spec!.replicas).toBe(3);
    const headless = find("Service", nats.spec!.serviceName!) as IService;
    expect(headless.spec?.clusterIP).toBe("None");
    expect(headless.spec?.publishNotReadyAddresses).toBe(true);
    const routes = [...conf.matchAll(/nats:\/\/([a-z0-9-]+)\.([a-z0-9-]+):(\d+)/g)].map((m) => [m[1], m[2], Number(m[3])]);
    expect(routes).toEqual([0, 1, 2].map((i) => [`${nats.metadata!.name!}-${i}`, headless.metadata!.name!, 6222]));
    expect(conf).toMatch(/^cluster \{/m);
  });

  it("keeps JetStream on the pods' PersistentVolumes (file storage)", () => {
    const storeDir = /store_dir:\s*"([^"]+)"/.exec(conf)?.[1];
    expect(storeDir).toBeDefined();
    const c = container(nats.spec!.template.spec!, "nats");
    const mount = mountFor(c, storeDir!);
    expect(nats.spec!.volumeClaimTemplates?.map((t) => t.metadata?.name)).toContain(mount.volume);
  });

  it("gives every server its own name from the pod name", () => {
    expect(conf).toMatch(/^server_name: \$SERVER_NAME$/m);
    const env = container(nats.spec!.template.spec!, "nats").env ?? [];
    expect(env.find((e) => e.name === "SERVER_NAME")?.valueFrom?.fieldRef?.fieldPath).toBe("metadata.name");
  });
});

describe("NATS authentication (Secret nats-auth)", () => {
  const conf = (find("ConfigMap", "nats-config") as IConfigMap).data!["nats.conf"]!;
  const authorization = /^authorization \{[\s\S]*?^\}$/m.exec(conf)?.[0] ?? "";
  const secret = find("Secret", "nats-auth") as ISecret;
  const natsContainer = container(nats.spec!.template.spec!, "nats");
  const passwordEnv = natsContainer.env?.find((e) => e.name === "VIGIL_NATS_PASSWORD");

  it("makes nats-server require user vigil with the password from the Secret's environment", () => {
    expect(authorization).toContain("{ user: vigil, password: $VIGIL_NATS_PASSWORD }");
    expect(passwordEnv?.valueFrom?.secretKeyRef).toEqual({ name: "nats-auth", key: "vigil-password" });
  });

  it("has Vigil log in as that user with the same Secret key, mounted as a file", () => {
    expect(flag("--bus-user")).toBe("vigil");
    const file = flag("--bus-password-file");
    const mount = mountFor(vigil, file);
    const v = volume(deployment.spec!.template.spec!, mount.volume);
    expect(v.secret?.secretName).toBe("nats-auth");
    expect(v.secret?.items).toContainEqual({ key: "vigil-password", path: file.slice(mount.mountPath.length + 1) });
  });

  it("ships the password empty, and a nats container with an empty one refuses to start", () => {
    expect(secret.stringData).toEqual({ "vigil-password": "" });
    const [shell, dashC, script] = natsContainer.command ?? [];
    expect([shell, dashC]).toEqual(["sh", "-c"]);
    const run = spawnSync("/bin/sh", ["-c", script ?? ""], { env: { PATH: "/nonexistent", VIGIL_NATS_PASSWORD: "" }, encoding: "utf8" });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain("Secret nats-auth has no vigil-password");
  });

  it.skipIf(NATS_SERVER === undefined)("lets the Deployment's Vigil in with the Secret's password and nobody in without it", async () => {
    const scratch = mkdtempSync(join(tmpdir(), "vigil-k8s-nats-"));
    const password = `pw-${String(process.pid)}-0123456789abcdef0123`;
    const server = await startNats(scratch, "shipped", authorization, "nats", { VIGIL_NATS_PASSWORD: password });
    const openWith = async (content: string | undefined): Promise<string> => {
      const args = [...vigil.args!.slice(1)];
      args[args.indexOf("--bus") + 1] = server.url;
      writeFileSync(join(scratch, "admin-tokens"), "");
      args[args.indexOf("--admin-tokens-file") + 1] = join(scratch, "admin-tokens");
      const passwordFile = join(scratch, "password");
      if (content === undefined) args.splice(args.indexOf("--bus-user"), 4);
      else {
        writeFileSync(passwordFile, content);
        args[args.indexOf("--bus-password-file") + 1] = passwordFile;
      }
      const store = loadConfig(parseServeArgs(args).values, {}).store;
      const log = captureLogger();
      const nats = createNatsStore({ ...store, replicas: 1, bucketPrefix: `vigilk8s${String(process.pid)}` }, { logger: log.logger });
      try {
        await nats.ready();
        return "ok";
      } catch (error) {
        return VigilError.from(error).message;
      } finally {
        await nats.close();
        expect(JSON.stringify(log.lines)).not.toContain(password);
      }
    };
    try {
      expect(await openWith(`${password}\n`)).toBe("ok");
      expect(await openWith("not-the-password")).toContain("Authorization Violation");
      expect(await openWith(undefined)).toContain("Authorization Violation");
    } finally {
      await server.stop();
      rmSync(scratch, { recursive: true, force: true });
    }
  }, 30_000);
});

describe("initial signals (deploy/kubernetes/signals.yaml)", () => {
  it("are signals Vigil's schema accepts", () => {
    const [list] = parseYamlDocuments((find("ConfigMap", "vigil-signals") as IConfigMap).data!["signals.yaml"]!, "signals.yaml");
    expect(Array.isArray(list)).toBe(true);
    for (const item of list as unknown[]) expect(signalSchema.safeParse(item).error?.issues ?? []).toEqual([]);
  });
});


describe("kubectl kustomize", () => {
  it.skipIf(!kubectlAvailable())("builds deploy/kubernetes into the same objects, all valid", () => {
    const out = execFileSync("kubectl", ["kustomize", "deploy/kubernetes"], { cwd: new URL("../..", import.meta.url), encoding: "utf8" });
    const docs = parseYamlDocuments(out, "kubectl kustomize deploy/kubernetes").filter(isKubeObject);
    // Generated ConfigMaps get a content-hash suffix; strip it to compare.
    const names = (list: KubeObject[]): string[] => list.map((o) => `${o.kind}/${o.metadata.name.replace(/-[a-z0-9]{10}$/, "")}/${o.metadata.namespace ?? ""}`).sort();
    expect(names(docs)).toEqual(names(objects));
    for (const doc of docs) expect(validateObject(doc)).toEqual([]);
  });
});
