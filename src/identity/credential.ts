// Presented credentials (bearer tokens, API keys) reduced to a SHA-256 fingerprint the moment they
// are read. Signals, policies, logs and the admin API name a credential only by its fingerprint;
// the secret itself is never kept, logged or returned from here.

import { hash } from "node:crypto";
import type { Credential } from "./caller.js";

export const FINGERPRINT_PREFIX = "sha256:";

/** "sha256:" + 64 lower-case hex digits of SHA-256 over the secret's UTF-8 bytes. */
export function fingerprintSecret(secret: string): string {
  return FINGERPRINT_PREFIX + hash("sha256", secret, "hex");
}

/** True for a well-formed fingerprint ("sha256:" + 64 lower-case hex digits). */
export function isFingerprint(s: string): boolean {
  return /^sha256:[0-9a-f]{64}$/.test(s);
}

export interface CredentialRead {
  /** The credential, or null when the header holds nothing usable. */
  credential: Credential | null;
  /** Secret-free notes about what was odd (empty token, several values …). */
  problem: string;
}

const AUTHORIZATION = "authorization";

const isSpace = (c: number): boolean => c === 0x20 || c === 0x09;

/** index of `needle` at or after `from`, or Infinity. */
function firstIndexOf(haystack: string, needle: string, from: number): number {
  const i = haystack.indexOf(needle, from);
  return i < 0 ? Number.POSITIVE_INFINITY : i;
}

/** Case-insensitive "bearer" at `at`, without allocating a lower-cased copy. */
function isBearer(s: string, at: number): boolean {
  return (s.charCodeAt(at) | 0x20) === 0x62 // b
    && (s.charCodeAt(at + 1) | 0x20) === 0x65 // e
    && (s.charCodeAt(at + 2) | 0x20) === 0x61 // a
    && (s.charCodeAt(at + 3) | 0x20) === 0x72 // r
    && (s.charCodeAt(at + 4) | 0x20) === 0x65 // e
    && (s.charCodeAt(at + 5) | 0x20) === 0x72; // r
}

/**
 * Reads one credential header. `authorization` is split into scheme and secret:
 * `Bearer <token>` (scheme case-insensitive) fingerprints the token alone, so an operator can
 * fingerprint the bare token; any other value is scheme "other" and the whole trimmed value is the
 * secret (`Basic abc` and `Digest abc` stay different credentials). Any other configured header
 * (x-api-key …) is scheme "api_key", its trimmed value the secret.
 *
 * Envoy joins repeated headers with ",". A bearer token is a token68 and holds neither spaces nor
 * commas, so `Bearer a, Bearer b` fingerprints `a` (the value most upstreams use) and reports a
 * problem, letting the pipeline fail closed rather than look up a credential nobody presented.
 */
export function readCredential(header: string, value: string): CredentialRead {
  let start = 0;
  let end = value.length;
  while (start < end && isSpace(value.charCodeAt(start))) start++;
  while (end > start && isSpace(value.charCodeAt(end - 1))) end--;
  if (start === end) return { credential: null, problem: `${header} header is empty` };

  if (header !== AUTHORIZATION) {
    return { credential: { header, scheme: "api_key", fingerprint: fingerprintSecret(value.slice(start, end)) }, problem: "" };
  }

  // "Bearer", then at least one space and the token (the value is already trimmed).
  const length = end - start;
  if (length >= 6 && (length === 6 || isSpace(value.charCodeAt(start + 6))) && isBearer(value, start)) {
    if (length === 6) return { credential: null, problem: "authorization header has the Bearer scheme but no token" };
    let t = start + 7;
    while (isSpace(value.charCodeAt(t))) t++; // stops before `end`: value[end - 1] is not a space
    // indexOf is native and fast on long tokens; a token68 holds none of these.
    const tokenEnd = Math.min(end, firstIndexOf(value, " ", t), firstIndexOf(value, "\t", t), firstIndexOf(value, ",", t));
    const credential: Credential = { header, scheme: "bearer", fingerprint: fingerprintSecret(value.slice(t, tokenEnd)) };
    if (tokenEnd < end) {
      return { credential, problem: "authorization header holds more than one value (repeated header?); only the first bearer token was fingerprinted" };
    }
    return { credential, problem: "" };
  }
  return { credential: { header, scheme: "other", fingerprint: fingerprintSecret(value.slice(start, end)) }, problem: "" };
}

/**
 * The first credential found among `headerNames` (configured order), with any problems. Later
 * credential headers that are also present are noted as a problem: policies see one credential.
 */
export function findCredential(
  headers: Readonly<Record<string, string>>,
  headerNames: readonly string[],
  problems: string[],
): Credential | null {
  let found: Credential | null = null;
  for (const name of headerNames) {
    const value = headers[name];
    // typeof, not !== undefined: a header map may be a plain object, and "constructor" is a
    // legal header name.
    if (typeof value !== "string") continue;
    if (found !== null) {
      problems.push(`${name} header ignored: a credential was already taken from ${found.header}`);
      continue;
    }
    const read = readCredential(name, value);
    if (read.problem !== "") problems.push(read.problem);
    found = read.credential;
  }
  return found;
}
