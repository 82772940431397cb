// What an approver is shown and may say: a step-up over real gRPC opens an approval that carries
// the action, the rule's reason and the signals in force; approve and deny take an optional
// comment, kept with the decision. Hostile bodies (unknown fields, overlong comments, a comment
// that is not a string) are refused without deciding.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { actionOf, signalsSummary } from "../../src/decision/apply-effects.js";
import type { RequestView, SignalsView } from "../../src/model/index.js";
import { createEnvoyClient, type EnvoyClient, type EnvoyLikeRequest } from "../support/envoy-client.js";
import { SUPPORT_BOT } from "../support/example-world.js";
import { APPROVER_TOKEN, startTestVigil, type TestVigil } from "../support/vigil.js";

const view = (over: Partial<RequestView>): RequestView => ({
  method: "GET", path: "/a?token=secret", path_only: "/a", host: "h", scheme: "https", headers: {},
  grpc_service: "", grpc_method: "", mcp_method: "", mcp_tool: "", mcp: { method: "", tool: "", arguments: {}, uri: "", prompt: "" }, properties: {}, source_ip: "", destination: "d", ...over,
});

const signals = (over: Partial<SignalsView>): SignalsView => ({
  fresh: true, risk: "none", risk_reason: "", risk_age_seconds: -1, posture: "unknown", posture_attributes: {},
  credential: "none", credential_states: [], credential_overdue: false, credential_owner: "", credential_findings: [], revoked: false,
  anomalies: [], attested: false, attestation_signer: "", ...over,
});

describe("actionOf", () => {
  it.each([
    { name: "HTTP: method and path, never the query", view: view({}), action: "GET /a" },
    { name: "gRPC: service/method", view: view({ grpc_service: "pkg.Svc", grpc_method: "Do" }), action: "pkg.Svc/Do" },
    { name: "MCP: the tool call", view: view({ method: "POST", mcp_method: "tools/call", mcp_tool: "create_change" }), action: "tools/call create_change" },
  ])("$name → $action", ({ view: v, action }) => {
    expect(actionOf(v)).toBe(action);
  });
});

describe("signalsSummary", () => {
  it.each([
    { name: "nothing in force", view: signals({}), summary: {} },
    { name: "risk with its reason", view: signals({ risk: "high", risk_reason: "impossible travel" }), summary: { risk: "high (impossible travel)" } },
    { name: "stale signals say so", view: signals({ fresh: false }), summary: { fresh: "false (signals stale)" } },
    { name: "overdue credential and its owner", view: signals({ credential: "active", credential_overdue: true, credential_owner: "spiffe://td/x" }),
      summary: { credential: "active (rotation overdue)", credential_owner: "spiffe://td/x" } },
    { name: "revoked, anomalies, attestation", view: signals({ revoked: true, anomalies: ["new_action", "rate"], attested: true, attestation_signer: "ci" }),
      summary: { revoked: "true", anomalies: "new_action, rate", attested: "by ci" } },
  ])("$name", ({ view: v, summary }) => {
    expect(signalsSummary(v)).toEqual(summary);
  });
});

describe("approval context and comments over the real server", () => {
  let vigil: TestVigil;
  let client: EnvoyClient;
  const change: EnvoyLikeRequest = {
    sourcePrincipal: SUPPORT_BOT, host: "change-mgmt", method: "POST", path: "/mcp",
    headers: { "content-type": "application/json" }, contextExtensions: { env: "prod" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "create_change", arguments: {} } }),
  };

  beforeAll(async () => {
    vigil = await startTestVigil();
    client = createEnvoyClient(vigil.grpcAddress);
  });
  afterAll(async () => {
    client.close();
    await vigil.close();
  });

  async function openApproval(): Promise<string> {
    const res = await client.check(change);
    const body = JSON.parse(res.denied_response?.body ?? "{}") as { approval_id?: string };
    expect(body.approval_id).toMatch(/^apr_/);
    return body.approval_id ?? "";
  }

  it("opens the approval with the action, the reason and the signals in force", async () => {
    const id = await openApproval();
    const { json } = await vigil.admin("GET", `/v1/approvals/${id}`);
    const approval = json as { action: string; reason: string; signals: Record<string, string>; comment: string };
    expect(approval.action).toBe("tools/call create_change");
    expect(approval.reason).not.toBe("");
    expect(typeof approval.signals).toBe("object");
    expect(approval.comment).toBe("");
  });

  it.each([
    { name: "an unknown field", body: { comment: "ok", approve: true }, message: /unknown field/ },
    { name: "a comment over 1024 characters", body: { comment: "x".repeat(1025) }, message: /at most 1024/ },
    { name: "a comment that is not a string", body: { comment: { $gt: "" } }, message: /comment/ },
    { name: "a JSON array", body: ["ok"], message: /invalid decision/ },
  ])("refuses $name without deciding", async ({ body, message }) => {
    const id = await openApproval();
    const res = await vigil.admin("POST", `/v1/approvals/${id}/approve`, body, APPROVER_TOKEN);
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.json)).toMatch(message);
    expect(JSON.stringify(res.json)).not.toContain("x".repeat(100));
    expect(((await vigil.admin("GET", `/v1/approvals/${id}`)).json as { status: string }).status).toBe("pending");
  });

  it("keeps the approver's comment with the decision", async () => {
    const id = await openApproval();
    const res = await vigil.admin("POST", `/v1/approvals/${id}/approve`, { comment: "  CHG-1234 reviewed  " }, APPROVER_TOKEN);
    expect(res.status).toBe(200);
    const approval = (await vigil.admin("GET", `/v1/approvals/${id}`)).json as { status: string; decidedBy: string; comment: string };
    expect(approval).toMatchObject({ status: "approved", comment: "CHG-1234 reviewed" });
  });

  it("denies with a comment, and without a body as before", async () => {
    // The grant from the previous case covers this scope once: spend it, so the next Check opens a new approval.
    const spent = await client.check(change);
    expect(spent.status?.code ?? 0).toBe(0);
    const first = await openApproval();
    const denied = await vigil.admin("POST", `/v1/approvals/${first}/deny`, { comment: "not during the freeze" }, APPROVER_TOKEN);
    expect(denied.status).toBe(200);
    expect((denied.json as { approval: { comment: string } }).approval.comment).toBe("not during the freeze");
    const second = await openApproval();
    const bare = await vigil.admin("POST", `/v1/approvals/${second}/deny`, undefined, APPROVER_TOKEN);
    expect(bare.status).toBe(200);
  });
});
