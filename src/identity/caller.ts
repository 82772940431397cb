// What identity resolution yields: who is calling, how we know, every credential they presented
// reduced to a fingerprint, and what was wrong with what they presented.

import type { PrincipalHints } from "../model/index.js";

export type IdentitySource = "mtls_principal" | "peer_certificate" | "xfcc" | "none";

export interface Credential {
  /** Header it came from (e.g. "authorization", "x-api-key"). */
  header: string;
  /** "bearer" for Authorization: Bearer …, "api_key" otherwise. */
  scheme: "bearer" | "api_key" | "other";
  /** "sha256:" + 64 lower-case hex characters of the secret's bytes. Never the secret. */
  fingerprint: string;
}

/**
 * Why an identity candidate or a credential was refused. The code is what policies (`source.problems`)
 * and the decision log see; the message is for the caller and the operator and never holds a secret.
 */
export type IdentityProblemCode =
  | "invalid_principal" // source.principal is not a workload SPIFFE ID
  | "invalid_certificate" // the peer certificate is not an acceptable SVID
  | "invalid_xfcc" // a trusted x-forwarded-client-cert header is malformed or has too few hops
  | "foreign_trust_domain" // a SPIFFE ID outside identity.trustDomains
  | "empty_credential" // a credential header (or one of its comma-joined values) is empty
  | "malformed_credential" // Bearer without a token, or a token with spaces in it
  | "ambiguous_credential"; // one header carries several different credentials, or too many

export interface IdentityProblem {
  code: IdentityProblemCode;
  /** Safe to show the caller and to log: caller-controlled text only as a quoted excerpt, no secret. */
  message: string;
}

export interface Caller {
  /** Validated SPIFFE ID, or "" when none could be established. */
  spiffeId: string;
  trustDomain: string;
  /** SPIFFE path ("/ns/ci/sa/deployer"), "" when none. */
  path: string;
  source: IdentitySource;
  /**
   * Every distinct credential presented, in configured header order (then value order). All of
   * them count: signals are read, and revocations checked, for each one.
   */
  credentials: Credential[];
  /** What was refused (invalid principal, bad certificate, ambiguous credential …). */
  problems: IdentityProblem[];
  /**
   * True when the problems must deny the request whatever the policy says: any problem, unless the
   * operator set identity.onProblem to "policy" (then policies judge `source.problems` themselves).
   */
  refused: boolean;
  /**
   * Request headers identity did not believe and that so must not reach the upstream, where they
   * could be believed: an X-Forwarded-Client-Cert that is not trusted, invalid or foreign.
   * Everything else about the upstream's headers is decided in transport/envoy/upstream-headers.ts.
   */
  headersToRemove: string[];
  /**
   * The memo entry of the caller's principal (source "mtls_principal"), where later phases keep
   * per-principal hints (src/model/hints.ts); absent for other sources and when nothing is memoised.
   */
  hints?: PrincipalHints | undefined;
}
