// The AuthZEN 1.0 decision API against the real HTTP port: the spec's own request shapes (single,
// evaluations under each semantic, the metadata document, every 400), the PEP's authentication,
// what a denial, a step-up, a delay and a revoke answer, MCP tool calls asked through AuthZEN, and
// what a hostile PEP can and cannot make Vigil do. The decisions come from the same pipeline as
// the Envoy path: the same live signals change them, the same decision log records them.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_TOKEN, READ_ONLY_TOKEN, startTestVigil, type TestVigil } from "../support/vigil.js";

const PEP_TOKEN = "test-pep-token-0123456789abcdefgh";
const DEPLOYER = "spiffe://example.org/ns/ci/sa/deployer";
const AGENT = "spiffe://example.org/ns/agents/sa/support-bot";
const MARKER = "authzen-marker-7d41c2";

const POLICY = `
apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata:
  name: pdp
spec:
  destinations: ["pdp"]
  rules:
    - name: read
      when: action.name == "read" && resource.type == "document"
      outcome: allow
    - name: owner-writes
      when: >-
        action.name == "write" && "owner" in resource.attributes
        && resource.attributes.owner == subject.attributes.email
      outcome: allow
    - name: deploy-needs-approval
      sources: ["${DEPLOYER}"]
      when: action.name == "deploy"
      outcome: step_up
      reason: deploying needs a human approval
      stepUp: { approvers: ["spiffe://example.org/ns/ops/sa/change-approver"] }
    - name: restart-later
      when: action.name == "restart"
      outcome: delay
      retryAfterSeconds: 120
      reason: restarts wait for the window
    - name: exfiltration
      when: action.name == "exfiltrate"
      outcome: revoke
      revoke: [identity]
      reason: exfiltration attempt
    - name: risky-callers
      sources: ["${DEPLOYER}"]
      when: action.name == "read-secret" && signals.risk != "high"
      outcome: allow
    - name: agent-tools
      sources: ["${AGENT}"]
      mcpTools: ["get_change", "create_change"]
      when: >-
        request.mcp.tool == "get_change"
        || ("env" in request.mcp.arguments && request.mcp.arguments.env == "staging")
      outcome: allow
    - name: prod-context
      when: action.name == "promote" && context.env == "prod" && request.properties.ticket == "CHG-1"
      outcome: allow
`;

const ENTITIES = `
apiVersion: vigil.dev/v1alpha1
kind: Entities
spec:
  subjects:
    - ids: [alice, alice@example.com]
      roles: [editor]
      attributes: { email: alice@example.com }
  resources:
    - type: document
      ids: [doc-1]
      attributes: { owner: alice@example.com }
`;

describe("AuthZEN decision API on the HTTP port", () => {
  let vigil: TestVigil;
  let dir: string;
  const logs: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "vigil-authzen-"));
    mkdirSync(join(dir, "policies"));
    writeFileSync(join(dir, "policies", "pdp.yaml"), POLICY);
    writeFileSync(join(dir, "entities.yaml"), ENTITIES);
    const sink = new Writable({ write(chunk: Buffer, _enc, done) { logs.push(chunk.toString()); done(); } });
    vigil = await startTestVigil({
      policyDir: join(dir, "policies"),
      entitiesFile: join(dir, "entities.yaml"),
      authzen: { destination: "pdp", maxBodyBytes: 4096, maxDepth: 8, maxEvaluations: 4, baseUrl: "https://pdp.example.com/" },
      http: {
        adminTokens: [
          { token: ADMIN_TOKEN, name: "ops-admin", scopes: ["signals:write", "signals:reinstate"] },
          { token: PEP_TOKEN, name: "gateway", scopes: ["authzen:evaluate"] },
          { token: READ_ONLY_TOKEN, name: "auditor", scopes: [] },
        ],
      },
    }, undefined, { logger: pino({ level: "info" }, sink) });
  });

  afterAll(async () => {
    await vigil.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function call(path: string, body: unknown, init: { token?: string; type?: string; raw?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; text: string; json: unknown; headers: Headers }> {
    const token = init.token ?? PEP_TOKEN;
    const res = await fetch(`${vigil.httpUrl}${path}`, {
      method: "POST",
      headers: {
        ...(token === "" ? {} : { authorization: `Bearer ${token}` }),
        "content-type": init.type ?? "application/json",
        ...init.headers,
      },
      body: init.raw ?? JSON.stringify(body),
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch { /* not JSON */ }
    return { status: res.status, text, json, headers: res.headers };
  }

  const single = (action: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    subject: { type: "user", id: "alice" }, action: { name: action }, resource: { type: "document", id: "doc-1" }, ...extra,
  });

  describe("evaluation", () => {
    it("answers an allow as exactly {\"decision\":true} with the decision id in a header", async () => {
      const res = await call("/access/v1/evaluation", single("read"));
      expect(res.status).toBe(200);
      expect(res.text.trim()).toBe('{"decision":true}');
      expect(res.headers.get("x-vigil-decision-id")).toMatch(/^[0-9a-f-]{36}$/);
    });

    it("answers a denial as 200 {\"decision\":false}, never an HTTP error", async () => {
      const res = await call("/access/v1/evaluation", single("delete"));
      expect(res.status).toBe(200);
      expect(res.text.trim()).toBe('{"decision":false}');
    });

    it("sees the entities file: resource attributes against subject attributes, by any id of the subject", async () => {
      expect((await call("/access/v1/evaluation", single("write"))).json).toEqual({ decision: true });
      const byEmail = single("write", { subject: { type: "identity", id: "alice@example.com" } });
      expect((await call("/access/v1/evaluation", byEmail)).json).toEqual({ decision: true });
      const stranger = single("write", { subject: { type: "user", id: "mallory" } });
      expect((await call("/access/v1/evaluation", stranger)).json).toEqual({ decision: false });
      // Properties the PEP sends sit beside the file's attributes and cannot replace them.
      const forged = single("write", { subject: { type: "user", id: "mallory", properties: { email: "alice@example.com" } } });
      expect((await call("/access/v1/evaluation", forged)).json).toEqual({ decision: false });
    });

    it("says what would lift a step-up (the approval id), a delay (retry_after) and a revoke", async () => {
      const stepUp = await call("/access/v1/evaluation", single("deploy", { subject: { type: "workload", id: DEPLOYER } }));
      expect(stepUp.json).toMatchObject({ decision: false, context: { outcome: "step_up", reason: "deploying needs a human approval" } });
      const approvalId = (stepUp.json as { context: { approval_id: string } }).context.approval_id;
      expect(vigil.approvals.get(approvalId)?.caller).toBe(DEPLOYER);

      const delay = await call("/access/v1/evaluation", single("restart"));
      expect(delay.json).toMatchObject({ decision: false, context: { outcome: "delay", retry_after: 120 } });

      const revoke = await call("/access/v1/evaluation", single("exfiltrate", { subject: { type: "workload", id: DEPLOYER } }));
      expect(revoke.json).toMatchObject({ decision: false, context: { outcome: "revoke", reason: "exfiltration attempt" } });
      // A PEP's question about a subject revokes nobody: only a caller proven by mTLS is revoked.
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(vigil.store.list(DEPLOYER).filter((s) => s.kind === "revocation")).toEqual([]);
    });

    it("judges a SPIFFE subject on its live signals, as the Envoy path does", async () => {
      const ask = single("read-secret", { subject: { type: "workload", id: DEPLOYER } });
      expect((await call("/access/v1/evaluation", ask)).json).toEqual({ decision: true });
      const put = await vigil.admin("POST", "/v1/signals", { kind: "risk", subject: DEPLOYER, data: { level: "high", reason: "test" } });
      expect(put.status).toBe(201);
      expect((await call("/access/v1/evaluation", ask)).json).toEqual({ decision: false });
      await vigil.admin("POST", "/v1/signals", { kind: "risk", subject: DEPLOYER, data: { level: "none" } });
    });

    it("reaches MCP rules: action tools/call with the tool and its arguments as properties", async () => {
      const tool = (name: string, args: Record<string, unknown>): Record<string, unknown> => ({
        subject: { type: "agent", id: AGENT }, action: { name: "tools/call", properties: { tool: name, arguments: args } },
        resource: { type: "mcp_server", id: "change-mgmt" },
      });
      expect((await call("/access/v1/evaluation", tool("get_change", {}))).json).toEqual({ decision: true });
      expect((await call("/access/v1/evaluation", tool("create_change", { env: "staging" }))).json).toEqual({ decision: true });
      expect((await call("/access/v1/evaluation", tool("create_change", { env: "prod" }))).json).toEqual({ decision: false });
      expect((await call("/access/v1/evaluation", tool("drop_database", {}))).json).toEqual({ decision: false });
    });

    it("gives the request context to rules: string entries as context extensions, all of it as request.properties", async () => {
      const ok = single("promote", { context: { env: "prod", ticket: "CHG-1" } });
      expect((await call("/access/v1/evaluation", ok)).json).toEqual({ decision: true });
      const wrong = single("promote", { context: { env: "prod", ticket: "CHG-2" } });
      expect((await call("/access/v1/evaluation", wrong)).json).toEqual({ decision: false });
    });

    it("ignores unknown fields and echoes a plain X-Request-ID", async () => {
      const res = await call("/access/v1/evaluation", { ...single("read"), extension: { x: 1 }, subject: { type: "user", id: "alice", extra: true } }, {
        headers: { "x-request-id": "req-42" },
      });
      expect(res.json).toEqual({ decision: true });
      expect(res.headers.get("x-request-id")).toBe("req-42");
    });
  });

  describe("evaluations", () => {
    const base = { subject: { type: "user", id: "alice" }, resource: { type: "document", id: "doc-1" } };
    const actions = (...names: string[]): { action: { name: string } }[] => names.map((name) => ({ action: { name } }));

    it("execute_all (the default) answers every item, each exactly {\"decision\": …}", async () => {
      const res = await call("/access/v1/evaluations", { ...base, evaluations: actions("read", "delete", "write") });
      expect(res.status).toBe(200);
      expect(res.text.trim()).toBe('{"evaluations":[{"decision":true},{"decision":false},{"decision":true}]}');
    });

    it("deny_on_first_deny stops after the first denial", async () => {
      const res = await call("/access/v1/evaluations", {
        ...base, options: { evaluations_semantic: "deny_on_first_deny" }, evaluations: actions("read", "delete", "write"),
      });
      expect(res.json).toEqual({ evaluations: [{ decision: true }, { decision: false }] });
    });

    it("permit_on_first_permit stops after the first permit", async () => {
      const res = await call("/access/v1/evaluations", {
        ...base, options: { evaluations_semantic: "permit_on_first_permit" }, evaluations: actions("delete", "read", "write"),
      });
      expect(res.json).toEqual({ evaluations: [{ decision: false }, { decision: true }] });
    });

    it("an item's key replaces the default entity whole (its properties are not merged)", async () => {
      const res = await call("/access/v1/evaluations", {
        subject: { type: "user", id: "alice" }, action: { name: "write" },
        resource: { type: "document", id: "doc-1" },
        evaluations: [{}, { resource: { type: "document", id: "doc-2" } }, { subject: { type: "user", id: "bob" } }],
      });
      expect(res.json).toEqual({ evaluations: [{ decision: true }, { decision: false }, { decision: false }] });
    });

    it("an absent or empty evaluations array is one evaluation, answered as one", async () => {
      expect((await call("/access/v1/evaluations", single("read"))).json).toEqual({ decision: true });
      expect((await call("/access/v1/evaluations", { ...single("read"), evaluations: [] })).json).toEqual({ decision: true });
    });

    it("items with something to say carry it; the others stay exactly {\"decision\": …}", async () => {
      const res = await call("/access/v1/evaluations", { ...base, evaluations: actions("read", "restart") });
      const items = (res.json as { evaluations: unknown[] }).evaluations;
      expect(JSON.stringify(items[0])).toBe('{"decision":true}');
      expect(items[1]).toMatchObject({ decision: false, context: { outcome: "delay", retry_after: 120 } });
    });
  });

  it("publishes the metadata document without authentication", async () => {
    const res = await fetch(`${vigil.httpUrl}/.well-known/authzen-configuration`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      policy_decision_point: "https://pdp.example.com",
      access_evaluation_endpoint: "https://pdp.example.com/access/v1/evaluation",
      access_evaluations_endpoint: "https://pdp.example.com/access/v1/evaluations",
    });
  });

  describe("refusals", () => {
    type Row = [name: string, path: string, body: unknown, init: Parameters<typeof call>[2], status: number];
    const deep = (levels: number): unknown => {
      let value: unknown = MARKER;
      for (let i = 0; i < levels; i++) value = { a: value };
      return value;
    };
    const rows: Row[] = [
      ["no subject", "/access/v1/evaluation", { action: { name: "read" }, resource: { type: "document", id: "doc-1" } }, {}, 400],
      ["no action name", "/access/v1/evaluation", { ...single("read"), action: {} }, {}, 400],
      ["an empty resource id", "/access/v1/evaluation", { ...single("read"), resource: { type: "document", id: "" } }, {}, 400],
      ["a subject id that is a number", "/access/v1/evaluation", { ...single("read"), subject: { type: "user", id: 7 } }, {}, 400],
      ["properties that are a list", "/access/v1/evaluation", { ...single("read"), resource: { type: "d", id: "1", properties: [1] } }, {}, 400],
      ["a context that is a string", "/access/v1/evaluation", { ...single("read"), context: MARKER }, {}, 400],
      ["a body that is an array", "/access/v1/evaluation", [single("read")], {}, 400],
      ["malformed JSON", "/access/v1/evaluation", undefined, { raw: `{"subject": ${MARKER}` }, 400],
      ["a wrong content type", "/access/v1/evaluation", single("read"), { type: "text/plain" }, 400],
      ["nesting past the bound", "/access/v1/evaluation", { ...single("read"), context: deep(20) }, {}, 400],
      ["2,000 levels of arrays within the size bound", "/access/v1/evaluation", undefined, { raw: `{"context":{"a":${"[".repeat(2000)}${"]".repeat(2000)}}}` }, 400],
      ["a body past the size bound", "/access/v1/evaluation", { ...single("read"), context: { pad: "x".repeat(5000) } }, {}, 413],
      ["an unknown semantic", "/access/v1/evaluations", { ...single("read"), options: { evaluations_semantic: MARKER } }, {}, 400],
      ["evaluations that is an object", "/access/v1/evaluations", { ...single("read"), evaluations: { a: 1 } }, {}, 400],
      ["more items than the bound", "/access/v1/evaluations", { ...single("read"), evaluations: [{}, {}, {}, {}, {}] }, {}, 400],
      ["an item missing what the defaults lack", "/access/v1/evaluations", { subject: { type: "user", id: "a" }, evaluations: [{ action: { name: "read" } }] }, {}, 400],
      ["no token", "/access/v1/evaluation", single("read"), { token: "" }, 401],
      ["an unknown token", "/access/v1/evaluation", single("read"), { token: `${MARKER}-0123456789` }, 401],
      ["an admin token without authzen:evaluate", "/access/v1/evaluation", single("read"), { token: ADMIN_TOKEN }, 403],
      ["a read-only token", "/access/v1/evaluations", single("read"), { token: READ_ONLY_TOKEN }, 403],
    ];
    it.each(rows)("%s: refused with a JSON error that does not echo the input", async (_name, path, body, init, status) => {
      const res = await call(path, body, init);
      expect(res.status).toBe(status);
      expect(res.text).not.toContain(MARKER);
      expect(res.json).toMatchObject({ error: { message: expect.any(String) as string } });
      if (status === 401) expect(res.headers.get("www-authenticate")).toMatch(/^Bearer /);
    });

    it("does not echo an X-Request-ID that is not a plain token", async () => {
      const res = await call("/access/v1/evaluation", single("read"), { headers: { "x-request-id": `a b ${MARKER}` } });
      expect(res.status).toBe(200);
      expect(res.headers.get("x-request-id")).toBeNull();
    });

    it("logs no refused input and no token", () => {
      const text = logs.join("");
      expect(text).not.toContain(MARKER);
      expect(text).not.toContain(PEP_TOKEN);
    });
  });

  it("counts requests by endpoint and status, and logs each evaluation as a decision", async () => {
    const text = await (await fetch(`${vigil.httpUrl}/metrics`)).text();
    expect(text).toMatch(/vigil_authzen_requests_total\{endpoint="evaluation",status="200"\} [1-9]/);
    expect(text).toMatch(/vigil_authzen_requests_total\{endpoint="evaluations",status="200"\} [1-9]/);
    expect(text).toMatch(/vigil_authzen_requests_total\{endpoint="evaluation",status="401"\} 2/);
    expect(text).toMatch(/vigil_authzen_requests_total\{endpoint="evaluation",status="413"\} 1/);
    expect(text).toMatch(/vigil_authzen_requests_total\{endpoint="metadata",status="200"\} 1/);
    const decisions = logs.filter((line) => line.includes('"decision_id"') && line.includes('"destination":"pdp"'));
    expect(decisions.length).toBeGreaterThan(10);
  });
});
