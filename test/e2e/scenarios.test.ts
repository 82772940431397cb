// The acceptance scenarios (shared/scenarios.md) replayed end to end: the real Vigil server on
// loopback, called by a gRPC client that speaks exactly what Envoy sends (encoded and decoded
// with Envoy's official protos), signals written through the real admin API.

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createEnvoyClient, headerValue, type DecodedCheckResponse, type EnvoyClient, type EnvoyLikeRequest } from "../support/envoy-client.js";
import { CRM_SYNC, DEPLOYER, ETL, IR_BOT, K1, K1_FP, K2, K2_FP, SIGNED_DIGEST, SUPPORT_BOT } from "../support/example-world.js";
import { APPROVER_TOKEN, IR_BOT_TOKEN, startTestVigil, type TestVigil } from "../support/vigil.js";

const WEDNESDAY_NOON = Date.UTC(2026, 10, 25, 12, 0, 0);
const SATURDAY_NOON = Date.UTC(2026, 10, 28, 12, 0, 0);

type Expected = "allow" | "deny" | "step_up" | "delay" | "revoke";

function mcpCall(tool: string): string {
  return JSON.stringify({ jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: tool, arguments: { title: "restart api" } } });
}

/**
 * A request as the named service's sidecar Envoy sends it: its virtual host sets the route's
 * context extension `destination` (envoy/envoy.yaml), and destination.principal is the sidecar's
 * own SVID. Vigil judges the request under that workload, whatever the Host header says.
 */
function sidecarOf(service: string): EnvoyLikeRequest {
  return { host: service, destination: service, destinationPrincipal: `spiffe://example.org/ns/vigil-demo/sa/${service}` };
}

/** The deciding rule, from the dynamic metadata Envoy puts in its access log. */
function ruleOf(res: DecodedCheckResponse): string {
  // protobufjs's bundled well-known types name Struct values in camelCase even with keepCase.
  return res.dynamic_metadata?.fields?.rule?.stringValue ?? "";
}

/** What the caller (and Envoy) sees, reduced to the product's words. */
function outcomeOf(res: DecodedCheckResponse): { outcome: Expected; http: string; body: Record<string, unknown> } {
  if (res.status?.code === undefined || res.status.code === 0) return { outcome: "allow", http: "OK", body: {} };
  const denied = res.denied_response;
  const body = JSON.parse(denied?.body ?? "{}") as Record<string, unknown>;
  return { outcome: body.outcome as Expected, http: denied?.status?.code ?? "", body };
}

describe("acceptance scenarios through a real gRPC client", () => {
  let vigil: TestVigil;
  let client: EnvoyClient;
  let hook: Server;
  const hookCalls: unknown[] = [];

  beforeAll(async () => {
    hook = createServer((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => { body += c.toString(); });
      req.on("end", () => {
        hookCalls.push(JSON.parse(body));
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => hook.listen(0, "127.0.0.1", resolve));
    vigil = await startTestVigil({ revocationHookUrl: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/revoked` });
    client = createEnvoyClient(vigil.grpcAddress);
  });

  afterAll(async () => {
    client.close();
    await vigil.close();
    await new Promise((resolve) => hook.close(resolve));
  });

  beforeEach(() => {
    vigil.clock.now = WEDNESDAY_NOON;
  });

  const deploy = (env: string, extra: EnvoyLikeRequest = {}): EnvoyLikeRequest => ({
    sourcePrincipal: DEPLOYER, ...sidecarOf("deploy-api"), method: "POST", path: "/v1/deploy",
    contextExtensions: { action: "deploy", env }, ...extra,
  });

  const table: { scenario: string; request: EnvoyLikeRequest; at?: number; expected: Expected; rule: string }[] = [
    { scenario: "1: deployer to staging", request: deploy("staging"), expected: "allow", rule: "deploy-api/staging-deploy" },
    {
      scenario: "2: deployer to prod inside the window with a signed artifact",
      request: deploy("prod", { headers: { "x-release-digest": SIGNED_DIGEST } }), expected: "allow", rule: "deploy-api/prod-deploy",
    },
    { scenario: "2: same without the attestation", request: deploy("prod"), expected: "deny", rule: "deploy-api/prod-deploy-unattested" },
    {
      scenario: "3: deployer to prod outside the change window",
      request: deploy("prod", { headers: { "x-release-digest": SIGNED_DIGEST } }), at: SATURDAY_NOON, expected: "delay", rule: "deploy-api/prod-deploy",
    },
    {
      scenario: "6: support agent reads tickets",
      request: { sourcePrincipal: SUPPORT_BOT, ...sidecarOf("tickets"), method: "GET", path: "/api/tickets/4711" }, expected: "allow", rule: "tickets/support-bot-read",
    },
    {
      scenario: "9: etl reads the reports bucket",
      request: { sourcePrincipal: ETL, ...sidecarOf("storage"), method: "GET", path: "/reports/2026/q3.csv", sourceAddress: "10.20.3.4" },
      expected: "allow", rule: "storage/etl-read-reports",
    },
    {
      scenario: "10: etl reads finance-ledger from outside its network",
      request: { sourcePrincipal: ETL, ...sidecarOf("storage"), method: "GET", path: "/finance-ledger/2026.csv", sourceAddress: "192.168.7.9" },
      expected: "deny", rule: "storage/finance-ledger-outside-data-network",
    },
    {
      scenario: "10: etl reads finance-ledger from its network",
      request: { sourcePrincipal: ETL, ...sidecarOf("storage"), method: "GET", path: "/finance-ledger/2026.csv", sourceAddress: "10.20.3.4" },
      expected: "allow", rule: "storage/etl-read-finance-ledger",
    },
    {
      scenario: "11: ir-bot quarantines a host",
      request: { sourcePrincipal: IR_BOT, ...sidecarOf("edr"), method: "POST", path: "/v1/hosts/h-42/quarantine" }, expected: "allow", rule: "edr/ir-quarantine",
    },
    {
      scenario: "15: no verifiable identity",
      request: { sourcePrincipal: "", ...sidecarOf("tickets"), method: "GET", path: "/api/tickets/4711" }, expected: "deny", rule: "",
    },
    {
      scenario: "15: forged x-forwarded-client-cert without a trusted hop",
      request: { sourcePrincipal: "", ...sidecarOf("tickets"), method: "GET", path: "/api/tickets/4711", xfcc: `By=spiffe://example.org/ns/x/sa/x;URI=${SUPPORT_BOT}` },
      expected: "deny", rule: "",
    },
  ];

  it.each(table)("scenario $scenario → $expected", async ({ request, at, expected, rule }) => {
    if (at !== undefined) vigil.clock.now = at;
    const res = await client.check(request);
    const got = outcomeOf(res);
    expect(got.outcome).toBe(expected);
    if (expected !== "allow") {
      expect(res.status?.code).not.toBe(0);
      expect(typeof got.body.decision_id).toBe("string");
      expect(typeof got.body.reason).toBe("string");
    }
    const decisionId = expected === "allow"
      ? headerValue(res.ok_response?.headers, "x-vigil-decision-id")
      : headerValue(res.denied_response?.headers, "x-vigil-decision-id");
    expect(decisionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(ruleOf(res)).toBe(rule);
  });

  it("answers a delay with 429 and retry-after until the window opens (scenario 3)", async () => {
    vigil.clock.now = SATURDAY_NOON;
    const res = await client.check(deploy("prod", { headers: { "x-release-digest": SIGNED_DIGEST } }));
    expect(res.denied_response?.status?.code).toBe("TooManyRequests");
    // Saturday 12:00 UTC → Monday 09:00 UTC.
    expect(headerValue(res.denied_response?.headers, "retry-after")).toBe(String(45 * 3600));
  });

  it("sets verified identity headers with append=false and replaces client-sent copies on allow", async () => {
    const res = await client.check(deploy("staging", { apiKey: "some-other-key-not-flagged", headers: { "x-vigil-caller": "spiffe://example.org/ns/evil/sa/x" } }));
    expect(res.status?.code ?? 0).toBe(0);
    const headers = res.ok_response?.headers ?? [];
    const caller = headers.find((h) => h.header?.key === "x-vigil-caller");
    expect(caller?.header?.value).toBe(DEPLOYER);
    expect(caller?.append?.value).toBe(false);
    for (const h of headers) expect(h.append?.value).toBe(false);
    expect(headerValue(headers, "x-vigil-credential-fingerprint")).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(JSON.stringify(res)).not.toContain("some-other-key-not-flagged");
  });

  it("strips an untrusted x-forwarded-client-cert before it reaches the upstream", async () => {
    const res = await client.check(deploy("staging", { xfcc: `By=spiffe://example.org/ns/x/sa/x;URI=${SUPPORT_BOT}` }));
    expect(res.status?.code ?? 0).toBe(0);
    expect(res.ok_response?.headers_to_remove).toContain("x-forwarded-client-cert");
    expect(headerValue(res.ok_response?.headers, "x-vigil-caller")).toBe(DEPLOYER);
  });

  it("revokes a leaked key now and on every following request, and fires the hook (scenario 4)", async () => {
    const before = await client.check({ sourcePrincipal: DEPLOYER, ...sidecarOf("deploy-api"), method: "POST", path: "/v1/release", apiKey: K1 });
    expect(outcomeOf(before).outcome).toBe("allow");

    const put = await vigil.admin("POST", "/v1/signals", {
      kind: "credential", subject: K1_FP,
      data: { state: "leaked", owner: DEPLOYER },
    });
    expect(put.status).toBe(201);

    const now = await client.check({ sourcePrincipal: DEPLOYER, ...sidecarOf("deploy-api"), method: "POST", path: "/v1/release", apiKey: K1 });
    expect(outcomeOf(now)).toMatchObject({ outcome: "revoke", http: "Forbidden" });
    // The very next request with K1, anywhere, is refused even before the revocation is durable.
    const next = await client.check({ sourcePrincipal: DEPLOYER, ...sidecarOf("deploy-api"), method: "GET", path: "/v1/deployments/12", apiKey: K1 });
    expect(outcomeOf(next).outcome).not.toBe("allow");

    await vigil.effects.drain();
    expect(vigil.store.get(K1_FP, "revocation")?.data.revoked).toBe(true);
    const later = await client.check({ sourcePrincipal: DEPLOYER, ...sidecarOf("deploy-api"), method: "GET", path: "/v1/deployments/12", apiKey: K1 });
    // Still leaked, so the most restrictive answer is still revoke (revoke > deny), now without a new write.
    expect(outcomeOf(later)).toMatchObject({ outcome: "revoke", http: "Forbidden" });
    expect(ruleOf(later)).toBe("guards/compromised-credential");
    // Even a clean caller identity on another route cannot use the revoked key.
    const elsewhere = await client.check({ sourcePrincipal: SUPPORT_BOT, ...sidecarOf("tickets"), method: "GET", path: "/api/tickets/1", apiKey: K1 });
    expect(outcomeOf(elsewhere).outcome).not.toBe("allow");
    // The hook is sent from the outbox once the revocation is durable.
    await vigil.notifications?.idle();
    expect(hookCalls).toContainEqual(expect.objectContaining({ type: "vigil.revocation", target: "credential", subject: K1_FP }));
    // The secret itself never appears in what Vigil answers or hooks.
    expect(JSON.stringify(hookCalls)).not.toContain(K1);

    // A revocation is sticky: a plain put cannot lift it; only an audited reinstate does.
    const undo = await vigil.admin("POST", "/v1/signals", { kind: "revocation", subject: K1_FP, data: { revoked: false, reason: "oops" } });
    expect(undo.status).toBe(409);
    const noReason = await vigil.admin("POST", "/v1/signals/reinstate", { subject: K1_FP });
    expect(noReason.status).toBe(400);
  });

  it("denies a key past its rotate-by deadline and starts its revocation (scenario 5)", async () => {
    const res = await client.check({ sourcePrincipal: ETL, ...sidecarOf("storage"), method: "GET", path: "/reports/x.csv", apiKey: K2, sourceAddress: "10.20.3.4" });
    expect(outcomeOf(res).outcome).toBe("deny");
    expect(ruleOf(res)).toBe("guards/overdue-credential");
    await vigil.effects.drain();
    expect(vigil.store.get(K2_FP, "revocation")?.data.revoked).toBe(true);
  });

  it("steps up an agent's production change and allows exactly one retry after approval (scenario 7)", async () => {
    const call: EnvoyLikeRequest = {
      sourcePrincipal: SUPPORT_BOT, ...sidecarOf("change-mgmt"), method: "POST", path: "/mcp",
      headers: { "content-type": "application/json" }, body: mcpCall("create_change"), contextExtensions: { env: "prod" },
    };
    const first = await client.check(call);
    const stepped = outcomeOf(first);
    expect(stepped.outcome).toBe("step_up");
    expect(headerValue(first.denied_response?.headers, "x-vigil-step-up")).toBe("approval");
    const approvalId = String(stepped.body.approval_id);
    expect(approvalId).toMatch(/^apr_/);

    // Asking again while pending gives the same approval request (idempotent).
    expect(outcomeOf(await client.check(call)).body.approval_id).toBe(approvalId);

    const approved = await vigil.admin("POST", `/v1/approvals/${approvalId}/approve`, {}, APPROVER_TOKEN);
    expect(approved.status).toBe(200);

    expect(outcomeOf(await client.check(call)).outcome).toBe("allow");
    const again = outcomeOf(await client.check(call));
    expect(again.outcome).toBe("step_up");
    expect(again.body.approval_id).not.toBe(approvalId);
  });

  it("refuses an approval by the requesting identity itself (scenario 12)", async () => {
    const res = await client.check({ sourcePrincipal: IR_BOT, ...sidecarOf("edr"), method: "DELETE", path: "/v1/forensics/f-9" });
    const stepped = outcomeOf(res);
    expect(stepped.outcome).toBe("step_up");
    const self = await vigil.admin("POST", `/v1/approvals/${String(stepped.body.approval_id)}/approve`, {}, IR_BOT_TOKEN);
    expect(self.status).toBe(403);
    expect(outcomeOf(await client.check({ sourcePrincipal: IR_BOT, ...sidecarOf("edr"), method: "DELETE", path: "/v1/forensics/f-9" })).outcome).toBe("step_up");
  });

  it("denies agent tool access when its posture turns non-compliant (scenario 8)", async () => {
    const call: EnvoyLikeRequest = {
      sourcePrincipal: SUPPORT_BOT, ...sidecarOf("tickets"), method: "GET", path: "/api/tickets/1",
    };
    expect(outcomeOf(await client.check(call)).outcome).toBe("allow");
    await vigil.admin("POST", "/v1/signals", { kind: "posture", subject: SUPPORT_BOT, data: { status: "non_compliant" } });
    expect(outcomeOf(await client.check(call)).outcome).toBe("deny");
    await vigil.admin("POST", "/v1/signals", { kind: "posture", subject: SUPPORT_BOT, data: { status: "compliant" } });
  });

  it("denies a crown-jewel read the moment another sidecar raises the caller's risk (scenario 13)", async () => {
    const read: EnvoyLikeRequest = { sourcePrincipal: CRM_SYNC, ...sidecarOf("payments"), method: "GET", path: "/v1/payments/991" };
    expect(outcomeOf(await client.check(read)).outcome).toBe("allow");
    await vigil.admin("POST", "/v1/signals", {
      kind: "risk", subject: CRM_SYNC, data: { level: "high", reason: "new action + rate spike" },
    });
    expect(outcomeOf(await client.check(read)).outcome).toBe("deny");
  });

  it("refuses unauthenticated admin writes with 401 and writes nothing", async () => {
    const res = await vigil.admin("POST", "/v1/signals", { kind: "risk", subject: DEPLOYER, data: { level: "critical" } }, "");
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toContain("Bearer");
    const wrong = await vigil.admin("POST", "/v1/signals", { kind: "risk", subject: DEPLOYER, data: { level: "critical" } }, "not-a-valid-token-at-all");
    expect(wrong.status).toBe(401);
    expect(vigil.store.get(DEPLOYER, "risk")?.data.level).toBe("low");
  });
});

describe("behaviour learned from traffic (scenario 17)", () => {
  const LEARNING_MS = 7 * 24 * 3600 * 1000;
  let vigil: TestVigil;
  let client: EnvoyClient;
  beforeAll(async () => {
    vigil = await startTestVigil();
    client = createEnvoyClient(vigil.grpcAddress);
  });
  afterAll(async () => {
    client.close();
    await vigil.close();
  });

  it("steps up an agent whose baseline is tickets and change-mgmt the first time it reads payments, and tells every sidecar", async () => {
    vigil.clock.now = WEDNESDAY_NOON;
    const ticket: EnvoyLikeRequest = { sourcePrincipal: SUPPORT_BOT, ...sidecarOf("tickets"), method: "GET", path: "/api/tickets/T-1042" };
    const listChanges: EnvoyLikeRequest = {
      sourcePrincipal: SUPPORT_BOT, ...sidecarOf("change-mgmt"), method: "POST", path: "/mcp",
      headers: { "content-type": "application/json" }, body: mcpCall("list_changes"), contextExtensions: { env: "prod" },
    };
    const status: EnvoyLikeRequest = { sourcePrincipal: SUPPORT_BOT, ...sidecarOf("payments"), method: "GET", path: "/v1/payments/p-77/status" };
    // Weeks of tickets and change reads: the learning period (7 days by default).
    for (const day of [0, 3, 6]) {
      vigil.clock.now = WEDNESDAY_NOON + day * 24 * 3600 * 1000;
      expect(outcomeOf(await client.check(ticket)).outcome).toBe("allow");
      expect(outcomeOf(await client.check(listChanges)).outcome).toBe("allow");
    }
    vigil.clock.now = WEDNESDAY_NOON + LEARNING_MS + 3600_000;
    expect(outcomeOf(await client.check(ticket)).outcome).toBe("allow");

    const res = await client.check(status);
    expect(outcomeOf(res).outcome).toBe("step_up");
    expect(ruleOf(res)).toBe("guards/behavior-anomaly-privileged");
    await vigil.behavior.settled();
    // The anomaly is a behavior signal in the shared store: every sidecar reads it at its next request.
    expect(vigil.store.get(SUPPORT_BOT, "behavior")?.data.anomalies).toEqual(["new_action"]);
  });
});

