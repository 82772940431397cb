// The `vigil serve` command lines shipped in deploy/kubernetes and the Dockerfile, parsed by
// Vigil's own argument parser and settings loader: every flag exists, and the resulting
// settings are the ones the deployment means (gRPC on a Unix socket, HTTP on all interfaces, NATS).

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig, parseServeArgs } from "../../src/config/index.js";
import { execForm, parseDockerfile } from "./dockerfile.js";
import { buildKustomization } from "./kube.js";
import { readRepoFile, readYaml } from "./repo.js";

const objects = buildKustomization("deploy/kubernetes").objects.map((o) => o.object);
const deployment = objects.find((o) => o.kind === "Deployment") as unknown as {
  spec: { template: { spec: { containers: { name: string; args?: string[] }[] } } };
};
const deploymentArgs = deployment.spec.template.spec.containers.find((c) => c.name === "vigil")!.args!;
const secret = objects.find((o) => o.kind === "Secret") as unknown as { stringData: Record<string, string> };
const dockerArgs = execForm(parseDockerfile(readRepoFile("Dockerfile")).at(-1)!.instructions.find((i) => i.keyword === "CMD")!.args);

const scratch = mkdtempSync(join(tmpdir(), "vigil-flags-"));
afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

/** Points file flags that loadConfig reads at local copies of what the pod would mount. */
function withLocalFiles(args: readonly string[]): string[] {
  const out = [...args];
  const tokens = out.indexOf("--admin-tokens-file");
  if (tokens >= 0) {
    const file = join(scratch, "admin-tokens");
    writeFileSync(file, secret.stringData["admin-tokens"] ?? "");
    out[tokens + 1] = file;
  }
  return out;
}

describe("vigil serve command lines", () => {
  it.each([["deploy/kubernetes/deployment.yaml", deploymentArgs], ["Dockerfile CMD", dockerArgs]] as const)(
    "%s is `serve` with flags vigil understands",
    (_where, args) => {
      expect(args[0]).toBe("serve");
      const { positionals } = parseServeArgs(args.slice(1));
      expect(positionals).toEqual([]);
    },
  );

  it("gives the Deployment's Vigil gRPC on the Unix socket, all-interface HTTP, NATS with 3 replicas and the SSF receiver", () => {
    const { values } = parseServeArgs(withLocalFiles(deploymentArgs.slice(1)));
    const config = loadConfig(values, {});
    // The socket replaces the loopback port (host and port stay at their unused defaults).
    expect(config.grpc).toMatchObject({ socket: "/var/run/vigil/authz.sock", host: "127.0.0.1", port: 9191 });
    expect(config.http).toMatchObject({ host: "0.0.0.0", port: 9192, adminTokens: [] });
    expect(config.store).toMatchObject({ bus: "nats://nats:4222", replicas: 3, journalPath: "/var/lib/vigil/journal.jsonl" });
    expect(config.policyDir).toBe("/etc/vigil/policies");
    expect(config.signalsFile).toBe("/etc/vigil/signals/signals.yaml");
    expect(config.ssf).toMatchObject({ issuer: "https://ssf.example.org", jwksFile: "/etc/vigil/secrets/jwks.json" });
    // Judged as deploy-api whatever the Host header, the same name Envoy's virtual host sends
    // (a disagreement would deny every request).
    expect(config.destination).toMatchObject({ source: "workload", name: "deploy-api", hosts: [] });
    expect(JSON.stringify(readYaml("envoy/envoy.yaml"))).toContain(`"context_extensions":{"destination":"${config.destination.name}"}`);
    // XFCC stays untrusted: Envoy's SANITIZE_SET element is not needed, source.principal is.
    expect(config.identity.xfccTrustedHops).toBe(0);
  });

  it("gives the image's default command the example policy, a journal on the volume, and loopback gRPC", () => {
    const { values } = parseServeArgs(dockerArgs.slice(1));
    const config = loadConfig(values, {});
    expect(config.grpc.host).toBe("127.0.0.1");
    // The image alone serves TCP; a socket needs a volume shared with Envoy (--grpc-socket).
    expect(config.grpc.socket).toBe("");
    expect(config.http.host).toBe("0.0.0.0");
    expect(config.policyDir).toBe("examples/policies");
    expect(config.store.journalPath).toBe("/var/lib/vigil/journal.jsonl");
  });
});
