// The normalised request and the decision value. Transport builds an AccessRequest from
// Envoy's CheckRequest (the only place that knows protobuf) and turns a Decision back into a
// CheckResponse; everything between works on these plain objects.

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
   * Problems found while decoding that must make the request fail closed (oversized headers,
   * malformed attributes). Non-empty → deny, with these as the reason.
   */
  malformed: string[];
}

/** Every outcome a decision can have; policies, metrics and the wire all take them from here. */
export const OUTCOMES = ["allow", "deny", "step_up", "delay", "revoke"] as const;
export type Outcome = (typeof OUTCOMES)[number];

/** Most restrictive first: revoke > deny > step_up > delay > allow. */
export const OUTCOME_SEVERITY: Readonly<Record<Outcome, number>> = {
  allow: 0,
  delay: 1,
  step_up: 2,
  deny: 3,
  revoke: 4,
};

export function mostRestrictive(a: Outcome, b: Outcome): Outcome {
  return OUTCOME_SEVERITY[a] >= OUTCOME_SEVERITY[b] ? a : b;
}

export interface Decision {
  id: string;
  outcome: Outcome;
  /** Name of the rule that decided ("" when nothing matched). */
  rule: string;
  /** Reason safe to show the caller. */
  reason: string;
  /** Caller SPIFFE ID ("" when none). */
  caller: string;
  trustDomain: string;
  /** sha256:… fingerprint of the presented credential ("" when none). */
  credentialFingerprint: string;
  /** Seconds, for delay. */
  retryAfterSeconds?: number;
  /** For step_up. */
  approvalId?: string;
  /** Request headers to remove before the upstream sees them (untrusted XFCC, spoofed x-vigil-*). */
  headersToRemove: string[];
  /** Nanoseconds spent deciding. */
  durationNs: number;
}
