// Control evidence from a real run: the sidecar judges Checks over gRPC and writes its decision
// lines (policy version, controls, matched rules) to a log file; `vigil evidence` summarises
// that file per control, as a table and as JSON, and shrugs off lines that are not decisions.

import { execFile } from "node:child_process";
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EvidenceReport } from "../../src/policy/index.js";
import { createEnvoyClient, type EnvoyLikeRequest } from "../support/envoy-client.js";
import { DEPLOYER, K1, SUPPORT_BOT } from "../support/example-world.js";
import { ADMIN_TOKEN, startTestVigil } from "../support/vigil.js";

function vigilCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, stdout, stderr });
    });
  });
}

const sidecarOf = (service: string): EnvoyLikeRequest => ({ host: service, destination: service });
const dir = mkdtempSync(join(tmpdir(), "vigil-evidence-"));
const log = join(dir, "decisions.log");
const ids: Record<string, string> = {};

describe("vigil evidence", () => {
  beforeAll(async () => {
    const destination = pino.destination({ dest: log, sync: true });
    const vigil = await startTestVigil({}, Date.UTC(2026, 10, 25, 12, 0, 0), { logger: pino({ level: "info" }, destination) });
    const client = createEnvoyClient(vigil.grpcAddress);
    try {
      const staging = { sourcePrincipal: DEPLOYER, ...sidecarOf("deploy-api"), method: "POST", path: "/v1/deploy", contextExtensions: { env: "staging" } };
      for (let i = 0; i < 3; i++) await client.check(staging);
      // Scenario 7: a production change by the agent is stepped up (PR.AA-05).
      await client.check({
        sourcePrincipal: SUPPORT_BOT, ...sidecarOf("change-mgmt"), method: "POST", path: "/mcp", contextExtensions: { env: "prod" },
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "create_change", arguments: {} } }),
      });
      // Scenario 4: a secret scanner flags K1; its next use is revoked (NHI2).
      const put = await vigil.admin("POST", "/v1/signals", {
        kind: "credential", subject: "sha256:5758e9e1549258c7211b453c281275ace84e9bc6c07dc485c58c29e58c260bba", data: { state: "leaked" },
      }, ADMIN_TOKEN);
      expect(put.status).toBeLessThan(300);
      await client.check({ sourcePrincipal: DEPLOYER, ...sidecarOf("deploy-api"), method: "POST", path: "/v1/release", apiKey: K1 });
      // Nothing matched: no control named.
      await client.check({ sourcePrincipal: DEPLOYER, ...sidecarOf("tickets"), method: "DELETE", path: "/api/tickets/1" });
    } finally {
      client.close();
      await vigil.close();
      destination.flushSync();
    }
    for (const line of readFileSync(log, "utf8").split("\n")) {
      if (!line.includes("\"msg\":\"decision\"")) continue;
      const parsed = JSON.parse(line) as { decision_id: string; rule: string };
      ids[parsed.rule] ??= parsed.decision_id;
    }
    // What a log pipeline mixes in: other components' lines, junk, a forged control.
    appendFileSync(log, "not json at all\n{\"msg\":\"policy loaded\"}\n{\"msg\":\"decision\",\"outcome\":\"allow\",\"decision_id\":\"<script>\",\"time\":\"2026-11-25T12:00:00Z\",\"controls\":[\"NHI2\"]}\n"
      + "{\"level\":\"info\",\"time\":\"2026-11-25T12:00:01.000Z\",\"decision_id\":\"forged-1\",\"outcome\":\"deny\",\"controls\":[\"NHI99\"],\"msg\":\"decision\"}\n");
  });
  afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

  it("writes the policy version, the controls and, for refusals, the matched rules on each decision line", () => {
    const lines = readFileSync(log, "utf8").split("\n").filter((l) => l.includes("\"msg\":\"decision\"") && l.includes("\"level\"") && !l.includes("forged"))
      .map((l) => JSON.parse(l) as { rule: string; outcome: string; policy_version: string; controls: string[]; matched_rules: string[] });
    expect(lines.length).toBe(6);
    for (const line of lines) expect(line.policy_version).toMatch(/^[0-9a-f]{16}$/);
    expect(lines.find((l) => l.rule === "deploy-api/staging-deploy")).toMatchObject({ outcome: "allow", controls: ["PR.AA-05", "NHI8"], matched_rules: [] });
    expect(lines.find((l) => l.rule === "change-mgmt/agent-create-change-prod")).toMatchObject({
      outcome: "step_up", controls: ["PR.AA-05"], matched_rules: ["change-mgmt/agent-create-change-prod"],
    });
    const revoke = lines.find((l) => l.outcome === "revoke");
    expect(revoke).toMatchObject({ rule: "guards/compromised-credential", controls: ["NHI2"] });
    // The explanation names every rule that matched, the deciding one first.
    expect(revoke?.matched_rules[0]).toBe("guards/compromised-credential");
    expect(revoke?.matched_rules).toContain("deploy-api/release");
    expect(lines.find((l) => l.rule === "")).toMatchObject({ outcome: "deny", controls: [], matched_rules: [] });
  });

  it("summarises the log per control as JSON", async () => {
    const res = await vigilCli(["evidence", log, "--json"]);
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);
    const report = JSON.parse(res.stdout) as EvidenceReport;
    // Six decisions of the run and the forged line, which is shaped like one: a log is evidence only
    // as far as the pipeline that carries it is trusted. Its unknown control is set apart.
    expect(report).toMatchObject({ decisions: 7, untagged: 1, unknownControls: ["NHI99"] });
    // The junk, the other component's line and the line with a malformed id, besides Vigil's own non-decision lines.
    expect(report.skipped).toBeGreaterThanOrEqual(3);
    const byId = Object.fromEntries(report.controls.map((c) => [c.id, c]));
    expect(Object.keys(byId)).toEqual(["NHI2", "NHI8", "PR.AA-05"]);
    expect(byId["PR.AA-05"]).toMatchObject({ decisions: 4, outcomes: { allow: 3, step_up: 1, deny: 0, delay: 0, revoke: 0 }, framework: "NIST CSF 2.0" });
    expect(byId.NHI2).toMatchObject({ decisions: 1, outcomes: { revoke: 1 }, title: "Secret Leakage", sampleDecisionIds: [ids["guards/compromised-credential"]] });
    // Refusals come first among the samples.
    expect(byId["PR.AA-05"]?.sampleDecisionIds[0]).toBe(ids["change-mgmt/agent-create-change-prod"]);
    expect((byId.NHI8?.firstSeen ?? "z") <= (byId.NHI8?.lastSeen ?? "")).toBe(true);
    expect(report.from).toMatch(/^20\d\d-/);
  });

  it("prints a table a person reads, and refuses a missing file with exit code 2", async () => {
    const res = await vigilCli(["evidence", log]);
    expect(res.code).toBe(0);
    const [header, ...rows] = res.stdout.split("\n");
    expect(header).toMatch(/^CONTROL\s+FRAMEWORK\s+DECISIONS\s+ALLOW\s+DENY\s+STEP_UP\s+DELAY\s+REVOKE\s+FIRST SEEN\s+LAST SEEN$/);
    expect(rows.find((r) => r.startsWith("NHI2 "))).toMatch(/^NHI2\s+OWASP NHI Top 10 \(2025\)\s+1\s+0\s+0\s+0\s+0\s+1\s/);
    expect(res.stdout).toContain(`NHI2 (Secret Leakage): ${ids["guards/compromised-credential"] ?? ""}`);
    expect(res.stdout).toContain("7 decision(s) from ");
    expect(res.stdout).toContain("controls this build does not know (ignored): NHI99");
    const missing = await vigilCli(["evidence", join(dir, "nope.log")]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("cannot read");
  });
});
