// Turns a pushed body into a verified Security Event Token, or a SetError carrying the RFC 8935
// code to answer with. Order matters: only the structure and the algorithm are looked at before
// the signature is checked; every claim-level verdict is about authenticated content.

import { compactVerify, decodeProtectedHeader, errors, type CompactVerifyResult, type JWSHeaderParameters } from "jose";
import { SET_JOSE_TYPE } from "./events.js";
import type { TransmitterKeys } from "./keys.js";
import { KeySourceUnavailable, SetError } from "./set-error.js";
import { resolveSubjectId, type ResolvedSubject } from "./subject.js";
import { isRecord } from "../../util/guards.js";

/** How far ahead of our clock a transmitter's `iat` (or event time) may be. */
export const CLOCK_SKEW_MS = 5 * 60 * 1000;
const MAX_JTI_LENGTH = 1024;
const BASE64URL = /^[A-Za-z0-9_-]*$/;

export interface VerifyOptions {
  keys: TransmitterKeys;
  algorithms: readonly string[];
  issuer: string;
  audience: readonly string[];
  replayWindowMs: number;
  nowMs: number;
}

/** A SET whose signature, header and envelope claims have been checked. */
export interface VerifiedSet {
  iss: string;
  jti: string;
  iatMs: number;
  /** RFC 8417 `toe`, when the transmitter asserted one. */
  toeMs: number | undefined;
  /** The single event's type URI and payload. */
  eventUri: string;
  payload: Record<string, unknown>;
  subject: ResolvedSubject;
}

/** Quotes a transmitter-supplied value for a description without letting it grow the answer. */
export function quote(value: string): string {
  return JSON.stringify(value.length > 200 ? `${value.slice(0, 200)}…` : value);
}

function checkStructure(token: string): JWSHeaderParameters {
  const parts = token.split(".");
  if (parts.length === 5) throw new SetError("invalid_request", "encrypted SETs (JWE) are not accepted; send a compact JWS");
  if (parts.length !== 3 || !parts.every((part) => BASE64URL.test(part)) || parts[0] === "" || parts[1] === "") {
    throw new SetError("invalid_request", "body is not a compact JWS");
  }
  let header: JWSHeaderParameters;
  try {
    header = decodeProtectedHeader(token);
  } catch (cause) {
    throw new SetError("invalid_request", "JWS protected header is not a base64url JSON object", { cause });
  }
  if (typeof header.alg !== "string" || header.alg === "") {
    throw new SetError("invalid_request", "JWS header has no alg");
  }
  if (header.b64 !== undefined) {
    throw new SetError("invalid_request", "unencoded JWS payloads (b64) are not accepted for SETs");
  }
  return header;
}

async function verifySignature(token: string, options: VerifyOptions): Promise<CompactVerifyResult> {
  const verifyOptions = { algorithms: [...options.algorithms] };
  try {
    return await compactVerify(token, options.keys, verifyOptions);
  } catch (err) {
    if (err instanceof errors.JWKSMultipleMatchingKeys) {
      // No kid, several candidate keys: try each, as jose documents.
      for await (const key of err) {
        try {
          return await compactVerify(token, key, verifyOptions);
        } catch {
          continue;
        }
      }
      throw new SetError("invalid_key", "signature does not verify with any key of the transmitter", { cause: err });
    }
    throw signatureFailure(err);
  }
}

function signatureFailure(err: unknown): Error {
  if (err instanceof KeySourceUnavailable) return err;
  if (err instanceof errors.JWSSignatureVerificationFailed) {
    return new SetError("invalid_key", "signature does not verify with the transmitter's key", { cause: err });
  }
  if (err instanceof errors.JWKSNoMatchingKey) {
    return new SetError("invalid_key", "no key of the transmitter's JWKS matches the SET's kid and alg", { cause: err });
  }
  if (err instanceof errors.JWSInvalid) {
    return new SetError("invalid_request", `malformed JWS: ${err.message}`, { cause: err });
  }
  // Unsupported key types, keys too short for the algorithm, key/alg mismatches.
  return new SetError("invalid_key", "the transmitter's key is not acceptable for this SET", { cause: err });
}

function checkType(header: JWSHeaderParameters): void {
  const typ = typeof header.typ === "string" ? header.typ.toLowerCase() : undefined;
  // RFC 7515 §4.1.9: "application/" may be left off, and is compared case-insensitively.
  if (typ !== SET_JOSE_TYPE && typ !== `application/${SET_JOSE_TYPE}`) {
    throw new SetError("invalid_request", `JWS typ must be ${SET_JOSE_TYPE} (SSF)`);
  }
}

function decodePayload(bytes: Uint8Array): Record<string, unknown> {
  let claims: unknown;
  try {
    claims = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (cause) {
    throw new SetError("invalid_request", "SET payload is not UTF-8 JSON", { cause });
  }
  if (!isRecord(claims)) throw new SetError("invalid_request", "SET payload is not a JSON object");
  return claims;
}

/** Seconds since the epoch (a NumericDate) to epoch ms; undefined when absent. */
export function numericDateMs(claims: Record<string, unknown>, name: string): number | undefined {
  const value = claims[name];
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > 1e11) {
    throw new SetError("invalid_request", `${name} must be a NumericDate (seconds since the epoch)`);
  }
  return Math.floor(value * 1000);
}

function checkClaims(claims: Record<string, unknown>, options: VerifyOptions): VerifiedSet {
  const { iss, aud, jti, events } = claims;
  if (iss !== options.issuer) {
    const shown = typeof iss === "string" ? quote(iss) : "missing";
    throw new SetError("invalid_issuer", `iss ${shown} is not the configured transmitter`);
  }
  const audiences = typeof aud === "string" ? [aud] : aud;
  if (!Array.isArray(audiences) || !audiences.some((value) => typeof value === "string" && options.audience.includes(value))) {
    throw new SetError("invalid_audience", "aud does not name this receiver");
  }
  if (claims.exp !== undefined) throw new SetError("invalid_request", "exp must not be present in a SET (SSF)");
  if (claims.sub !== undefined) throw new SetError("invalid_request", "sub must not be present in a SET; use sub_id (SSF)");
  const iatMs = numericDateMs(claims, "iat");
  if (iatMs === undefined) throw new SetError("invalid_request", "iat is required");
  if (iatMs > options.nowMs + CLOCK_SKEW_MS) throw new SetError("invalid_request", "iat is in the future");
  if (iatMs < options.nowMs - options.replayWindowMs) {
    // Older than the replay memory: a repeat could no longer be recognised, so it is refused.
    throw new SetError("invalid_request", "iat is older than the replay window");
  }
  if (typeof jti !== "string" || jti === "" || jti.length > MAX_JTI_LENGTH) {
    throw new SetError("invalid_request", `jti is required (a string of 1 to ${MAX_JTI_LENGTH} characters)`);
  }
  const toeMs = numericDateMs(claims, "toe");
  if (!isRecord(events)) throw new SetError("invalid_request", "events is required and must be a JSON object");
  const entries = Object.entries(events);
  const first = entries[0];
  if (first === undefined) throw new SetError("invalid_request", "events holds no event");
  if (entries.length > 1) throw new SetError("invalid_request", "events must hold exactly one event");
  const [eventUri, payload] = first;
  if (!isRecord(payload)) throw new SetError("invalid_request", "the event payload must be a JSON object");
  const subject = resolveSubjectId(claims.sub_id);
  return { iss, jti, iatMs, toeMs, eventUri, payload, subject };
}

/** Verifies one pushed SET. Throws SetError (answer 400) or KeySourceUnavailable (answer 503). */
export async function verifySet(token: string, options: VerifyOptions): Promise<VerifiedSet> {
  const header = checkStructure(token);
  if (header.alg === "none") throw new SetError("invalid_key", "unsigned SETs (alg none) are refused");
  if (!options.algorithms.includes(header.alg ?? "")) {
    throw new SetError("invalid_key", `alg ${quote(header.alg ?? "")} is not an allowed signing algorithm`);
  }
  const verified = await verifySignature(token, options);
  checkType(verified.protectedHeader);
  return checkClaims(decodePayload(verified.payload), options);
}
