// The caller's SPIFFE ID read from the peer certificate Envoy forwards in `source.certificate`
// (URL-encoded PEM of the leaf, with `include_peer_certificate: true`), by the X.509-SVID rules:
// a leaf (not a CA) with exactly one URI SAN, which is a workload SPIFFE ID.
//
// Envoy has already verified the chain during the TLS handshake; this module does not repeat
// path validation, it only reads what the verified leaf says and refuses leaves that are not SVIDs.

import { X509Certificate } from "node:crypto";
import { parseWorkloadSpiffeId, type SpiffeId } from "./spiffe.js";

export interface SubjectAltName {
  /** As Node names it: "URI", "DNS", "IP Address", "email", "DirName", "othername" … */
  type: string;
  value: string;
}

export interface PeerCertificate {
  ok: true;
  spiffe: SpiffeId;
  /** Every SAN of the leaf, in certificate order. */
  subjectAltNames: SubjectAltName[];
}

export interface PeerCertificateRejection {
  ok: false;
  /** Why the certificate yields no identity; safe to log (no certificate bytes). */
  reason: string;
}

export type PeerCertificateParse = PeerCertificate | PeerCertificateRejection;

const PEM_BEGIN = "-----BEGIN CERTIFICATE-----";

const reject = (reason: string): PeerCertificateRejection => ({ ok: false, reason });

/**
 * Splits Node's `X509Certificate.subjectAltName` string ("URI:spiffe://…, DNS:a.example") into
 * entries. Since the CVE-2021-44532 fix Node writes any value holding a character that could be
 * confused with the separators (",", quotes, backslash, control characters …) as a JSON string,
 * e.g. `URI:"spiffe://a/b\u002c URI:x"`; such values are decoded with JSON.parse, so a comma inside
 * a SAN can never split it into two. Returns null when the string does not have this shape.
 */
export function splitSubjectAltNames(text: string): SubjectAltName[] | null {
  const out: SubjectAltName[] = [];
  const n = text.length;
  let i = 0;
  while (i < n) {
    const colon = text.indexOf(":", i);
    if (colon <= i) return null;
    const type = text.slice(i, colon);
    if (type.includes(",") || type.includes("\"")) return null;
    i = colon + 1;
    let value: string;
    if (text.charCodeAt(i) === 0x22) { // '"': a JSON string up to the unescaped closing quote
      let j = i + 1;
      for (; j < n; j++) {
        const c = text.charCodeAt(j);
        if (c === 0x5c) j++; // skip the escaped character
        else if (c === 0x22) break;
      }
      if (j >= n) return null;
      let decoded: unknown;
      try {
        decoded = JSON.parse(text.slice(i, j + 1));
      } catch {
        return null;
      }
      if (typeof decoded !== "string") return null;
      value = decoded;
      i = j + 1;
    } else {
      const end = text.indexOf(", ", i);
      value = end < 0 ? text.slice(i) : text.slice(i, end);
      // Node quotes any value holding these; finding one bare means a shape we do not know.
      if (value.includes(",") || value.includes("\"")) return null;
      i = end < 0 ? n : end;
    }
    out.push({ type, value });
    if (i < n) {
      if (!text.startsWith(", ", i)) return null;
      i += 2;
      if (i >= n) return null;
    }
  }
  return out;
}

/** Turns Envoy's URL-encoded PEM into PEM text, or a reason. */
function decodePem(encoded: string): string | PeerCertificateRejection {
  let pem: string;
  try {
    pem = decodeURIComponent(encoded);
  } catch {
    return reject("peer certificate is not valid URL-encoding");
  }
  const first = pem.indexOf(PEM_BEGIN);
  if (first < 0) return reject("peer certificate is not a PEM certificate");
  if (pem.indexOf(PEM_BEGIN, first + PEM_BEGIN.length) >= 0) {
    return reject("peer certificate holds more than one certificate; expected the leaf only");
  }
  return pem;
}

/**
 * Reads the caller's SPIFFE ID from a URL-encoded PEM leaf certificate (Envoy's
 * `source.certificate`). Plain PEM is accepted too (it URL-decodes to itself unless it holds "%").
 * Never throws: malformed encoding, PEM or DER, a CA certificate, zero or several URI SANs, or an
 * invalid SPIFFE ID each give a reason.
 */
export function parsePeerCertificate(encoded: string): PeerCertificateParse {
  if (encoded === "") return reject("no peer certificate");
  const pem = decodePem(encoded);
  if (typeof pem !== "string") return pem;

  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch (error) {
    const detail = error instanceof Error ? `: ${error.message}` : "";
    return reject(`peer certificate could not be parsed${detail}`);
  }
  if (cert.ca) return reject("peer certificate is a CA certificate, not a leaf");

  const sanText = cert.subjectAltName;
  if (sanText === undefined || sanText === "") return reject("peer certificate has no subject alternative names");
  const sans = splitSubjectAltNames(sanText);
  if (sans === null) return reject("peer certificate subject alternative names could not be read");

  let uri: string | undefined;
  let uriCount = 0;
  for (const san of sans) {
    if (san.type === "URI") {
      uriCount++;
      uri = san.value;
    }
  }
  if (uri === undefined) return reject("peer certificate has no URI SAN, so no SPIFFE ID");
  if (uriCount > 1) return reject(`peer certificate has ${uriCount} URI SANs; an X.509-SVID has exactly one`);
  const spiffe = parseWorkloadSpiffeId(uri);
  if (!spiffe.ok) return reject(`peer certificate URI SAN is not a valid SPIFFE ID: ${spiffe.reason}`);
  return { ok: true, spiffe, subjectAltNames: sans };
}
