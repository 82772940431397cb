// SPIFFE ID validation by the rules of the SPIFFE-ID standard, strict and allocation-light: it runs
// on every Check that carries a principal, so it walks character codes instead of using URL or
// regular expressions.
//
// Decisions the standard leaves to us, made the way go-spiffe makes them:
// - The scheme must be written exactly `spiffe://`. The standard calls the scheme case-insensitive
//   for parsing but requires IDs to be generated lower-case; accepting `SPIFFE://` would give one
//   identity two spellings, and policies compare IDs as strings. So it is rejected, not normalised.
// - An upper-case trust domain is rejected for the same reason (the standard requires lower case).
// - The returned `id` is the input unchanged: a valid ID has exactly one spelling.

/** Longest SPIFFE ID accepted, in bytes, scheme included (SPIFFE-ID §2.3, "Maximum SPIFFE ID Length"). */
export const MAX_SPIFFE_ID_BYTES = 2048;
/** Longest trust domain name accepted, in bytes. */
export const MAX_TRUST_DOMAIN_BYTES = 255;

export interface SpiffeId {
  ok: true;
  /** The whole ID, exactly as given (valid IDs have one spelling). */
  id: string;
  /** e.g. "example.org". */
  trustDomain: string;
  /** "" for a trust-domain ID, else "/seg/seg…" without a trailing slash. */
  path: string;
}

export interface SpiffeIdRejection {
  ok: false;
  /** Why the string is not a SPIFFE ID; never contains the input. */
  reason: string;
}

export type SpiffeIdParse = SpiffeId | SpiffeIdRejection;

const SCHEME_PREFIX = "spiffe://";

const reject = (reason: string): SpiffeIdRejection => ({ ok: false, reason });

/** [a-z0-9._-]: trust domain characters. */
function isTrustDomainChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) // a-z
    || (c >= 0x30 && c <= 0x39) // 0-9
    || c === 0x2e || c === 0x5f || c === 0x2d; // . _ -
}

/** [a-zA-Z0-9._-]: path segment characters. */
function isPathChar(c: number): boolean {
  return isTrustDomainChar(c) || (c >= 0x41 && c <= 0x5a); // + A-Z
}

/** Names the rule a forbidden character breaks, so problems say something a user can act on. */
function describeBadChar(c: number, where: "trust domain" | "path"): string {
  switch (c) {
    case 0x25: return `percent-encoding is not allowed in the ${where}`;
    case 0x3f: return "a query is not allowed";
    case 0x23: return "a fragment is not allowed";
    default: break;
  }
  if (where === "trust domain") {
    switch (c) {
      case 0x40: return "userinfo is not allowed";
      case 0x3a: return "a port is not allowed";
      case 0x5b: case 0x5d: return "an IPv6 trust domain is not allowed";
      default: break;
    }
    if (c >= 0x41 && c <= 0x5a) return "the trust domain must be lower-case";
    return "the trust domain may contain only a-z, 0-9, '.', '_' and '-'";
  }
  return "path segments may contain only a-z, A-Z, 0-9, '.', '_' and '-'";
}

/**
 * Parses and validates a SPIFFE ID (`spiffe://<trust-domain>[/<path>]`). Never throws.
 * A trust-domain ID (path "") is valid here; a workload (leaf SVID) needs a path; see
 * {@link parseWorkloadSpiffeId}.
 */
export function parseSpiffeId(s: string): SpiffeIdParse {
  const n = s.length;
  if (n === 0) return reject("empty SPIFFE ID");
  // Code units ≥ byte count for non-ASCII, and non-ASCII is rejected below anyway, so the
  // length check on code units is exact for every string that could pass.
  if (n > MAX_SPIFFE_ID_BYTES) return reject(`longer than ${MAX_SPIFFE_ID_BYTES} bytes`);
  if (!s.startsWith(SCHEME_PREFIX)) {
    if (s.slice(0, SCHEME_PREFIX.length).toLowerCase() === SCHEME_PREFIX) {
      return reject("the scheme must be written in lower case as 'spiffe://'");
    }
    return reject("not a SPIFFE ID: the scheme must be 'spiffe://'");
  }

  let i = SCHEME_PREFIX.length;
  const tdStart = i;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x2f) break; // "/"
    if (!isTrustDomainChar(c)) return reject(describeBadChar(c, "trust domain"));
  }
  const tdLength = i - tdStart;
  if (tdLength === 0) return reject("the trust domain is empty");
  if (tdLength > MAX_TRUST_DOMAIN_BYTES) return reject(`the trust domain is longer than ${MAX_TRUST_DOMAIN_BYTES} bytes`);
  const trustDomain = s.slice(tdStart, i);
  if (i === n) return { ok: true, id: s, trustDomain, path: "" };

  // s[i] is "/": walk segments.
  const pathStart = i;
  let segStart = i + 1;
  for (i = segStart; i <= n; i++) {
    const c = i < n ? s.charCodeAt(i) : 0x2f; // the end closes the last segment
    if (c === 0x2f) {
      const segLength = i - segStart;
      if (segLength === 0) {
        return reject(i === n ? "a trailing '/' is not allowed" : "empty path segments ('//') are not allowed");
      }
      if (s.charCodeAt(segStart) === 0x2e && (segLength === 1 || (segLength === 2 && s.charCodeAt(segStart + 1) === 0x2e))) {
        return reject("relative path segments ('.' and '..') are not allowed");
      }
      segStart = i + 1;
    } else if (!isPathChar(c)) {
      return reject(describeBadChar(c, "path"));
    }
  }
  return { ok: true, id: s, trustDomain, path: s.slice(pathStart) };
}

/**
 * Why `s` is not a SPIFFE ID naming a workload, or undefined when it is one: the check for IDs
 * that arrive as data (SET subjects, signal subjects) rather than as a caller.
 */
export function spiffeIdProblem(s: string): string | undefined {
  const parsed = parseWorkloadSpiffeId(s);
  return parsed.ok ? undefined : parsed.reason;
}

/**
 * Like {@link parseSpiffeId}, and also requires a non-root path: X.509-SVID leaves (and so every
 * workload caller) carry `spiffe://td/<path>`; the bare trust-domain ID names only a signing CA.
 */
export function parseWorkloadSpiffeId(s: string): SpiffeIdParse {
  const parsed = parseSpiffeId(s);
  if (parsed.ok && parsed.path === "") {
    return reject("a trust-domain ID with no path is not a workload identity");
  }
  return parsed;
}
