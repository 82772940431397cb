// Identity resolution for one Check (design §2, step 2): who is calling, from the strongest source
// present, and the presented credential as a fingerprint. Runs on every request, so the common
// case (Envoy gave us a SPIFFE principal) costs one cache lookup and one hash of the token.
//
// Order: source.principal, else the peer certificate's URI SAN, else x-forwarded-client-cert when
// the operator trusts it (xfccTrustedHops > 0). A source that is present but rejected ends the
// search (fail closed): a peer whose mTLS identity is not an acceptable SPIFFE ID must not be able
// to name itself through a weaker source such as a header it wrote. A rejected source is a problem,
// and problems deny the request (Caller.refused) unless identity.onProblem is "policy": an invalid
// principal must not pass as an anonymous caller that a source-less allow rule lets in.

import { HEADER_XFCC } from "../config/defaults.js";
import type { IdentityConfig } from "../config/schema.js";
import { VigilError } from "../errors/index.js";
import type { PrincipalHints } from "../model/index.js";
import type { Caller, IdentityProblem, IdentitySource } from "./caller.js";
import { parsePeerCertificate, type PeerCertificateParse } from "./certificate.js";
import { findCredentials } from "./credential.js";
import { parseSpiffeId, parseWorkloadSpiffeId, type SpiffeId, type SpiffeIdRejection } from "./spiffe.js";
import { callerFromXfcc } from "./xfcc.js";

export interface CallerInput {
  /** attributes.source.principal; "" when absent. */
  principal: string;
  /** attributes.source.certificate (URL-encoded PEM leaf); "" when absent. */
  certificate: string;
  /** Request headers, lower-case names, as Envoy sent them. */
  headers: Readonly<Record<string, string>>;
}

export type CallerResolver = (input: CallerInput) => Caller;

export interface CallerResolverOptions {
  /** Distinct principals whose parse result is remembered (default 4096). 0 disables. */
  principalCacheSize?: number;
  /** Distinct peer certificates whose parse result is remembered (default 256). 0 disables. */
  certificateCacheSize?: number;
}

/** A Map bounded by dropping the oldest insertion: O(1), no reordering on hits. */
function boundedMemo<V>(limit: number, compute: (key: string) => V): (key: string) => V {
  if (limit <= 0) return compute;
  const entries = new Map<string, V>();
  return (key) => {
    const hit = entries.get(key);
    if (hit !== undefined) return hit;
    const value = compute(key);
    if (entries.size >= limit) {
      const oldest = entries.keys().next();
      if (oldest.done !== true) entries.delete(oldest.value);
    }
    entries.set(key, value);
    return value;
  };
}

/** Quotes a caller-controlled string for a problem message: escaped, and at most ~100 characters. */
function excerpt(s: string): string {
  return JSON.stringify(s.length > 100 ? `${s.slice(0, 100)}…` : s);
}

function checkTrustDomains(trustDomains: readonly string[]): ReadonlySet<string> | null {
  if (trustDomains.length === 0) return null;
  for (const td of trustDomains) {
    const parsed = parseSpiffeId(`spiffe://${td}`);
    if (!parsed.ok || parsed.path !== "") {
      throw new VigilError(
        "invalid_input",
        `identity.trustDomains: ${excerpt(td)} is not a trust domain name (write e.g. "example.org", `
        + `lower-case, without "spiffe://")${parsed.ok ? "" : `: ${parsed.reason}`}`,
      );
    }
  }
  return new Set(trustDomains);
}

/**
 * Builds the per-request resolver for one identity configuration. Throws a VigilError
 * ("invalid_input") at construction when a configured trust domain is not a valid name; the
 * returned function never throws.
 */
export function createCallerResolver(config: IdentityConfig, options: CallerResolverOptions = {}): CallerResolver {
  const trustedHops = config.xfccTrustedHops;
  const credentialHeaders: readonly string[] = [...config.credentialHeaders];
  const trustDomains = checkTrustDomains(config.trustDomains);
  const problemsDeny = config.onProblem === "deny";
  const principalCacheSize = options.principalCacheSize ?? 4096;
  const principalOf = boundedMemo<PrincipalEntry>(principalCacheSize, principalEntry);
  // Hints live as long as their memo entry: without a memo, each Check's entry is its own, and a hint is of no use.
  const keepsHints = principalCacheSize > 0;
  const certificateOf = boundedMemo<PeerCertificateParse>(options.certificateCacheSize ?? 256, parsePeerCertificate);

  return (input) => {
    const problems: IdentityProblem[] = [];
    const headersToRemove: string[] = [];
    let spiffe: SpiffeId | null = null;
    let source: IdentitySource = "none";
    let hints: PrincipalHints | undefined;

    if (input.principal !== "") {
      const parsed = principalOf(input.principal);
      if (parsed.ok) {
        spiffe = parsed;
        source = "mtls_principal";
        if (keepsHints) hints = parsed;
      } else {
        problems.push({
          code: "invalid_principal",
          message: `source.principal ${excerpt(input.principal)} is not a workload SPIFFE ID: ${parsed.reason}`,
        });
      }
    } else if (input.certificate !== "") {
      const parsed = certificateOf(input.certificate);
      if (parsed.ok) {
        spiffe = parsed.spiffe;
        source = "peer_certificate";
      } else {
        problems.push({ code: "invalid_certificate", message: parsed.reason });
      }
    }

    const xfcc = input.headers[HEADER_XFCC];
    if (typeof xfcc === "string") {
      if (trustedHops === 0) {
        // Not believed, so it must not reach the upstream either, where it could be believed.
        headersToRemove.push(HEADER_XFCC);
      } else if (input.principal === "" && input.certificate === "") {
        const selected = callerFromXfcc(xfcc, trustedHops);
        if (selected.ok) {
          spiffe = selected.spiffe;
          source = "xfcc";
        } else {
          problems.push({ code: "invalid_xfcc", message: selected.reason });
          headersToRemove.push(HEADER_XFCC);
        }
      }
    }

    if (spiffe !== null && trustDomains !== null && !trustDomains.has(spiffe.trustDomain)) {
      problems.push({
        code: "foreign_trust_domain",
        message: `SPIFFE ID ${excerpt(spiffe.id)} (from ${source}) is outside the trusted trust domains`,
      });
      if (source === "xfcc") headersToRemove.push(HEADER_XFCC);
      spiffe = null;
      source = "none";
      hints = undefined;
    }

    const credentials = findCredentials(input.headers, credentialHeaders, problems);
    return {
      spiffeId: spiffe === null ? "" : spiffe.id,
      trustDomain: spiffe === null ? "" : spiffe.trustDomain,
      path: spiffe === null ? "" : spiffe.path,
      source,
      credentials,
      problems,
      refused: problemsDeny && problems.length > 0,
      headersToRemove,
      hints,
    };
  };
}

/** A principal's memo entry: its parse and, when valid, the hints later phases keep for it (one object: one line to read). */
type PrincipalEntry = (SpiffeId & PrincipalHints) | SpiffeIdRejection;

function principalEntry(principal: string): PrincipalEntry {
  const parsed = parseWorkloadSpiffeId(principal);
  if (!parsed.ok) return parsed;
  // The only place hints are made. Every field written out in one literal: V8 then keeps them all
  // in the object itself (a spread of a hints object would add them one by one, into a separate
  // property array).
  return {
    ok: true, id: parsed.id, trustDomain: parsed.trustDomain, path: parsed.path,
    baselineBlock: -1, baselineIdentHigh: 0, baselineIdentLow: 0,
    knownActionHigh: 0, knownActionLow: 0, knownNetworkHigh: 0, knownNetworkLow: 0, knownStampHigh: 0, knownStampLow: 0,
  } satisfies Required<PrincipalHints> & SpiffeId;
}

/**
 * One-off resolution. Builds a fresh resolver (and validates `config`) on each call, so nothing is
 * cached between calls: use {@link createCallerResolver} once per configuration on the hot path.
 */
export function resolveCaller(input: CallerInput, config: IdentityConfig): Caller {
  return createCallerResolver(config, { principalCacheSize: 0, certificateCacheSize: 0 })(input);
}
