// The request headers a Check's phases read, so transport can decode only those (issue #9). The
// phases read a fixed few whatever the policy; the policy's conditions read the ones found in
// their ASTs at compile time (policy/cel-refs.ts). Everything else in `request.headers` is left
// undecoded by the Envoy transport; an unknown policy (no `headers`) reads them all.

import { HEADER_RELEASE_DIGEST, HEADER_XFCC } from "../config/defaults.js";
import type { IdentityConfig } from "../config/index.js";
import type { HeaderSelection } from "../model/index.js";
import type { CompiledPolicy } from "../policy/types.js";

/**
 * Headers the phases read whatever the policy: identity's credential headers and
 * X-Forwarded-Client-Cert (identify), the release digest (signals: attestation), `:authority`
 * (destination and request view, when Envoy sent no host) and `content-type` (request view: gRPC).
 */
export function phaseHeaders(identity: Pick<IdentityConfig, "credentialHeaders">): readonly string[] {
  return [...identity.credentialHeaders, HEADER_XFCC, HEADER_RELEASE_DIGEST, ":authority", "content-type"];
}

export const ALL_HEADERS: HeaderSelection = Object.freeze({ all: true, names: new Set<string>() });

/**
 * What judging under the current policy reads: the phases' headers and the policy's. The same
 * object is returned until the policy changes (hot reload), so transport can tell by identity
 * whether a request was decoded for the policy that will judge it.
 */
export function createHeaderSelector(
  identity: Pick<IdentityConfig, "credentialHeaders">, policy: () => CompiledPolicy,
): () => HeaderSelection {
  const fixed = phaseHeaders(identity);
  let lastPolicy: CompiledPolicy | undefined;
  let last: HeaderSelection = ALL_HEADERS;
  return () => {
    const current = policy();
    if (current === lastPolicy) return last;
    lastPolicy = current;
    const read = current.headers;
    last = read === undefined || read.all ? ALL_HEADERS : Object.freeze({ all: false, names: new Set([...fixed, ...read.names]) });
    return last;
  };
}

/** Whether a request decoded with `decoded` holds every header `wanted` names. */
export function coversHeaders(decoded: HeaderSelection, wanted: HeaderSelection): boolean {
  if (decoded === wanted || decoded.all) return true;
  if (wanted.all) return false;
  for (const name of wanted.names) if (!decoded.names.has(name)) return false;
  return true;
}
