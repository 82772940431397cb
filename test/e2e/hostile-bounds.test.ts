// Memory bounds under a flood, over the real ports: a store at store.maxSignals refuses a new
// latest-wins value with 503 (counted, readiness unchanged) but still takes every revocation and
// terminal credential state, and a decision sees them; an MCP tools/call cannot hide its tool
// behind JSON whitespace. One row per attack with its expected outcome.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEnvoyClient, type DecodedCheckResponse, type EnvoyClient, type EnvoyLikeRequest } from "../support/envoy-client.js";
import { CRM_SYNC, SUPPORT_BOT } from "../support/example-world.js";
import { startTestVigil, type TestVigil } from "../support/vigil.js";

const CRM_READ: EnvoyLikeRequest = { sourcePrincipal: CRM_SYNC, host: "payments", method: "GET", path: "/v1/payments/3" };
const FLOOD_KEY = "sha256:00000000000000000000000000000000000000000000000000000000000000ff";

function outcome(res: DecodedCheckResponse): string {
  if (res.status?.code === undefined || res.status.code === 0) return "allow";
  return String((JSON.parse(res.denied_response?.body ?? "{}") as { outcome?: string }).outcome);
}

function mcpCall(body: string): EnvoyLikeRequest {
  return {
    sourcePrincipal: SUPPORT_BOT, host: "change-mgmt", method: "POST", path: "/mcp",
    headers: { "content-type": "application/json" }, contextExtensions: { env: "prod" }, body,
  };
}
const CREATE = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "create_change", arguments: {} } });

describe("bounded memory under a flood, over the real ports", () => {
  let vigil: TestVigil;
  let client: EnvoyClient;
  const ROOM = 5;

  beforeAll(async () => {
    // Seeds first, to learn how many values the example world holds; then a store with ROOM more.
    const probe = await startTestVigil();
    const seeded = probe.store.size();
    await probe.close();
    vigil = await startTestVigil({ store: { maxSignals: seeded + ROOM } });
    client = createEnvoyClient(vigil.grpcAddress);
  });

  afterAll(async () => {
    client.close();
    await vigil.close();
  });

  it("fills to the bound, then refuses latest-wins values with 503 and takes every sticky one", async () => {
    const risk = (i: number) => ({ kind: "risk", subject: `spiffe://example.org/ns/flood/sa/w${String(i)}`, data: { level: "low" } });
    for (let i = 0; i < ROOM; i++) expect((await vigil.admin("POST", "/v1/signals", risk(i))).status).toBe(201);

    const rows: { name: string; body: unknown; status: number }[] = [
      { name: "one more risk value", body: risk(ROOM), status: 503 },
      { name: "a posture value for a new subject", body: { kind: "posture", subject: "spiffe://example.org/ns/flood/sa/p", data: { status: "compliant" } }, status: 503 },
      { name: "an update of a value already held", body: { kind: "risk", subject: risk(0).subject, data: { level: "high" } }, status: 201 },
      { name: "a revocation of a live caller", body: { kind: "revocation", subject: CRM_SYNC, data: { reason: "flood test" } }, status: 201 },
      { name: "a compromised credential never seen before", body: { kind: "credential", subject: FLOOD_KEY, data: { state: "compromised" } }, status: 201 },
    ];
    for (const row of rows) {
      const res = await vigil.admin("POST", "/v1/signals", row.body);
      expect({ name: row.name, status: res.status }).toEqual({ name: row.name, status: row.status });
      if (row.status === 503) expect(JSON.stringify(res.json)).toContain("store.maxSignals");
    }
    // The revocation taken past the bound decides: the caller is now refused.
    expect(outcome(await client.check(CRM_READ))).not.toBe("allow");
    expect(vigil.store.get(FLOOD_KEY, "credential")?.data.state).toBe("compromised");
    const metrics = await (await fetch(`${vigil.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/vigil_signal_writes_refused_total\{reason="capacity"\} 2/);
  });

  it.each([
    { name: "a tools/call as sent", body: CREATE, outcome: "step_up" },
    { name: "the same behind a leading space", body: ` ${CREATE}`, outcome: "step_up" },
    { name: "the same behind CRLF and a tab", body: `\r\n\t${CREATE}`, outcome: "step_up" },
    // Issue #13: a batch is judged call by call (it used to be refused whole): the call inside is a step-up.
    { name: "a JSON-RPC batch of that call", body: `[${CREATE}]`, outcome: "step_up" },
  ])("MCP: $name → $outcome", async ({ body, outcome: expected }) => {
    expect(outcome(await client.check(mcpCall(body)))).toBe(expected);
  });

  it.each([
    { name: "a batch hiding the call behind an allowed method", body: `[{"jsonrpc":"2.0","id":0,"method":"tools/list"},${CREATE}]`, outcome: "step_up", reason: "approval" },
    { name: "a batch hiding a tool no rule allows behind an allowed read", body: `[{"jsonrpc":"2.0","id":0,"method":"tools/list"},${CREATE.replace("create_change", "drop_all")}]`, outcome: "deny", reason: "" },
    { name: "a batch behind leading whitespace", body: ` \n[${CREATE}]`, outcome: "step_up", reason: "approval" },
    { name: "a batch of 33 allowed calls (past mcp.maxBatch)", body: `[${Array.from({ length: 33 }, () => '{"jsonrpc":"2.0","id":0,"method":"tools/list"}').join(",")}]`, outcome: "deny", reason: "exceeds the limit of 32" },
  ])("MCP: $name is judged call by call → $outcome", async ({ body, outcome: expected, reason }) => {
    const res = await client.check(mcpCall(body));
    expect(outcome(res)).toBe(expected);
    expect(res.denied_response?.body).toContain(reason);
  });

  it.each([
    { name: "plain text", body: "tools/call create_change" },
    { name: "JSON that is not JSON-RPC 2.0", body: '{"method":"tools/call","params":{"name":"create_change"}}' },
    { name: "a body cut short", body: CREATE.slice(0, 40) },
  ])("MCP route (protocol: mcp): $name is a clear denial", async ({ body }) => {
    const res = await client.check({ ...mcpCall(body), contextExtensions: { env: "prod", protocol: "mcp" } });
    expect(outcome(res)).toBe("deny");
    expect(res.denied_response?.body).toContain("MCP route: the body is not");
  });

  it("a full revocation backlog: every identified caller is denied and /readyz says why; the queued hold stays", async () => {
    const backlog = await startTestVigil({ maxPendingRevocations: 1 });
    const backlogClient = createEnvoyClient(backlog.grpcAddress);
    try {
      expect(outcome(await backlogClient.check(CRM_READ))).toBe("allow");
      // A subject the store refuses stays pending for good; the next revocation finds no room.
      const effect = { target: "credential" as const, reason: "test", decisionId: "d", caller: "", rule: "t", at: backlog.clock.now };
      backlog.effects.revoke({ ...effect, subject: "refused-by-the-store" });
      await backlog.effects.drain();
      backlog.effects.revoke({ ...effect, subject: FLOOD_KEY });
      expect(backlog.effects.overflowed).toBe(true);

      const res = await backlogClient.check(CRM_READ);
      expect(outcome(res)).toBe("deny");
      expect(res.denied_response?.body).toContain("revocation backlog full");
      const ready = await fetch(`${backlog.httpUrl}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.text()).toContain("revocation backlog full");
      expect(backlog.effects.pendingRevoked("refused-by-the-store")).toBe(true);
    } finally {
      backlogClient.close();
      await backlog.close();
    }
  });
});
