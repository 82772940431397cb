// The Envoy server decodes only the header values judging reads (decision/headers.ts), and a
// policy loaded between decoding and judging never judges a request without a header it reads.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { AccessRequest, Decision, HeaderSelection } from "../../../src/model/index.js";
import { startAuthzServer, type AuthzServer } from "../../../src/transport/envoy/index.js";
import { createEnvoyClient, type EnvoyClient } from "../../support/envoy-client.js";
import { judgeBy } from "../../support/judge.js";
import { startTestVigil, type TestVigil } from "../../support/vigil.js";

const allow = (id: string): Decision => ({
  id, outcome: "allow", rule: "t", reason: "", caller: "", trustDomain: "", credentialFingerprint: "", headersToRemove: [], durationNs: 0,
});

describe("the server's header selection", () => {
  let server: AuthzServer | undefined;
  let client: EnvoyClient | undefined;
  afterEach(async () => {
    client?.close();
    await server?.close();
    server = undefined;
    client = undefined;
  });

  async function serve(selections: () => HeaderSelection): Promise<AccessRequest[]> {
    const seen: AccessRequest[] = [];
    server = await startAuthzServer({
      host: "127.0.0.1", port: 0, maxHeaderBytes: 64 * 1024, headers: selections,
      judge: judgeBy((req) => {
        seen.push(req);
        return allow(`d-${seen.length}`);
      }),
    });
    client = createEnvoyClient(`127.0.0.1:${server.port}`);
    return seen;
  }

  const headers = { "x-tenant": "a", "x-other": "b", "x-vigil-caller": "forged" };

  it("judges with the selected values and x-vigil-* names only", async () => {
    const selection: HeaderSelection = { all: false, names: new Set(["x-tenant"]) };
    const seen = await serve(() => selection);
    await client?.check({ headers });
    expect(seen).toHaveLength(1);
    expect(seen[0]?.headers["x-tenant"]).toBe("a");
    expect(seen[0]?.headers["x-other"]).toBeUndefined();
    expect(seen[0]?.headers["x-vigil-caller"]).toBe("forged");
  });

  it("decodes a request again, whole, when the selection changed between decoding and judging", async () => {
    // The first ask (decoding) predates a reload; every later one (judging) is the new policy's.
    const before: HeaderSelection = { all: false, names: new Set(["x-tenant"]) };
    const after: HeaderSelection = { all: false, names: new Set(["x-tenant", "x-other"]) };
    let asked = 0;
    const seen = await serve(() => (asked++ === 0 ? before : after));
    await client?.check({ headers });
    expect(seen[0]?.headers["x-other"]).toBe("b");
    expect(seen[0]?.malformed).toEqual([]);
  });

  it("keeps the decoded request when the new selection needs nothing more", async () => {
    const before: HeaderSelection = { all: false, names: new Set(["x-tenant", "x-other"]) };
    const after: HeaderSelection = { all: false, names: new Set(["x-tenant"]) };
    let asked = 0;
    const seen = await serve(() => (asked++ === 0 ? before : after));
    await client?.check({ headers });
    expect(seen[0]?.headers["x-other"]).toBe("b");
  });
});

describe("a policy that reads a header, through the whole sidecar", () => {
  let vigil: TestVigil | undefined;
  let client: EnvoyClient | undefined;
  let dir = "";
  afterEach(async () => {
    client?.close();
    await vigil?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const policy = (header: string): string => `apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata: { name: tenants }
spec:
  destinations: ["*"]
  rules:
    - name: tenant-a
      when: 'request.headers["${header}"] == "a"'
      outcome: allow
`;

  it("allows on the header it reads, denies without it, and follows a reload to another header", async () => {
    dir = mkdtempSync(join(tmpdir(), "vigil-headers-"));
    writeFileSync(join(dir, "p.yaml"), policy("x-tenant"));
    vigil = await startTestVigil({ policyDir: dir, signalsFile: "" });
    client = createEnvoyClient(vigil.grpcAddress);
    const code = async (h: Record<string, string>): Promise<number> => (await client!.check({ headers: h })).status?.code ?? 0;
    expect(await code({ "x-tenant": "a" })).toBe(0);
    expect(await code({ "x-tenant": "b" })).not.toBe(0);
    expect(await code({ "x-region": "a" })).not.toBe(0);
    writeFileSync(join(dir, "p.yaml"), policy("x-region"));
    await expect.poll(() => code({ "x-region": "a" }), { timeout: 10_000, interval: 100 }).toBe(0);
    expect(await code({ "x-tenant": "a" })).not.toBe(0);
  });
});
