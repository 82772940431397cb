// Presented credentials (bearer tokens, API keys) reduced to a SHA-256 fingerprint the moment they
// are read. Signals, policies, logs and the admin API name a credential only by its fingerprint;
// the secret itself is never kept, logged or returned from here.
//
// Every configured header and every comma-joined value in it is read: a decoy in one place must
// not hide a leaked key in another (issue #8). What cannot be read unambiguously is a problem,
// which denies the request by default.

import { hash } from "node:crypto";
import type { Credential, IdentityProblem } from "./caller.js";

export const FINGERPRINT_PREFIX = "sha256:";

/**
 * At most this many credentials are fingerprinted per request. Envoy joins repeated headers with
 * ",", so one 60 KiB header could otherwise cost thousands of hashes; past the cap the request is
 * ambiguous anyway (and denied).
 */
export const MAX_CREDENTIALS = 8;

/** "sha256:" + 64 lower-case hex digits of SHA-256 over the secret's UTF-8 bytes. */
export function fingerprintSecret(secret: string): string {
  return FINGERPRINT_PREFIX + hash("sha256", secret, "hex");
}

/** True for a well-formed fingerprint ("sha256:" + 64 lower-case hex digits). */
export function isFingerprint(s: string): boolean {
  return /^sha256:[0-9a-f]{64}$/.test(s);
}

export interface CredentialRead {
  /** Distinct credentials of this header, in the order presented (usually one). */
  credentials: Credential[];
  /** Secret-free notes about what was refused (empty value, Bearer without token, several values …). */
  problems: IdentityProblem[];
}

const AUTHORIZATION = "authorization";

const isSpace = (c: number): boolean => c === 0x20 || c === 0x09;

/** Case-insensitive "bearer" at `at`, without allocating a lower-cased copy. */
function isBearer(s: string, at: number): boolean {
  return (s.charCodeAt(at) | 0x20) === 0x62 // b
    && (s.charCodeAt(at + 1) | 0x20) === 0x65 // e
    && (s.charCodeAt(at + 2) | 0x20) === 0x61 // a
    && (s.charCodeAt(at + 3) | 0x20) === 0x72 // r
    && (s.charCodeAt(at + 4) | 0x20) === 0x65 // e
    && (s.charCodeAt(at + 5) | 0x20) === 0x72; // r
}

function hasSpace(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (isSpace(s.charCodeAt(i))) return true;
  return false;
}

type ValueRead = Credential | "empty" | "no_token" | "spaces";

/**
 * One value (value[from, to)) of a credential header. `authorization` is split into scheme and
 * secret: `Bearer <token>` (scheme case-insensitive) fingerprints the token alone, so an operator
 * can fingerprint the bare token; any other value is scheme "other" and the whole trimmed value is
 * the secret (`Basic abc` and `Digest abc` stay different credentials). Any other header
 * (x-api-key …) is scheme "api_key", its trimmed value the secret.
 */
function readValue(header: string, value: string, from: number, to: number): ValueRead {
  let start = from;
  let end = to;
  while (start < end && isSpace(value.charCodeAt(start))) start++;
  while (end > start && isSpace(value.charCodeAt(end - 1))) end--;
  if (start === end) return "empty";
  if (header !== AUTHORIZATION) {
    return { header, scheme: "api_key", fingerprint: fingerprintSecret(value.slice(start, end)) };
  }
  // "Bearer", then at least one space and the token (the value is already trimmed).
  const length = end - start;
  if (length >= 6 && (length === 6 || isSpace(value.charCodeAt(start + 6))) && isBearer(value, start)) {
    if (length === 6) return "no_token";
    let t = start + 7;
    while (isSpace(value.charCodeAt(t))) t++; // stops before `end`: value[end - 1] is not a space
    // A bearer token is a token68: no spaces. "Bearer a b" leaves open which one the upstream uses.
    if (hasSpace(value, t, end)) return "spaces";
    return { header, scheme: "bearer", fingerprint: fingerprintSecret(value.slice(t, end)) };
  }
  return { header, scheme: "other", fingerprint: fingerprintSecret(value.slice(start, end)) };
}

function refusal(header: string, read: "empty" | "no_token" | "spaces", whole: boolean): IdentityProblem {
  switch (read) {
    case "empty":
      return { code: "empty_credential", message: whole ? `${header} header is empty` : `${header} header holds an empty value` };
    case "no_token":
      return { code: "malformed_credential", message: `${header} header has the Bearer scheme but no token` };
    case "spaces":
      return { code: "malformed_credential", message: `${header} header has a Bearer token with spaces in it` };
  }
}

function tooMany(): IdentityProblem {
  return { code: "ambiguous_credential", message: `more than ${String(MAX_CREDENTIALS)} credentials presented` };
}

/** Adds `credential` to `into` unless a credential with the same fingerprint is already there. */
function addDistinct(into: Credential[], credential: Credential): void {
  for (const c of into) if (c.fingerprint === credential.fingerprint) return;
  into.push(credential);
}

/**
 * Reads one credential header into `into` (distinct fingerprints only), noting problems: the
 * first refused value, and one ambiguous_credential (too many, or several different), per header
 * however many values it holds.
 *
 * Envoy joins repeated headers with ","; neither a token68 nor an API key holds one, so each
 * comma-separated value is a credential of its own and each is fingerprinted (up to
 * {@link MAX_CREDENTIALS}). The same value repeated is one credential; different values in one
 * header are `ambiguous_credential`: which one an upstream takes (first, last, the whole string)
 * is anyone's guess, and Vigil must judge what the upstream will use. A scheme whose credentials
 * contain commas (Digest) is therefore refused as ambiguous.
 */
export function readCredentialHeader(header: string, value: string, into: Credential[], problems: IdentityProblem[]): void {
  let comma = value.indexOf(",");
  if (comma === -1) { // the common case: one value, no allocation beyond the credential
    const read = readValue(header, value, 0, value.length);
    if (typeof read === "string") problems.push(refusal(header, read, true));
    else if (into.length < MAX_CREDENTIALS) addDistinct(into, read);
    else problems.push(tooMany());
    return;
  }
  const seen: string[] = [];
  let values = 0;
  let refused: "empty" | "no_token" | "spaces" | "" = "";
  let from = 0;
  for (;;) {
    const to = comma === -1 ? value.length : comma;
    values++;
    const read = readValue(header, value, from, to);
    if (typeof read === "string") {
      if (refused === "") problems.push(refusal(header, read, false));
      refused = read;
    } else if (!seen.includes(read.fingerprint)) {
      if (seen.length >= MAX_CREDENTIALS || into.length >= MAX_CREDENTIALS) {
        problems.push(tooMany());
        return;
      }
      seen.push(read.fingerprint);
      addDistinct(into, read);
    }
    if (comma === -1) break;
    from = comma + 1;
    comma = value.indexOf(",", from);
  }
  if (seen.length > 1) {
    problems.push({
      code: "ambiguous_credential",
      message: `${header} header holds ${String(seen.length)} different credentials in ${String(values)} comma-separated values (a repeated header?)`,
    });
  }
}

/** One credential header read on its own (tests, tools): its distinct credentials and problems. */
export function readCredential(header: string, value: string): CredentialRead {
  const read: CredentialRead = { credentials: [], problems: [] };
  readCredentialHeader(header, value, read.credentials, read.problems);
  return read;
}

/**
 * Every credential among `headerNames` (configured order), distinct by fingerprint, with the
 * problems found. A credential presented in two headers counts once (under the first header).
 */
export function findCredentials(
  headers: Readonly<Record<string, string>>,
  headerNames: readonly string[],
  problems: IdentityProblem[],
): Credential[] {
  const found: Credential[] = [];
  for (const name of headerNames) {
    const value = headers[name];
    // typeof, not !== undefined: a header map may be a plain object, and "constructor" is a
    // legal header name.
    if (typeof value !== "string") continue;
    readCredentialHeader(name, value, found, problems);
  }
  return found;
}
