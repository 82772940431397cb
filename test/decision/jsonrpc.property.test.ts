// MCP JSON-RPC bodies (requestView → mcp_method, mcp_tool): whatever the body, the view is built
// without throwing, and the tool a policy sees is exactly the one a JSON parser finds at
// params.name of a "tools/call" — never a name that is not in the body, never a tool hidden from
// the policy by JSON whitespace before the object.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { readJsonRpc, requestView } from "../../src/decision/index.js";
import type { AccessRequest } from "../../src/decision/index.js";

function request(body: string): AccessRequest {
  return {
    receivedAt: 0,
    source: { principal: "", certificate: "", address: "10.0.0.7", port: 40000 },
    destination: { principal: "", certificate: "", address: "10.0.0.8", port: 8443 },
    requestId: "r", method: "POST", path: "/mcp", host: "svc", scheme: "https", protocol: "HTTP/2",
    headers: { ":authority": "svc", ":method": "POST", ":path": "/mcp", "content-type": "application/json" },
    body, contextExtensions: {}, sni: "", malformed: [],
  };
}

/** What an independent reading of the body says the tool is ("" when it names none). */
function oracleTool(body: string): string {
  let msg: unknown;
  try {
    msg = JSON.parse(body);
  } catch {
    return "";
  }
  if (typeof msg !== "object" || msg === null || Array.isArray(msg)) return "";
  const { method, params } = msg as { method?: unknown; params?: unknown };
  if (method !== "tools/call" || typeof params !== "object" || params === null) return "";
  const name = (params as { name?: unknown }).name;
  return typeof name === "string" ? name : "";
}

const toolName = fc.oneof(fc.string(), fc.constantFrom("delete_all", "read_file", "", "tools/call", "__proto__"));
const jsonRpc = fc.record({
  jsonrpc: fc.constantFrom("2.0", 2, null),
  id: fc.oneof(fc.integer(), fc.string(), fc.constant(null)),
  method: fc.oneof(fc.constantFrom("tools/call", "tools/list", "initialize"), fc.string()),
  params: fc.oneof(
    fc.record({ name: fc.oneof(toolName, fc.integer(), fc.constant(null)), arguments: fc.jsonValue() }, { requiredKeys: [] }),
    fc.jsonValue(),
  ),
}, { requiredKeys: [] });
const whitespace = fc.array(fc.constantFrom(" ", "\t", "\n", "\r"), { maxLength: 4 }).map((ws) => ws.join(""));

describe("MCP JSON-RPC bodies", () => {
  it("any string body: no throw, and a tool only when a JSON parser finds that very tool", () => {
    fc.assert(fc.property(fc.oneof(fc.string(), fc.string({ unit: "binary" }), fc.jsonValue().map((v) => JSON.stringify(v))), (body) => {
      const view = requestView(request(body), "");
      expect(view.mcp_tool).toBe(oracleTool(body));
      if (view.mcp_tool !== "") expect(body).toContain(view.mcp_tool.slice(0, 1));
    }), { numRuns: 2000 });
  });

  it("JSON-RPC shaped bodies, with JSON whitespace around them: the tool is the parser's", () => {
    fc.assert(fc.property(whitespace, jsonRpc, whitespace, (before, msg, after) => {
      const body = `${before}${JSON.stringify(msg)}${after}`;
      const view = requestView(request(body), "");
      expect(view.mcp_tool).toBe(oracleTool(body));
      expect(view.mcp_method).toBe(typeof msg.method === "string" ? msg.method : "");
    }), { numRuns: 2000 });
  });

  it("garbage around or inside a tools/call never yields a tool", () => {
    const call = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "delete_all" } });
    fc.assert(fc.property(fc.string({ minLength: 1 }), fc.nat(call.length), (junk, at) => {
      const body = `${call.slice(0, at)}${junk}${call.slice(at)}`;
      const tool = requestView(request(body), "").mcp_tool;
      expect(tool).toBe(oracleTool(body));
    }), { numRuns: 2000 });
  });

  it.each([
    { body: " {\"method\":\"tools/call\",\"params\":{\"name\":\"delete_all\"}}", tool: "delete_all" },
    { body: "\n\t{\"method\":\"tools/call\",\"params\":{\"name\":\"delete_all\"}}", tool: "delete_all" },
    { body: "{\"method\":\"tools/call\",\"params\":{\"name\":\"safe\",\"name\":\"delete_all\"}}", tool: "delete_all" },
    { body: "{\"method\":\"tools/call\",\"params\":{\"name\":\"\\u0064elete_all\"}}", tool: "delete_all" },
    { body: "{\"method\":\"tools/call\",\"params\":[\"delete_all\"]}", tool: "" },
    { body: "{\"method\":\"tools/call\",\"params\":{\"name\":\"delete_all\"}", tool: "" },
    { body: "\u00a0{\"method\":\"tools/call\",\"params\":{\"name\":\"delete_all\"}}", tool: "" },
  ])("$body → tool \"$tool\"", ({ body, tool }) => {
    expect(requestView(request(body), "").mcp_tool).toBe(tool);
  });
});

describe("readJsonRpc (the body read once per Check)", () => {
  const LIMITS = { paths: new Set<string>(), maxBatch: 8, maxBodyBytes: 64 * 1024 };
  const tools = (body: string, mcpRoute: boolean): string[] | "refused" => {
    const read = readJsonRpc(body, mcpRoute, LIMITS);
    if (read.kind === "refused") return "refused";
    return read.kind === "batch" ? read.calls.map((c) => c.tool) : read.kind === "single" ? [read.call.tool] : [];
  };

  it("any body, on any route: no throw; a single call's tool is the parser's, as requestView sees it", () => {
    fc.assert(fc.property(fc.oneof(fc.string(), fc.jsonValue().map((v) => JSON.stringify(v))), fc.boolean(), (body, mcpRoute) => {
      const seen = tools(body, mcpRoute);
      if (seen !== "refused" && seen.length === 1 && !body.trimStart().startsWith("[")) expect(seen[0]).toBe(oracleTool(body));
    }), { numRuns: 2000 });
  });

  it("a batch of JSON-RPC messages, with whitespace around: one view per message, each tool the parser's", () => {
    fc.assert(fc.property(whitespace, fc.array(jsonRpc, { minLength: 1, maxLength: 8 }), whitespace, (before, msgs, after) => {
      const body = `${before}${JSON.stringify(msgs)}${after}`;
      const seen = tools(body, false);
      const calls = msgs.some((m) => typeof m.method === "string");
      if (!calls) {
        expect(seen).toEqual([]);
        return;
      }
      expect(seen).toEqual(msgs.map((m) => oracleTool(JSON.stringify(m))));
    }), { numRuns: 1000 });
  });

  it("on an MCP route, anything but JSON-RPC 2.0 is refused, never judged as a request without a tool", () => {
    fc.assert(fc.property(fc.oneof(fc.string({ minLength: 1 }), fc.jsonValue().map((v) => JSON.stringify(v))), (body) => {
      const read = readJsonRpc(body, true, LIMITS);
      if (read.kind === "refused") return;
      // Accepted: the body parses, and every message in it says jsonrpc 2.0.
      const value = JSON.parse(body) as unknown;
      const messages = Array.isArray(value) ? value : [value];
      for (const m of messages) expect((m as { jsonrpc?: unknown }).jsonrpc).toBe("2.0");
    }), { numRuns: 2000 });
  });
});
