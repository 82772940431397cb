// What identity resolution yields: who is calling, how we know, and the credential they
// presented reduced to a fingerprint.

export type IdentitySource = "mtls_principal" | "peer_certificate" | "xfcc" | "none";

export interface Credential {
  /** Header it came from (e.g. "authorization", "x-api-key"). */
  header: string;
  /** "bearer" for Authorization: Bearer …, "api_key" otherwise. */
  scheme: "bearer" | "api_key" | "other";
  /** "sha256:" + 64 lower-case hex characters of the secret's bytes. Never the secret. */
  fingerprint: string;
}

export interface Caller {
  /** Validated SPIFFE ID, or "" when none could be established. */
  spiffeId: string;
  trustDomain: string;
  /** SPIFFE path ("/ns/ci/sa/deployer"), "" when none. */
  path: string;
  source: IdentitySource;
  credential: Credential | null;
  /** Why an identity candidate was rejected (invalid SPIFFE ID, bad PEM, forged XFCC …). Safe to log. */
  problems: string[];
  /** Request headers that must not reach the upstream (untrusted XFCC, credential echoes). */
  headersToRemove: string[];
}
