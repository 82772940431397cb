// The request phase: what policies see of the request (host without port, path without query,
// gRPC and MCP names), and the JSON-RPC batch refusal that looks at the same body. Built once per
// Check; later phases (refusals, effects, record) read this view rather than re-parsing the request.

import type { AccessRequest, RequestView } from "../model/index.js";

/**
 * Builds the policy's view of the request: host without port, path without query, gRPC and MCP
 * names. `destination` is what createDestinationResolver answered ("" when it found none): the
 * host is shown to policies, never used to pick the destination.
 */
export function requestView(req: AccessRequest, destination: string): RequestView {
  const q = req.path.indexOf("?");
  const pathOnly = q === -1 ? req.path : req.path.slice(0, q);
  const rawHost = req.host !== "" ? req.host : (req.headers[":authority"] ?? "");
  const host = stripPort(rawHost).toLowerCase();
  let grpcService = "";
  let grpcMethod = "";
  const contentType = req.headers["content-type"] ?? "";
  if (contentType.startsWith("application/grpc")) {
    const slash = pathOnly.lastIndexOf("/");
    if (slash > 0) {
      grpcService = pathOnly.slice(1, slash);
      grpcMethod = pathOnly.slice(slash + 1);
    }
  }
  let mcpMethod = "";
  let mcpTool = "";
  // JSON allows whitespace before the object, and so do MCP servers: skipping it here keeps a
  // tools/call from hiding from the policy behind a leading space or newline.
  if (req.body !== "" && req.body.charCodeAt(jsonStart(req.body)) === 123 /* { */) {
    const rpc = parseJsonRpc(req.body);
    mcpMethod = rpc.method;
    mcpTool = rpc.tool;
  }
  return {
    method: req.method,
    path: req.path,
    path_only: pathOnly,
    host,
    scheme: req.scheme,
    headers: req.headers,
    grpc_service: grpcService,
    grpc_method: grpcMethod,
    mcp_method: mcpMethod,
    mcp_tool: mcpTool,
    source_ip: req.source.address,
    destination,
  };
}

/**
 * Why a JSON-RPC batch body is refused, or undefined for any other body. A batch (`[{…}, {…}]`)
 * carries several calls in one request while the policy sees one action: a rule that denies one
 * MCP tool would not see it inside a batch. MCP dropped batching (2025-06-18), so a batch holding
 * any JSON-RPC call is denied rather than judged as a whole; only its first character is looked at
 * for every other body.
 */
export function jsonRpcBatchProblem(body: string): string | undefined {
  if (body === "" || body.charCodeAt(jsonStart(body)) !== 91 /* [ */) return undefined;
  let items: unknown;
  try {
    items = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (!Array.isArray(items)) return undefined;
  const calls = items.some((item) => typeof item === "object" && item !== null && typeof (item as { method?: unknown }).method === "string");
  return calls ? "JSON-RPC batch requests are refused: each call must be sent, and judged, on its own" : undefined;
}

/** Index of the first character after JSON whitespace (space, tab, LF, CR). */
function jsonStart(body: string): number {
  let i = 0;
  for (;;) {
    const c = body.charCodeAt(i);
    if (c !== 32 && c !== 9 && c !== 10 && c !== 13) return i;
    i++;
  }
}

function stripPort(host: string): string {
  if (host.startsWith("[")) {
    const end = host.indexOf("]");
    return end === -1 ? host : host.slice(0, end + 1);
  }
  const colon = host.lastIndexOf(":");
  return colon === -1 ? host : host.slice(0, colon);
}

/** JSON-RPC method and, for tools/call, the MCP tool name. Unparseable bodies yield "". */
function parseJsonRpc(body: string): { method: string; tool: string } {
  try {
    const msg: unknown = JSON.parse(body);
    if (typeof msg !== "object" || msg === null) return { method: "", tool: "" };
    const { method, params } = msg as { method?: unknown; params?: unknown };
    const m = typeof method === "string" ? method : "";
    let tool = "";
    if (m === "tools/call" && typeof params === "object" && params !== null) {
      const name = (params as { name?: unknown }).name;
      if (typeof name === "string") tool = name;
    }
    return { method: m, tool };
  } catch {
    return { method: "", tool: "" };
  }
}

/** What the request does, as an approval scope names it. */
export function resourceOf(view: RequestView): string {
  if (view.mcp_tool !== "") return `mcp:${view.mcp_tool}`;
  if (view.grpc_service !== "") return `grpc:${view.grpc_service}/${view.grpc_method}`;
  return `${view.method} ${view.path_only}`;
}
