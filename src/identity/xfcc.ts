// x-forwarded-client-cert: a quote-aware parser for the header Envoy's HCM writes, and the
// "trusted hops" rule that says which element, if any, may name the caller.
//
// Format (Envoy HCM docs): comma-separated elements, one per proxy hop, oldest first; each element
// is semicolon-separated Key=Value pairs, keys case-insensitive; a value holding `,` `;` or `=` is
// double-quoted with `"` escaped as `\"`. Envoy's own writer does not quote By/URI/DNS, so an
// unquoted value runs to the next `,` or `;` and may contain `=`.

import { parseWorkloadSpiffeId, type SpiffeId } from "./spiffe.js";

export interface XfccElement {
  /** URI SANs of the proxy that wrote this element (repeated key). */
  by: string[];
  /** Hex SHA-256 of the client certificate; "" when absent. */
  hash: string;
  /** URL-encoded PEM of the client leaf; "" when absent. */
  cert: string;
  /** URL-encoded PEM chain; "" when absent. */
  chain: string;
  /** Client certificate Subject; "" when absent (Envoy writes `Subject=""` when empty). */
  subject: string;
  /** Client URI SANs (repeated key). */
  uri: string[];
  /** Client DNS SANs (repeated key). */
  dns: string[];
}

export type XfccParse =
  | { ok: true; elements: XfccElement[] }
  | { ok: false; reason: string };

export type XfccSelection =
  | { ok: true; spiffe: SpiffeId; element: XfccElement }
  | { ok: false; reason: string };

type SingleKey = "hash" | "cert" | "chain" | "subject";
type RepeatedKey = "by" | "uri" | "dns";

function keyOf(lowerKey: string): SingleKey | RepeatedKey | null {
  switch (lowerKey) {
    case "by": case "uri": case "dns":
    case "hash": case "cert": case "chain": case "subject":
      return lowerKey;
    default:
      return null;
  }
}

const isSpace = (c: number): boolean => c === 0x20 || c === 0x09;

/** [A-Za-z0-9_-]: what a key may be made of. */
function isKeyChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x5f || c === 0x2d;
}

function emptyElement(): XfccElement {
  return { by: [], hash: "", cert: "", chain: "", subject: "", uri: [], dns: [] };
}

/**
 * Parses a whole x-forwarded-client-cert value into its elements, oldest first. Never throws.
 * Spaces and tabs around separators are tolerated; empty elements, empty keys, a key without
 * `=`, an unterminated quote, text after a closing quote and a repeated single-valued key
 * (Hash, Cert, Chain, Subject) make the header malformed. Unknown keys are skipped.
 */
export function parseXfcc(header: string): XfccParse {
  const n = header.length;
  const elements: XfccElement[] = [];
  let element = emptyElement();
  let seen = new Set<SingleKey>();
  let i = 0;
  for (;;) {
    while (i < n && isSpace(header.charCodeAt(i))) i++;
    // key
    const keyStart = i;
    while (i < n && isKeyChar(header.charCodeAt(i))) i++;
    if (i === keyStart) {
      if (i >= n) {
        return { ok: false, reason: elements.length === 0 && n === 0 ? "empty header" : "ends where a key was expected" };
      }
      const c = header[i];
      return { ok: false, reason: c === "," || c === ";" ? `empty element or pair at offset ${i}` : `invalid key character at offset ${i}` };
    }
    const rawKey = header.slice(keyStart, i);
    while (i < n && isSpace(header.charCodeAt(i))) i++;
    if (i >= n || header.charCodeAt(i) !== 0x3d) return { ok: false, reason: `key at offset ${keyStart} has no '='` };
    i++; // "="
    while (i < n && isSpace(header.charCodeAt(i))) i++;

    // value
    let value: string;
    if (i < n && header.charCodeAt(i) === 0x22) {
      const quoteStart = i;
      i++;
      let hasEscape = false;
      const valueStart = i;
      for (; i < n; i++) {
        const c = header.charCodeAt(i);
        if (c === 0x5c) {
          hasEscape = true;
          i++;
        } else if (c === 0x22) {
          break;
        }
      }
      if (i >= n) return { ok: false, reason: `unterminated quoted value at offset ${quoteStart}` };
      value = header.slice(valueStart, i);
      if (hasEscape) value = value.replace(/\\(.)/gs, "$1");
      i++; // closing quote
      while (i < n && isSpace(header.charCodeAt(i))) i++;
      if (i < n) {
        const c = header.charCodeAt(i);
        if (c !== 0x2c && c !== 0x3b) return { ok: false, reason: `unexpected text after quoted value at offset ${i}` };
      }
    } else {
      const valueStart = i;
      while (i < n) {
        const c = header.charCodeAt(i);
        if (c === 0x2c || c === 0x3b) break;
        if (c === 0x22) return { ok: false, reason: `stray quote inside a value at offset ${i}` };
        i++;
      }
      let end = i;
      while (end > valueStart && isSpace(header.charCodeAt(end - 1))) end--;
      value = header.slice(valueStart, end);
    }

    const key = keyOf(rawKey.toLowerCase());
    if (key !== null) {
      if (key === "by" || key === "uri" || key === "dns") {
        element[key].push(value);
      } else {
        if (seen.has(key)) return { ok: false, reason: `key ${rawKey} repeated within one element` };
        seen.add(key);
        element[key] = value;
      }
    }

    // separator
    if (i >= n) {
      elements.push(element);
      return { ok: true, elements };
    }
    if (header.charCodeAt(i) === 0x2c) { // "," ends the element
      elements.push(element);
      element = emptyElement();
      seen = new Set();
    }
    i++; // "," or ";"
  }
}

/**
 * Applies the trusted-hops rule to parsed elements: with `trustedHops = N`, the element N from the
 * end (N = 1: the last element, appended by our own Envoy) names the caller, and its URI SAN must
 * be exactly one workload SPIFFE ID. Elements before it were written by hops nobody vouches for.
 */
export function selectTrustedXfccElement(elements: readonly XfccElement[], trustedHops: number): XfccSelection {
  if (!Number.isInteger(trustedHops) || trustedHops < 1) {
    return { ok: false, reason: "x-forwarded-client-cert is not trusted (xfccTrustedHops is 0)" };
  }
  const element = elements[elements.length - trustedHops];
  if (element === undefined) {
    return {
      ok: false,
      reason: `x-forwarded-client-cert has ${elements.length} element(s) but xfccTrustedHops is ${trustedHops}`,
    };
  }
  if (element.uri.length === 0) return { ok: false, reason: "trusted x-forwarded-client-cert element has no URI" };
  if (element.uri.length > 1) {
    return { ok: false, reason: `trusted x-forwarded-client-cert element has ${element.uri.length} URIs; an X.509-SVID has exactly one` };
  }
  const spiffe = parseWorkloadSpiffeId(element.uri[0] ?? "");
  if (!spiffe.ok) return { ok: false, reason: `trusted x-forwarded-client-cert URI is not a valid SPIFFE ID: ${spiffe.reason}` };
  return { ok: true, spiffe, element };
}

/** Parses the header and applies the trusted-hops rule in one step. */
export function callerFromXfcc(header: string, trustedHops: number): XfccSelection {
  if (trustedHops < 1) return selectTrustedXfccElement([], trustedHops);
  const parsed = parseXfcc(header);
  if (!parsed.ok) return { ok: false, reason: `x-forwarded-client-cert is malformed: ${parsed.reason}` };
  return selectTrustedXfccElement(parsed.elements, trustedHops);
}
