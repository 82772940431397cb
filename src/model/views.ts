// What policies see of one request: the request, the caller, the signals, as plain flattened
// views. The decision pipeline builds them (decision/), policies read them (policy/), and their
// field names are the CEL surface: they are what `when:` expressions see.

export interface RequestView {
  method: string;
  /** Request target including query. */
  path: string;
  /** Path without the query string: `path` up to its first "?", so always a prefix of `path`. */
  path_only: string;
  /** :authority without port, lower-case, as the caller sent it: informative, never the destination. */
  host: string;
  scheme: string;
  headers: Record<string, string>;
  /** "pkg.Service" when the request is gRPC (content-type application/grpc*), else "". */
  grpc_service: string;
  grpc_method: string;
  /** JSON-RPC method and MCP tool name from a tools/call body, else "". */
  mcp_method: string;
  mcp_tool: string;
  /**
   * The MCP action (JSON-RPC body of an MCP route, or an AuthZEN action `tools/call` …):
   * `method`, `tool` and `arguments` of a tools/call, `uri` of a resources/read, `prompt` of a
   * prompts/get. Every key is always present ("" or {} when not applicable).
   */
  mcp: McpView;
  /** An AuthZEN request's `context` object ({} on the Envoy path). */
  properties: Record<string, unknown>;
  source_ip: string;
  /**
   * The workload the request is judged under (decision/destination.ts): the route's context
   * extension `destination`, the sidecar's settings or its own SPIFFE ID; the Host only for a
   * gateway that lists its hosts. "" when there is none (the request is then denied).
   */
  destination: string;
}

/** What policies see of one MCP call (request.mcp). */
export interface McpView {
  method: string;
  tool: string;
  arguments: Record<string, unknown>;
  uri: string;
  prompt: string;
}

/**
 * A subject or resource as policies see it (`subject.*`, `resource.*`): the request's own type,
 * id and properties, and what the entities file (--entities) says about that id.
 */
export interface EntityView {
  type: string;
  id: string;
  /** The properties the request carried (AuthZEN); {} on the Envoy path. */
  properties: Record<string, unknown>;
  /** Whether the entities file knows this id. */
  known: boolean;
  /** Roles from the entities file; [] when unknown. */
  roles: string[];
  /** Attributes from the entities file; {} when unknown. */
  attributes: Record<string, unknown>;
}

/** The action as policies see it (`action.*`): the AuthZEN action, or the Envoy request's method / MCP method. */
export interface ActionView {
  name: string;
  properties: Record<string, unknown>;
}

export interface SourceView {
  spiffe_id: string;
  trust_domain: string;
  /** SPIFFE path, e.g. "/ns/ci/sa/deployer". */
  path: string;
  /** "mtls_principal" | "peer_certificate" | "xfcc" | "none". */
  identity_source: string;
  /**
   * Fingerprint of the first credential presented ("" when none). A request may present several:
   * test membership in credential_fingerprints, which holds all of them.
   */
  credential_fingerprint: string;
  /** Scheme of that first credential: "bearer" | "api_key" | "other" | "". */
  credential_scheme: string;
  /** Every distinct credential presented, as fingerprints, in header order. */
  credential_fingerprints: string[];
  /**
   * Codes of the identity problems found (invalid_principal, invalid_certificate, invalid_xfcc,
   * foreign_trust_domain, empty_credential, malformed_credential, ambiguous_credential). With
   * identity.onProblem "deny" (default) such a request is denied whatever the policy says.
   */
  problems: string[];
}

/** Signals as policies see them: flattened, with absent signals given neutral values. */
export interface SignalsView {
  /** False when the store has not heard from its bus within the freshness bound. */
  fresh: boolean;
  /** Caller risk level; "none" when no risk signal. */
  risk: string;
  risk_reason: string;
  /** Age in seconds of the risk signal; -1 when absent. */
  risk_age_seconds: number;
  /** Caller posture; "unknown" when absent. */
  posture: string;
  posture_attributes: Record<string, string>;
  /**
   * The worst state among the presented credentials; "none" when no credential, "unknown" for
   * one without a signal. Order: compromised > leaked > revoked > expired > unknown > active.
   */
  credential: string;
  /** State of each presented credential, in the order of source.credential_fingerprints. */
  credential_states: string[];
  /** True when any presented credential has a rotate-by deadline in the past. */
  credential_overdue: boolean;
  /** Owner SPIFFE ID recorded for the worst credential (the first of equals); "" when unknown. */
  credential_owner: string;
  /** Posture findings about any presented credential (over_privileged, unused_90d, …), without repeats. */
  credential_findings: string[];
  /** True when the caller identity or any presented credential carries a revocation. */
  revoked: boolean;
  /** Anomalies recorded for the caller (behaviour signals). */
  anomalies: string[];
  /** Attestation of the artifact named in the x-release-digest header. */
  attested: boolean;
  attestation_signer: string;
}

export interface PolicyInput {
  request: RequestView;
  source: SourceView;
  /** Route context_extensions. */
  context: Record<string, string>;
  signals: SignalsView;
  /** Who acts: the AuthZEN subject, or the caller's workload on the Envoy path. */
  subject: EntityView;
  action: ActionView;
  /** What is acted on: the AuthZEN resource, or the route (type "route", id the path) on the Envoy path. */
  resource: EntityView;
  /** Epoch milliseconds of the decision. */
  now: number;
  /**
   * True when the caller already found `request.path_only` in normal form with a check stricter
   * than the policy's own (the pipeline's pathProblem), so the policy need not check it again.
   * Absent or false, the policy checks the path itself before any path pattern can match.
   */
  pathNormal?: boolean;
}
