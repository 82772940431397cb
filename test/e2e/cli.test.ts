// The `vigil` command as an operator runs it: validate, check offline with its "why", check
// against a running sidecar, and clear errors with exit codes.

import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestVigil, type TestVigil } from "../support/vigil.js";

function vigilCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], { timeout: 30_000, env: { ...process.env, VIGIL_ADMIN_TOKEN: "" } }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

describe("vigil CLI", () => {
  let vigil: TestVigil;
  const dir = mkdtempSync(join(tmpdir(), "vigil-cli-"));
  beforeAll(async () => { vigil = await startTestVigil(); });
  afterAll(async () => {
    await vigil.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("validates the example policy", async () => {
    const res = await vigilCli(["validate", "--policy", "examples/policies"]);
    expect(res).toMatchObject({ code: 0 });
    expect(res.stdout).toMatch(/^ok: examples\/policies: 7 file\(s\), \d+ document\(s\), \d+ rule\(s\)/);
  });

  it("refuses a broken policy naming file, document and path, with exit code 2", async () => {
    writeFileSync(join(dir, "bad.yaml"), "apiVersion: vigil.dev/v1alpha1\nkind: Policy\nmetadata: { name: bad }\nspec:\n  destinations: [x]\n  rules:\n    - name: r\n      outcome: allw\n");
    const res = await vigilCli(["validate", "--policy", dir]);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain("bad.yaml doc 1: spec.rules[0].outcome");
  });

  it("checks a request offline and says why", async () => {
    const res = await vigilCli(["check", "--policy", "examples/policies", "--signals", "examples/signals.yaml", "--now", "2026-11-25T12:00:00Z", "examples/requests/deploy-staging.json"]);
    expect(res.code).toBe(0);
    const out = JSON.parse(res.stdout) as { outcome: string; rule: string; why: { caller: { spiffe_id: string }; signals: { risk: string } } };
    expect(out).toMatchObject({ outcome: "allow", rule: "deploy-api/staging-deploy" });
    expect(out.why.caller.spiffe_id).toBe("spiffe://example.org/ns/ci/sa/deployer");
    expect(out.why.signals.risk).toBe("low");
  });

  it("judges a request under the destination given as Envoy gives it, never its Host", async () => {
    // deploy-staging.json without its route extension, and with the Host of another service.
    const staging = JSON.parse(readFileSync("examples/requests/deploy-staging.json", "utf8")) as {
      attributes: { context_extensions: Record<string, string>; request: { http: { host: string; headers: Record<string, string> } } };
    };
    delete staging.attributes.context_extensions.destination;
    staging.attributes.request.http.host = "tickets";
    staging.attributes.request.http.headers[":authority"] = "tickets";
    const file = join(dir, "staging-no-destination.json");
    writeFileSync(file, JSON.stringify(staging));
    const args = ["check", "--policy", "examples/policies", "--signals", "examples/signals.yaml", "--now", "2026-11-25T12:00:00Z"];
    type Out = { outcome: string; rule: string; reason: string; why: { action: { destination: string; destination_problem?: string } } };

    // No extension and no --destination (the sidecar's own SVID, destination.principal, is the
    // destination); --destination; a route extension that disagrees with --destination; a
    // gateway whose list lacks the Host. One after the other: each is a process of its own.
    const bySvid = await vigilCli([...args, file]);
    const named = await vigilCli([...args, "--destination", "deploy-api", file]);
    const conflicting = await vigilCli([...args, "--destination", "payments", "examples/requests/deploy-staging.json"]);
    const gateway = await vigilCli([...args, "--destination-source", "host", "--destination-host", "payments", file]);
    expect(bySvid.code).toBe(1);
    expect((JSON.parse(bySvid.stdout) as Out).why.action.destination).toBe("spiffe://example.org/ns/platform/sa/deploy-api");
    expect(named.code).toBe(0);
    expect(JSON.parse(named.stdout)).toMatchObject({ outcome: "allow", rule: "deploy-api/staging-deploy", why: { action: { destination: "deploy-api" } } });
    expect(conflicting.code).toBe(1);
    expect(JSON.parse(conflicting.stdout)).toMatchObject({ outcome: "deny", why: { action: { destination_problem: expect.stringContaining("ambiguous") as string } } });
    expect(gateway.code).toBe(1);
    expect((JSON.parse(gateway.stdout) as Out).reason).toContain("not one this gateway fronts");
  }, 150_000);

  it("asks a running sidecar exactly what Envoy would, exit code 1 for a denial", async () => {
    const res = await vigilCli(["check", "--server", vigil.grpcAddress, "examples/requests/no-identity.json"]);
    expect(res.code).toBe(1);
    expect(JSON.parse(res.stdout)).toMatchObject({ allowed: false, http_status: "Forbidden", body: { outcome: "deny" } });
  });

  it("reads request JSON with null or wrong-typed fields without crashing: defaults, or a refusal naming the field", async () => {
    // {"method": null} once crashed `vigil check`; null is "unset", as proto3 JSON says.
    const nullMethod = join(dir, "null-method.json");
    writeFileSync(nullMethod, JSON.stringify({ attributes: { request: { http: { method: null } } } }));
    const wrongType = join(dir, "wrong-type.json");
    writeFileSync(wrongType, JSON.stringify({ attributes: { request: { http: { method: 7 } } } }));
    const [unset, offline, remote] = await Promise.all([
      vigilCli(["check", "--policy", "examples/policies", nullMethod]),
      vigilCli(["check", "--policy", "examples/policies", wrongType]),
      vigilCli(["check", "--server", vigil.grpcAddress, wrongType]),
    ]);
    expect(unset.code).toBe(1);
    expect(JSON.parse(unset.stdout)).toMatchObject({ outcome: "deny", why: { action: { method: "" } } });
    for (const refused of [offline, remote]) {
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain("invalid CheckRequest JSON: attributes.request.http.method: string expected");
      expect(refused.stdout).toBe("");
    }
  }, 60_000);

  it("refuses an admin command without a token, naming what is missing", async () => {
    const res = await vigilCli(["signal", "get", "--url", vigil.httpUrl, "--subject", "x"]);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain("no admin token");
  });
});
