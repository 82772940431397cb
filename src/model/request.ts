// The normalised request. Transport builds an AccessRequest from Envoy's CheckRequest (the only
// place that knows protobuf); everything between works on this plain object.

export interface PeerInfo {
  /** SPIFFE ID / principal Envoy took from the certificate; "" when absent. */
  principal: string;
  /** URL-encoded PEM of the peer leaf certificate (include_peer_certificate); "" when absent. */
  certificate: string;
  /** IP address (or pipe path); "" when unknown. */
  address: string;
  port: number;
}

export interface AccessRequest {
  /** Epoch milliseconds when the Check arrived at Vigil. */
  receivedAt: number;
  source: PeerInfo;
  destination: PeerInfo;
  /** Envoy's stream id (request.http.id). */
  requestId: string;
  method: string;
  /** Request target including query, not decoded. */
  path: string;
  host: string;
  scheme: string;
  protocol: string;
  /** Lower-case header names; duplicate values already joined by Envoy with ",". */
  headers: Record<string, string>;
  /** Request body when Envoy was configured with with_request_body; "" otherwise. */
  body: string;
  /** Per-route context_extensions (e.g. action: deploy, env: prod). */
  contextExtensions: Record<string, string>;
  sni: string;
  /**
   * Set when the request is an AuthZEN evaluation rather than an Envoy Check: the subject, action,
   * resource and context the PEP asked about, and the destination the PDP judges them under.
   */
  evaluation?: Evaluation;
  /**
   * Problems found while decoding that must make the request fail closed (oversized headers,
   * malformed attributes). Non-empty → deny, with these as the reason.
   */
  malformed: string[];
}

/** One AuthZEN access evaluation, validated (transport/authzen). */
export interface Evaluation {
  subject: { type: string; id: string; properties: Record<string, unknown> };
  action: { name: string; properties: Record<string, unknown> };
  resource: { type: string; id: string; properties: Record<string, unknown> };
  context: Record<string, unknown>;
  /** The destination (policies' `destinations`) this PDP judges evaluations under. */
  destination: string;
}

/**
 * Which request headers a decision reads: every one (`all`), or the named ones. The decoder keeps
 * the values of these (and the names of x-vigil-* headers, which the encoder removes) and leaves
 * the rest as bytes (transport/envoy/header-selection.ts).
 */
export interface HeaderSelection {
  readonly all: boolean;
  /** Lower-case names; empty when `all`. */
  readonly names: ReadonlySet<string>;
}
