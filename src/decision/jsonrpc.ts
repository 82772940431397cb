// JSON-RPC bodies (MCP over streamable HTTP, Envoy's with_request_body), read once per Check. A
// single call gives the policy its MCP view (request.mcp); a batch gives one view per call and the
// pipeline judges each, allowing the request only if every call is allowed. On an MCP route (the
// route's context extension `protocol: mcp`, or a path in mcp.paths) the body must be JSON-RPC 2.0
// within mcp.maxBodyBytes: anything else is refused with a clear reason rather than judged as a
// request without a tool. Elsewhere a body that is not JSON-RPC is simply no MCP call (a REST body).

import type { McpView } from "../model/index.js";
import { isRecord } from "../util/guards.js";
import { jsonStart, mcpOfMessage, NO_MCP } from "./request-view.js";

/** The route context extension that marks an MCP route (`protocol: mcp`). */
export const CONTEXT_PROTOCOL = "protocol";
export const MCP_PROTOCOL = "mcp";

export interface JsonRpcLimits {
  /** Exact paths (without query) of MCP routes. */
  paths: ReadonlySet<string>;
  /** Most calls in one batch. */
  maxBatch: number;
  /** Largest body judged on an MCP route. */
  maxBodyBytes: number;
}

export const DEFAULT_JSONRPC_LIMITS: JsonRpcLimits = Object.freeze({ paths: new Set<string>(), maxBatch: 32, maxBodyBytes: 256 * 1024 });

/** What a body holds: no JSON-RPC call, one, a batch, or (why it is refused) something that cannot be judged. */
export type JsonRpcBody =
  | { kind: "none"; call: McpView }
  | { kind: "single"; call: McpView }
  | { kind: "batch"; calls: McpView[] }
  | { kind: "refused"; problem: string };

const NONE: JsonRpcBody = Object.freeze({ kind: "none", call: NO_MCP });

/** Whether the route is an MCP route: `protocol: mcp` on the Envoy route, or a configured path. */
export function isMcpRoute(contextExtensions: Record<string, string>, pathOnly: string, limits: JsonRpcLimits): boolean {
  // No configured path, no lookup: it would hash the path, a fresh string on every Check.
  return (Object.hasOwn(contextExtensions, CONTEXT_PROTOCOL) && contextExtensions[CONTEXT_PROTOCOL] === MCP_PROTOCOL)
    || (limits.paths.size > 0 && limits.paths.has(pathOnly));
}

/** A JSON-RPC 2.0 request, notification or response (clients post responses to server requests too). */
function isJsonRpcMessage(value: unknown): boolean {
  if (!isRecord(value) || value.jsonrpc !== "2.0") return false;
  if (typeof value.method === "string") return true;
  return "id" in value && ("result" in value || "error" in value);
}

/**
 * Reads a request body as JSON-RPC, parsing it at most once. `mcpRoute` makes it strict (see the
 * header); a batch larger than limits.maxBatch is refused on every route.
 */
export function readJsonRpc(body: string, mcpRoute: boolean, limits: JsonRpcLimits = DEFAULT_JSONRPC_LIMITS): JsonRpcBody {
  if (body === "") return NONE;
  if (mcpRoute && Buffer.byteLength(body, "utf8") > limits.maxBodyBytes) {
    return { kind: "refused", problem: `MCP request body exceeds ${limits.maxBodyBytes} bytes: too large to judge` };
  }
  const first = body.charCodeAt(jsonStart(body));
  if (first !== 123 /* { */ && first !== 91 /* [ */) {
    return mcpRoute ? { kind: "refused", problem: "MCP route: the body is not JSON-RPC 2.0" } : NONE;
  }
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    // Not JSON (a truncated body among them: Envoy's allow_partial_message cut it).
    return mcpRoute ? { kind: "refused", problem: "MCP route: the body is not valid JSON (cut short or malformed)" } : NONE;
  }
  if (!Array.isArray(value)) {
    if (mcpRoute && !isJsonRpcMessage(value)) return { kind: "refused", problem: "MCP route: the body is not a JSON-RPC 2.0 message" };
    const call = mcpOfMessage(value);
    return call === NO_MCP ? NONE : { kind: "single", call };
  }
  if (mcpRoute) {
    if (value.length === 0) return { kind: "refused", problem: "MCP route: an empty JSON-RPC batch" };
    if (!value.every(isJsonRpcMessage)) return { kind: "refused", problem: "MCP route: a batch item is not a JSON-RPC 2.0 message" };
  } else if (!value.some((item) => isRecord(item) && typeof item.method === "string")) {
    return NONE; // a JSON array that holds no call: a REST body
  }
  if (value.length > limits.maxBatch) {
    return { kind: "refused", problem: `JSON-RPC batch of ${value.length} calls exceeds the limit of ${limits.maxBatch}` };
  }
  return { kind: "batch", calls: value.map(mcpOfMessage) };
}
