// JSON-RPC bodies, read once per Check (decision/jsonrpc.ts), and batches judged call by call.
//
// Behaviour change (issue #13): a batch used to be refused whole ("JSON-RPC batch requests are
// refused"). It is now judged item by item, each call with its own request.mcp, and allowed only
// if every call is; the most restrictive call decides (a step-up inside a batch is a step-up for
// that call's tool). A batch past mcp.maxBatch is still refused whole. On an MCP route (context
// extension protocol: mcp, or mcp.paths) a body that is not JSON-RPC 2.0 is a clear denial.

import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApprovalBook } from "../../src/approvals/index.js";
import { parseConfig } from "../../src/config/index.js";
import { identitySchema } from "../../src/config/schema.js";
import { createPipeline, Effects, readJsonRpc, type AccessRequest, type JsonRpcLimits } from "../../src/decision/index.js";
import { createCallerResolver } from "../../src/identity/index.js";
import { compilePolicy, parsePolicyDocuments } from "../../src/policy/index.js";
import { createEmbeddedStore, type EmbeddedSignalStore } from "../../src/signals/index.js";
import { createMetrics } from "../../src/telemetry/index.js";

const LIMITS: JsonRpcLimits = { paths: new Set(["/mcp"]), maxBatch: 3, maxBodyBytes: 512 };
const call = (method: string, params: unknown = {}, id: number | null = 1): string =>
  JSON.stringify({ jsonrpc: "2.0", ...(id === null ? {} : { id }), method, params });
const tool = (name: string, args: unknown = {}): string => call("tools/call", { name, arguments: args });

describe("readJsonRpc", () => {
  it.each([
    // Any route: one call, a batch, a REST body.
    { name: "a tools/call", body: tool("get_change", { id: 7 }), mcp: false, kind: "single", tools: ["get_change"] },
    { name: "a batch of two calls", body: `[${tool("a")},${tool("b")}]`, mcp: false, kind: "batch", tools: ["a", "b"] },
    { name: "a batch behind whitespace", body: ` \r\n[${tool("a")}]`, mcp: false, kind: "batch", tools: ["a"] },
    { name: "a batch hiding a call behind tools/list", body: `[${call("tools/list")},${tool("drop")}]`, mcp: false, kind: "batch", tools: ["", "drop"] },
    { name: "a batch past the limit", body: `[${tool("a")},${tool("b")},${tool("c")},${tool("d")}]`, mcp: false, kind: "refused", tools: [] },
    { name: "a JSON array of numbers (REST)", body: "[1,2,3]", mcp: false, kind: "none", tools: [] },
    { name: "objects without a method (REST)", body: '[{"id":1}]', mcp: false, kind: "none", tools: [] },
    { name: "a truncated batch off an MCP route", body: `[${tool("a")}`, mcp: false, kind: "none", tools: [] },
    { name: "plain text off an MCP route", body: "hello", mcp: false, kind: "none", tools: [] },
    { name: "no body", body: "", mcp: false, kind: "none", tools: [] },
    // An MCP route: JSON-RPC 2.0 or a refusal.
    { name: "MCP: a tools/call", body: tool("get_change"), mcp: true, kind: "single", tools: ["get_change"] },
    { name: "MCP: a notification", body: call("notifications/initialized", {}, null), mcp: true, kind: "single", tools: [""] },
    { name: "MCP: a client's response to a server request", body: '{"jsonrpc":"2.0","id":4,"result":{}}', mcp: true, kind: "none", tools: [] },
    { name: "MCP: no body (GET for the SSE stream, DELETE)", body: "", mcp: true, kind: "none", tools: [] },
    { name: "MCP: plain text", body: "rm -rf /", mcp: true, kind: "refused", tools: [] },
    { name: "MCP: JSON that is not JSON-RPC", body: '{"method":"tools/call","params":{"name":"x"}}', mcp: true, kind: "refused", tools: [] },
    { name: "MCP: a body cut short", body: tool("get_change").slice(0, 30), mcp: true, kind: "refused", tools: [] },
    { name: "MCP: an empty batch", body: "[]", mcp: true, kind: "refused", tools: [] },
    { name: "MCP: a batch with one non-JSON-RPC item", body: `[${tool("a")},{"x":1}]`, mcp: true, kind: "refused", tools: [] },
    { name: "MCP: a body past maxBodyBytes", body: tool("a", { pad: "x".repeat(600) }), mcp: true, kind: "refused", tools: [] },
  ])("$name → $kind", ({ body, mcp, kind, tools }) => {
    const read = readJsonRpc(body, mcp, LIMITS);
    expect(read.kind).toBe(kind);
    const seen = read.kind === "batch" ? read.calls.map((c) => c.tool) : read.kind === "single" ? [read.call.tool] : [];
    expect(seen).toEqual(tools);
  });

  it("gives each call its arguments, a resources/read its URI, a prompts/get its name", () => {
    const read = readJsonRpc(`[${tool("t", { env: "prod" })},${call("resources/read", { uri: "file:///etc/passwd" })},${call("prompts/get", { name: "p" })}]`, true, LIMITS);
    expect(read.kind).toBe("batch");
    if (read.kind !== "batch") return;
    expect(read.calls.map((c) => [c.method, c.tool, c.arguments, c.uri, c.prompt])).toEqual([
      ["tools/call", "t", { env: "prod" }, "", ""],
      ["resources/read", "", {}, "file:///etc/passwd", ""],
      ["prompts/get", "", {}, "", "p"],
    ]);
  });
});

const AGENT = "spiffe://example.org/ns/agents/sa/support-bot";
const NOW = Date.UTC(2026, 10, 25, 12, 0, 0);
const POLICY = `
apiVersion: vigil.dev/v1alpha1
kind: Policy
metadata: { name: p }
spec:
  destinations: ["change-mgmt"]
  rules:
    - name: session
      sources: ["${AGENT}"]
      when: request.mcp.method in ["initialize", "notifications/initialized", "tools/list"]
      outcome: allow
    - name: reads
      sources: ["${AGENT}"]
      mcpTools: ["get_change"]
      outcome: allow
    - name: creates-need-approval
      sources: ["${AGENT}"]
      mcpTools: ["create_change"]
      when: '"env" in request.mcp.arguments && request.mcp.arguments.env == "prod"'
      outcome: step_up
      stepUp: { approvers: ["spiffe://example.org/ns/ops/sa/change-approver"] }
    - name: docs
      sources: ["${AGENT}"]
      when: request.mcp.method == "resources/read" && request.mcp.uri.startsWith("docs://")
      outcome: allow
`;

describe("the pipeline judges a JSON-RPC batch call by call", () => {
  let store: EmbeddedSignalStore;
  beforeAll(async () => {
    store = createEmbeddedStore(parseConfig({ store: { journalPath: "" } }).store, { logger: pino({ level: "silent" }), now: () => NOW });
    await store.ready();
  });
  afterAll(async () => {
    await store.close();
  });

  function judge(body: string, contextExtensions: Record<string, string> = { destination: "change-mgmt", protocol: "mcp" }) {
    const metrics = createMetrics({ defaultMetrics: false });
    const pipeline = createPipeline({
      policy: () => compilePolicy(parsePolicyDocuments(POLICY, "p.yaml")),
      resolveCaller: createCallerResolver(identitySchema.parse({ trustDomains: ["example.org"] })),
      store, approvals: new ApprovalBook({ store, now: () => NOW }), effects: new Effects({ store, logger: pino({ level: "silent" }), metrics }),
      metrics, now: () => NOW, jsonRpc: LIMITS,
    });
    const request: AccessRequest = {
      receivedAt: NOW, source: { principal: AGENT, certificate: "", address: "10.0.0.7", port: 1 },
      destination: { principal: "", certificate: "", address: "", port: 0 }, requestId: "r", method: "POST", path: "/rpc", host: "change-mgmt",
      scheme: "https", protocol: "HTTP/2", headers: { "content-type": "application/json" }, body, contextExtensions, sni: "", malformed: [],
    };
    return pipeline.judge(request);
  }

  it.each([
    { name: "one allowed call", body: tool("get_change"), outcome: "allow", tool: "get_change" },
    // All allowed: the first call stands for the batch (the first of equals).
    { name: "a batch of allowed calls", body: `[${call("tools/list")},${tool("get_change")}]`, outcome: "allow", tool: "" },
    { name: "a batch with an unknown tool: denied by it", body: `[${tool("get_change")},${tool("drop_database")}]`, outcome: "deny", tool: "drop_database" },
    { name: "a batch hiding a prod create behind a read: step-up for that call", body: `[${tool("get_change")},${tool("create_change", { env: "prod" })}]`, outcome: "step_up", tool: "create_change" },
    { name: "a resources/read of docs", body: call("resources/read", { uri: "docs://runbook" }), outcome: "allow", tool: "" },
    { name: "a resources/read elsewhere", body: call("resources/read", { uri: "file:///etc/shadow" }), outcome: "deny", tool: "" },
    { name: "plain text on the MCP route", body: "tools/call get_change", outcome: "deny", tool: "" },
    { name: "a batch past the limit, of allowed calls", body: `[${[1, 2, 3, 4].map(() => tool("get_change")).join(",")}]`, outcome: "deny", tool: "" },
  ])("$name → $outcome", ({ body, outcome, tool: deciding }) => {
    const judged = judge(body);
    expect(judged.decision.outcome).toBe(outcome);
    expect(judged.view?.mcp_tool).toBe(deciding);
  });

  it("names why a body on an MCP route cannot be judged", () => {
    expect(judge("not json").decision.reason).toBe("MCP route: the body is not JSON-RPC 2.0");
    // The same body on a route that is not MCP is just a request without a tool (no rule allows it).
    const plain = judge("not json", { destination: "change-mgmt" });
    expect(plain.decision.outcome).toBe("deny");
    expect(plain.decision.reason).not.toContain("JSON-RPC");
  });
});
