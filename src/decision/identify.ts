// The identity phase: who is calling (identity/ resolves and validates), and the policy's view of
// it, built once. Every later phase reads these two; none resolves or renames the caller again.

import type { Caller, CallerResolver } from "../identity/index.js";
import type { AccessRequest, SourceView } from "../model/index.js";

export interface Identified {
  caller: Caller;
  /** What policies see of the caller (`source.*`). */
  source: SourceView;
}

const NO_STRINGS: readonly string[] = Object.freeze([]);

export function identify(resolveCaller: CallerResolver, req: AccessRequest): Identified {
  const caller = resolveCaller({ principal: req.source.principal, certificate: req.source.certificate, headers: req.headers });
  return { caller, source: sourceView(caller) };
}

export function sourceView(caller: Caller): SourceView {
  const credentials = caller.credentials;
  const first = credentials[0];
  return {
    spiffe_id: caller.spiffeId,
    trust_domain: caller.trustDomain,
    path: caller.path,
    identity_source: caller.source,
    credential_fingerprint: first?.fingerprint ?? "",
    credential_scheme: first?.scheme ?? "",
    // The common cases (none, one) without a map() closure.
    credential_fingerprints: first === undefined ? NO_STRINGS as string[]
      : credentials.length === 1 ? [first.fingerprint] : credentials.map((c) => c.fingerprint),
    problems: caller.problems.length === 0 ? NO_STRINGS as string[] : caller.problems.map((p) => p.code),
  };
}
