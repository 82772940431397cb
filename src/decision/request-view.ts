// The request phase: what policies see of the request (host without port, path without query,
// gRPC and MCP names; jsonrpc.ts reads JSON-RPC bodies, batches included). Built once per
// Check; later phases (refusals, effects, record) read this view rather than re-parsing the request.

import type { AccessRequest, McpView, RequestView } from "../model/index.js";
import { isRecord } from "../util/guards.js";

/**
 * Builds the policy's view of the request: host without port, path without query, gRPC and MCP
 * names. `destination` is what createDestinationResolver answered ("" when it found none): the
 * host is shown to policies, never used to pick the destination.
 */
export function requestView(req: AccessRequest, destination: string, call?: McpView, pathWithoutQuery?: string): RequestView {
  const pathOnly = pathWithoutQuery ?? pathOf(req.path);
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
  const evaluation = req.evaluation;
  // JSON allows whitespace before the object, and so do MCP servers: skipping it here keeps a
  // tools/call from hiding from the policy behind a leading space or newline.
  const mcp = call ?? (evaluation !== undefined ? mcpOfAction(evaluation.action)
    : req.body !== "" && req.body.charCodeAt(jsonStart(req.body)) === 123 /* { */ ? mcpOfBody(req.body) : NO_MCP);
  return {
    method: req.method,
    path: req.path,
    path_only: pathOnly,
    host,
    scheme: req.scheme,
    headers: req.headers,
    grpc_service: grpcService,
    grpc_method: grpcMethod,
    mcp_method: mcp.method,
    mcp_tool: mcp.tool,
    mcp,
    properties: evaluation?.context ?? NO_PROPERTIES,
    source_ip: req.source.address,
    destination,
  };
}

/** The path without its query. */
export function pathOf(path: string): string {
  const q = path.indexOf("?");
  return q === -1 ? path : path.slice(0, q);
}

/** Index of the first character after JSON whitespace (space, tab, LF, CR). */
export function jsonStart(body: string): number {
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

const NO_PROPERTIES: Record<string, unknown> = Object.freeze({});
const NO_ARGUMENTS: Record<string, unknown> = Object.freeze({});
/** What a request that is no MCP call shows as request.mcp. */
export const NO_MCP: McpView = Object.freeze({ method: "", tool: "", arguments: NO_ARGUMENTS, uri: "", prompt: "" });

/**
 * The MCP view of one JSON-RPC message: the method, and for tools/call the tool name and its
 * arguments, for resources/read the URI, for prompts/get the prompt name. Anything else yields
 * the method alone, or NO_MCP when the value is no JSON-RPC call.
 */
export function mcpOfMessage(message: unknown): McpView {
  if (!isRecord(message)) return NO_MCP;
  const { method, params } = message;
  if (typeof method !== "string") return NO_MCP;
  const p = isRecord(params) ? params : NO_ARGUMENTS;
  const text = (value: unknown): string => (typeof value === "string" ? value : "");
  switch (method) {
    case "tools/call":
      return { method, tool: text(p.name), arguments: isRecord(p.arguments) ? p.arguments : NO_ARGUMENTS, uri: "", prompt: "" };
    case "resources/read":
      return { method, tool: "", arguments: NO_ARGUMENTS, uri: text(p.uri), prompt: "" };
    case "prompts/get":
      return { method, tool: "", arguments: isRecord(p.arguments) ? p.arguments : NO_ARGUMENTS, uri: "", prompt: text(p.name) };
    default:
      return { method, tool: "", arguments: NO_ARGUMENTS, uri: "", prompt: "" };
  }
}

/** MCP view of a body holding one JSON object; unparseable bodies yield NO_MCP. */
export function mcpOfBody(body: string): McpView {
  let message: unknown;
  try {
    message = JSON.parse(body);
  } catch {
    return NO_MCP;
  }
  return mcpOfMessage(message);
}

/**
 * An AuthZEN action naming an MCP method (action `tools/call` with the tool as property `tool`,
 * or `name`, and `arguments`; `resources/read` with `uri`; `prompts/get` with `name`), seen as
 * the same MCP call an Envoy route would show: the same rules (mcpTools, request.mcp) judge it.
 */
function mcpOfAction(action: { name: string; properties: Record<string, unknown> }): McpView {
  const props = action.properties;
  switch (action.name) {
    case "tools/call":
      return mcpOfMessage({ method: action.name, params: { name: props.tool ?? props.name, arguments: props.arguments } });
    case "resources/read":
    case "prompts/get":
      return mcpOfMessage({ method: action.name, params: props });
    default:
      return NO_MCP;
  }
}

/** What the request does, as an approval scope names it. */
export function resourceOf(view: RequestView): string {
  if (view.mcp_tool !== "") return `mcp:${view.mcp_tool}`;
  if (view.grpc_service !== "") return `grpc:${view.grpc_service}/${view.grpc_method}`;
  return `${view.method} ${view.path_only}`;
}
