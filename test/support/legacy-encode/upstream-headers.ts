// A frozen copy of src/transport/envoy/upstream-headers.ts as it was before the #9 rewrite (commit
// eb7a24b), the reference for the differential test. Not to be imported by src/ or changed.

// The one place that decides what the upstream sees of Vigil on an allowed request: which
// x-vigil-* identity headers are set, and which request headers are removed before it. Identity
// only reports facts (an X-Forwarded-Client-Cert that was not believed, in
// Decision.headersToRemove); the encoder only writes what this returns.

import { UPSTREAM_IDENTITY_HEADERS, HEADER_CALLER, HEADER_CALLER_TRUST_DOMAIN, HEADER_CREDENTIAL_FINGERPRINT, HEADER_DECISION_ID } from "../../../src/config/defaults.js";
import type { Decision } from "../../../src/model/index.js";

/** Every header Vigil writes for the upstream starts with this; a client's copy never gets through. */
export const VIGIL_HEADER_PREFIX = "x-vigil-";

export interface UpstreamHeaders {
  /** Headers set for the upstream, in this order: name (lower case) and a valid field value. */
  readonly set: readonly (readonly [string, string])[];
  /** Request headers removed before the upstream sees them: lower case, removable, none of `set`. */
  readonly remove: readonly string[];
}

/**
 * What an allowed request's upstream gets:
 * - set: the decision id, caller SPIFFE ID, trust domain and credential fingerprint(s), each only
 *   when non-empty and a value Envoy accepts (one it would refuse is removed instead of sent);
 * - remove, in this order: what identity did not believe (decision.headersToRemove), every
 *   x-vigil-* header the client sent (it must not reach the upstream looking like Vigil wrote
 *   it), each identity header not set this time, and the ones whose value could not be sent.
 *   Envoy applies set before remove, so a name that is set is never removed; names Envoy cannot
 *   remove (host, pseudo-headers, anything not an HTTP token) are dropped rather than sent.
 */
export function upstreamHeaders(decision: Decision, requestHeaders: Readonly<Record<string, string>>): UpstreamHeaders {
  const set: [string, string][] = [];
  const unsafe: string[] = [];
  const add = (name: string, value: string): void => {
    if (value === "") return;
    if (isFieldValue(value)) set.push([name, value]);
    else unsafe.push(name);
  };
  add(HEADER_DECISION_ID, decision.id);
  add(HEADER_CALLER, decision.caller);
  add(HEADER_CALLER_TRUST_DOMAIN, decision.trustDomain);
  add(HEADER_CREDENTIAL_FINGERPRINT, decision.credentialFingerprint);

  const remove: string[] = [];
  const drop = (raw: string): void => {
    const name = raw.toLowerCase();
    if (!isRemovable(name) || remove.includes(name) || set.some(([setName]) => setName === name)) return;
    remove.push(name);
  };
  for (const name of decision.headersToRemove) drop(name);
  // Costs one prefix test per request header; the decoder already lower-cased the names.
  for (const name in requestHeaders) if (name.startsWith(VIGIL_HEADER_PREFIX)) drop(name);
  for (const name of UPSTREAM_IDENTITY_HEADERS) drop(name);
  for (const name of unsafe) drop(name);
  return { set, remove };
}

/** Control characters other than tab make a header value Envoy (or HTTP/2) would reject. */
export function isFieldValue(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return false;
  }
  return true;
}

/** An HTTP field name (RFC 9110 token), lower case. Pseudo-headers (":path") are not tokens. */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;

/**
 * Envoy cannot remove pseudo-headers or host, and with validate_mutations an invalid name turns
 * the whole answer into a 500; such names are dropped rather than sent.
 */
function isRemovable(name: string): boolean {
  return name !== "host" && HEADER_NAME.test(name);
}
