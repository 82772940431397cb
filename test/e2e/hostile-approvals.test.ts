// Hostile step-up traffic over real gRPC (requests encoded with Envoy's protos): one caller
// flooding approvals with long, distinct paths gets step_up without new approvals once over its
// cap, never allow, while another caller still gets its approval; what is held stays small.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEnvoyClient, type DecodedCheckResponse, type EnvoyClient, type EnvoyLikeRequest } from "../support/envoy-client.js";
import { IR_BOT, SUPPORT_BOT } from "../support/example-world.js";
import { startTestVigil, type TestVigil } from "../support/vigil.js";

const PER_CALLER = 4;

function outcomeOf(res: DecodedCheckResponse): { outcome: string; approvalId: string } {
  if (res.status?.code === undefined || res.status.code === 0) return { outcome: "allow", approvalId: "" };
  const body = JSON.parse(res.denied_response?.body ?? "{}") as Record<string, unknown>;
  return { outcome: String(body.outcome), approvalId: typeof body.approval_id === "string" ? body.approval_id : "" };
}

const deletion = (n: number, size: number): EnvoyLikeRequest => ({
  sourcePrincipal: IR_BOT, host: "edr", method: "DELETE", path: `/v1/forensics/${"f".repeat(size)}-${String(n)}`,
});
const agentChange: EnvoyLikeRequest = {
  sourcePrincipal: SUPPORT_BOT, host: "change-mgmt", method: "POST", path: "/mcp",
  headers: { "content-type": "application/json" }, contextExtensions: { env: "prod" },
  body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "create_change", arguments: {} } }),
};

describe("hostile approvals over real gRPC", () => {
  let vigil: TestVigil;
  let client: EnvoyClient;

  beforeAll(async () => {
    vigil = await startTestVigil({ approvals: { maxPendingPerCaller: PER_CALLER, maxPending: 50 } });
    client = createEnvoyClient(vigil.grpcAddress);
  });

  afterAll(async () => {
    client.close();
    await vigil.close();
  });

  const rows: { attack: string; request: () => EnvoyLikeRequest; expected: { outcome: string; approval: boolean } }[] = [
    ...Array.from({ length: PER_CALLER }, (_, n) => ({
      attack: `flood ${String(n + 1)}: a step-up with a 20 KB path, within the caller's cap`, request: () => deletion(n, 20_000), expected: { outcome: "step_up", approval: true },
    })),
    ...Array.from({ length: 6 }, (_, n) => ({
      attack: `flood ${String(PER_CALLER + n + 1)}: one more distinct 20 KB path, over the cap`, request: () => deletion(PER_CALLER + n, 20_000), expected: { outcome: "step_up", approval: false },
    })),
    { attack: "the first flooded path again (idempotent: its pending approval)", request: () => deletion(0, 20_000), expected: { outcome: "step_up", approval: true } },
    { attack: "another caller's step-up while the first is capped", request: () => agentChange, expected: { outcome: "step_up", approval: true } },
  ];

  it.each(rows.map((r) => [r.attack, r] as const))("%s", async (_attack, row) => {
    const result = outcomeOf(await client.check(row.request()));
    expect(result.outcome).toBe(row.expected.outcome);
    expect(result.approvalId !== "").toBe(row.expected.approval);
  });

  it("holds each request as a short excerpt and digest, and counts the refusals", async () => {
    const listed = await vigil.admin("GET", "/v1/approvals?status=pending");
    const approvals = (listed.json as { approvals: { caller: string; resource: string; resourceDigest: string }[] }).approvals;
    expect(approvals.filter((a) => a.caller === IR_BOT)).toHaveLength(PER_CALLER);
    for (const a of approvals) {
      expect(a.resource.length).toBeLessThan(300);
      expect(a.resourceDigest).toMatch(/^[0-9a-f]{64}$/);
    }
    const metrics = await (await fetch(`${vigil.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/^vigil_approvals_refused_total\{reason="caller_limit"\} 6$/m);
  });
});
