// The one place that decides what the upstream sees of Vigil on an allowed request: which
// x-vigil-* identity headers are set, and which request headers are removed before it. Identity
// only reports facts (an X-Forwarded-Client-Cert that was not believed, in
// Decision.headersToRemove); the encoder only writes what this decides.
//
// Runs for nearly every Check, so the decision comes in two allocation-free parts the encoder
// calls directly (sentIdentityHeaders: a bit mask; removedHeaders: a shared empty list in the
// common case), and upstreamHeaders() spells the same decision out as lists for everyone else.

import { UPSTREAM_IDENTITY_HEADERS, HEADER_CALLER, HEADER_CALLER_TRUST_DOMAIN, HEADER_CREDENTIAL_FINGERPRINT, HEADER_DECISION_ID } from "../../config/defaults.js";
import type { Decision } from "../../model/index.js";

/** Every header Vigil writes for the upstream starts with this; a client's copy never gets through. */
export const VIGIL_HEADER_PREFIX = "x-vigil-";

export interface UpstreamHeaders {
  /** Headers set for the upstream, in this order: name (lower case) and a valid field value. */
  readonly set: readonly (readonly [string, string])[];
  /** Request headers removed before the upstream sees them: lower case, removable, none of `set`. */
  readonly remove: readonly string[];
}

/** Bits of sentIdentityHeaders(), one per identity header, in the order they are set. */
export const SENT_DECISION_ID = 1;
export const SENT_CALLER = 2;
export const SENT_TRUST_DOMAIN = 4;
export const SENT_CREDENTIAL_FINGERPRINT = 8;

/** The identity headers with their bit, in the order they are set (UPSTREAM_IDENTITY_HEADERS). */
const IDENTITY: readonly (readonly [name: string, bit: number])[] = [
  [HEADER_DECISION_ID, SENT_DECISION_ID],
  [HEADER_CALLER, SENT_CALLER],
  [HEADER_CALLER_TRUST_DOMAIN, SENT_TRUST_DOMAIN],
  [HEADER_CREDENTIAL_FINGERPRINT, SENT_CREDENTIAL_FINGERPRINT],
];
if (IDENTITY.length !== UPSTREAM_IDENTITY_HEADERS.length || IDENTITY.some(([name], i) => name !== UPSTREAM_IDENTITY_HEADERS[i])) {
  throw new Error("upstream-headers: IDENTITY must list UPSTREAM_IDENTITY_HEADERS in order");
}

const NOTHING_REMOVED: readonly string[] = Object.freeze([]);

/**
 * What an allowed request's upstream gets:
 * - set: the decision id, caller SPIFFE ID, trust domain and credential fingerprint(s), each only
 *   when non-empty and a value Envoy accepts (one it would refuse is removed instead of sent);
 * - remove, in this order: what identity did not believe (decision.headersToRemove), every
 *   x-vigil-* header the client sent (it must not reach the upstream looking like Vigil wrote
 *   it), and each identity header not set this time (empty, or a value that could not be sent).
 *   Envoy applies set before remove, so a name that is set is never removed; names Envoy cannot
 *   remove (host, pseudo-headers, anything not an HTTP token) are dropped rather than sent.
 */
export function upstreamHeaders(decision: Decision, requestHeaders: Readonly<Record<string, string>>): UpstreamHeaders {
  const sent = sentIdentityHeaders(decision);
  const set: [string, string][] = [];
  if ((sent & SENT_DECISION_ID) !== 0) set.push([HEADER_DECISION_ID, decision.id]);
  if ((sent & SENT_CALLER) !== 0) set.push([HEADER_CALLER, decision.caller]);
  if ((sent & SENT_TRUST_DOMAIN) !== 0) set.push([HEADER_CALLER_TRUST_DOMAIN, decision.trustDomain]);
  if ((sent & SENT_CREDENTIAL_FINGERPRINT) !== 0) set.push([HEADER_CREDENTIAL_FINGERPRINT, decision.credentialFingerprint]);
  return { set, remove: removedHeaders(decision, requestHeaders, sent) };
}

/** The identity headers set for the upstream (upstreamHeaders().set), as SENT_* bits. */
export function sentIdentityHeaders(decision: Decision): number {
  return (sendable(decision.id) ? SENT_DECISION_ID : 0)
    | (sendable(decision.caller) ? SENT_CALLER : 0)
    | (sendable(decision.trustDomain) ? SENT_TRUST_DOMAIN : 0)
    | (sendable(decision.credentialFingerprint) ? SENT_CREDENTIAL_FINGERPRINT : 0);
}

function sendable(value: string): boolean {
  return value !== "" && isFieldValue(value);
}

/**
 * upstreamHeaders().remove, given `sent = sentIdentityHeaders(decision)`. Without anything to
 * remove (the common case) it returns one shared, frozen empty list.
 */
export function removedHeaders(decision: Decision, requestHeaders: Readonly<Record<string, string>>, sent: number): readonly string[] {
  let remove: string[] | undefined;
  for (const raw of decision.headersToRemove) remove = drop(remove, raw.toLowerCase(), sent);
  // Costs one prefix test per request header; the decoder already lower-cased the names.
  for (const name in requestHeaders) if (name.startsWith(VIGIL_HEADER_PREFIX)) remove = drop(remove, name, sent);
  for (const [name, bit] of IDENTITY) if ((sent & bit) === 0) remove = drop(remove, name, sent);
  return remove ?? NOTHING_REMOVED;
}

/** `remove` with `name` added unless Envoy cannot remove it, it is already there, or it is set. */
function drop(remove: string[] | undefined, name: string, sent: number): string[] | undefined {
  if (!isRemovable(name) || remove?.includes(name) === true || isSet(name, sent)) return remove;
  if (remove === undefined) return [name];
  remove.push(name);
  return remove;
}

function isSet(name: string, sent: number): boolean {
  for (const [identity, bit] of IDENTITY) if (name === identity) return (sent & bit) !== 0;
  return false;
}

/** Control characters other than tab make a header value Envoy (or HTTP/2) would reject. */
export function isFieldValue(value: string): boolean {
  return !NOT_FIELD_VALUE.test(value);
}

// eslint-disable-next-line no-control-regex -- control characters are exactly what is looked for
const NOT_FIELD_VALUE = /[\u0000-\u0008\u000a-\u001f\u007f]/;

/** An HTTP field name (RFC 9110 token), lower case. Pseudo-headers (":path") are not tokens. */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;

/**
 * Envoy cannot remove pseudo-headers or host, and with validate_mutations an invalid name turns
 * the whole answer into a 500; such names are dropped rather than sent.
 */
function isRemovable(name: string): boolean {
  return name !== "host" && HEADER_NAME.test(name);
}
