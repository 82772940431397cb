// Builds PolicyInputs for policy tests: a healthy, authenticated caller with fresh, neutral
// signals, on a fixed clock (Wednesday 2025-06-11 10:00 UTC, inside the example change window);
// each test overrides only what its scenario is about.

import type { ActionView, EntityView, PolicyInput, RequestView, SignalsView, SourceView } from "../../src/policy/types.js";

export const WEDNESDAY_10_UTC = Date.UTC(2025, 5, 11, 10, 0, 0);

export interface InputOverrides {
  caller?: string;
  request?: Partial<RequestView>;
  source?: Partial<SourceView>;
  context?: Record<string, string>;
  signals?: Partial<SignalsView>;
  subject?: Partial<EntityView>;
  action?: Partial<ActionView>;
  resource?: Partial<EntityView>;
  now?: number;
}

function entityView(type: string, id: string, overrides: Partial<EntityView> = {}): EntityView {
  return { type, id, properties: {}, known: false, roles: [], attributes: {}, ...overrides };
}

function sourceFor(spiffeId: string): SourceView {
  const match = /^spiffe:\/\/([^/]+)(\/.*)?$/.exec(spiffeId);
  return {
    spiffe_id: spiffeId,
    trust_domain: match?.[1] ?? "",
    path: match?.[2] ?? "",
    identity_source: spiffeId === "" ? "none" : "mtls_principal",
    credential_fingerprint: "",
    credential_scheme: "",
    credential_fingerprints: [],
    problems: [],
  };
}

/** `destination` is the host; `path` may carry a query, path_only is derived from it. */
export function policyInput(destination: string, method: string, path: string, overrides: InputOverrides = {}): PolicyInput {
  const pathOnly = path.split("?")[0] ?? path;
  const request: RequestView = {
    method,
    path,
    path_only: pathOnly,
    host: destination,
    scheme: "https",
    headers: {},
    grpc_service: "",
    grpc_method: "",
    mcp_method: "",
    mcp_tool: "",
    mcp: { method: "", tool: "", arguments: {}, uri: "", prompt: "" },
    properties: {},
    source_ip: "10.1.2.3",
    destination,
    ...overrides.request,
  };
  const signals: SignalsView = {
    fresh: true,
    risk: "none",
    risk_reason: "",
    risk_age_seconds: -1,
    posture: "compliant",
    posture_attributes: {},
    credential: "none",
    credential_states: [],
    credential_overdue: false,
    credential_owner: "",
    credential_findings: [],
    revoked: false,
    anomalies: [],
    attested: false,
    attestation_signer: "",
    ...overrides.signals,
  };
  return {
    request,
    source: { ...sourceFor(overrides.caller ?? ""), ...overrides.source },
    context: overrides.context ?? {},
    signals,
    subject: entityView(overrides.caller === undefined || overrides.caller === "" ? "" : "workload", overrides.caller ?? "", overrides.subject),
    action: { name: request.mcp_method !== "" ? request.mcp_method : method, properties: {}, ...overrides.action },
    resource: entityView("route", pathOnly, overrides.resource),
    now: overrides.now ?? WEDNESDAY_10_UTC,
  };
}

/** An MCP JSON-RPC tools/call for `tool`, as transport reports it. */
export function mcpToolCall(tool: string): Partial<RequestView> {
  return {
    mcp_method: "tools/call", mcp_tool: tool, mcp: { method: "tools/call", tool, arguments: {}, uri: "", prompt: "" },
    headers: { "content-type": "application/json" },
  };
}
