// OpenID Shared Signals Framework push receiver (RFC 8935): verifies Security Event Tokens from
// one configured transmitter and turns CAEP/RISC events into Vigil signals.
//
// Subjects (sub_id, RFC 9493; SSF complex subjects use application, then device, then user;
// aliases use the first identifier that maps):
//   uri "spiffe://…" (validated)          → that SPIFFE ID
//   opaque "sha256:<64 hex>"              → that credential fingerprint (lower-cased)
//   opaque holding a valid SPIFFE ID      → that SPIFFE ID
//   iss_sub {iss, sub}                    → 202, nothing written (no Check presents an account)
//   anything else well formed             → 202, nothing written (result "ignored")
//
// Events (source "ssf:<iss>", id "ssf:<iss>:<jti>", observedAt = event_timestamp, else toe, else iat):
//   caep session-revoked, risc sessions-revoked → revocation {revoked, reason, by: iss}
//   caep credential-change revoke|delete        → credential {state: revoked} on a credential,
//                                                 revocation on an identity
//   caep credential-change create|update        → credential {state: active, issuedAt|rotatedAt}
//                                                 on a credential; nothing on an identity
//   risc credential-compromise                  → credential {state: compromised} on a credential,
//                                                 revocation on an identity
//   risc account-disabled, account-purged       → revocation
//   caep device-compliance-change               → posture compliant | non_compliant (identity)
//   caep risk-level-change LOW|MEDIUM|HIGH      → risk low|medium|high, reason = risk_reason (identity)
//   caep assurance-level-change decrease        → risk medium (identity); increase → nothing
//   caep token-claims-change                    → behavior {anomalies: ["token_claims_change"]}
//   ssf verification, stream-updated            → 202, nothing written (result "acknowledged")
//   any other type                              → 202, nothing written (result "ignored")

export {
  createSsfReceiver, SSF_MAX_BODY_BYTES,
  type SsfReceiver, type SsfReceiverOptions, type SsfRequest, type SsfResponse,
} from "./receiver.js";
export { CAEP, RISC, SSF_EVENTS, SET_MEDIA_TYPE, SET_JOSE_TYPE, eventShortName } from "./events.js";
export { SET_ERROR_CODES, type SetErrorCode } from "./set-error.js";
