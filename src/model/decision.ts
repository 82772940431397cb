// The decision value: what the pipeline answers and the transport encodes for Envoy.

import type { Outcome } from "./outcome.js";

export interface Decision {
  id: string;
  outcome: Outcome;
  /** Name of the rule that decided ("" when nothing matched). */
  rule: string;
  /** Reason safe to show the caller. */
  reason: string;
  /** Caller SPIFFE ID ("" when none). */
  caller: string;
  trustDomain: string;
  /** sha256:… fingerprint of the presented credential ("" when none); several are comma-joined. */
  credentialFingerprint: string;
  /** Seconds, for delay. */
  retryAfterSeconds?: number;
  /** For step_up. */
  approvalId?: string;
  /**
   * Request headers identity did not believe (an untrusted XFCC), to remove before the upstream
   * sees them. The transport adds the rest (client copies of x-vigil-* headers): upstreamHeaders().
   */
  headersToRemove: string[];
  /** Nanoseconds spent deciding. */
  durationNs: number;
  /** Version (content hash) of the policy that judged; absent when no policy was consulted. */
  policyVersion?: string;
  /** Controls the deciding rule enforces (src/policy/controls.ts). */
  controls?: readonly string[];
  /** For a refusal: every rule that matched, most restrictive first (the explanation). */
  matched?: readonly string[];
  /** What the policy's shadow rules would have made of the request, when that differs (rollout). */
  shadow?: { outcome: Outcome; rule: string };
  /** Dry run: the decision that was not enforced (the answer given was allow). */
  wouldBe?: { outcome: Outcome; rule: string; reason: string };
}
