// The signal model (design §3): a fact about a subject, with a source, an observed time and an
// optional expiry. Signals are state, not events: for one key (subject, kind, name) one value is
// held. Which value wins is decided in signal-index.ts: latest observedAt for risk, posture and
// behaviour; severity for credential states and revocations, which move one way only.

import { z } from "zod";
import { isFingerprint, parseWorkloadSpiffeId } from "../identity/index.js";

export const SIGNAL_KINDS = [
  "risk", "posture", "credential", "revocation", "behavior", "grant", "attestation",
] as const;
export type SignalKind = (typeof SIGNAL_KINDS)[number];

export const RISK_LEVELS = ["none", "low", "medium", "high", "critical"] as const;
export type RiskLevel = (typeof RISK_LEVELS)[number];
export const POSTURE_STATES = ["compliant", "non_compliant", "unknown"] as const;
export const CREDENTIAL_STATES = ["active", "leaked", "compromised", "revoked", "expired"] as const;
export type CredentialState = (typeof CREDENTIAL_STATES)[number];

/**
 * How far a credential has gone bad. 0 is a live state (latest observedAt wins between active
 * and expired); above 0 is terminal: a credential never goes back below its rank whatever the
 * timestamps, and only a higher rank replaces it. The order follows the life of a bad key:
 * exposed (leaked), known to be abused (compromised), turned off at its issuer (revoked). Every
 * terminal state is refused by the shipped policy; the order only decides which fact is kept.
 */
export const CREDENTIAL_SEVERITY: Readonly<Record<CredentialState, number>> = {
  active: 0, expired: 0, leaked: 1, compromised: 2, revoked: 3,
};

const epochMs = z.number().int().nonnegative();

export const riskData = z.strictObject({
  level: z.enum(RISK_LEVELS),
  reason: z.string().max(1024).optional(),
});
export const postureData = z.strictObject({
  status: z.enum(POSTURE_STATES),
  /** Attested attributes, e.g. image_digest. */
  attributes: z.record(z.string(), z.string()).optional(),
});
export const credentialData = z.strictObject({
  state: z.enum(CREDENTIAL_STATES),
  /** SPIFFE ID of the identity that owns the credential. */
  owner: z.string().optional(),
  issuedAt: epochMs.optional(),
  rotatedAt: epochMs.optional(),
  /** Deadline (epoch ms) by which the credential must have been rotated. */
  rotateBy: epochMs.optional(),
  /**
   * What an NHI posture scanner found about the credential (over_privileged, unused_90d,
   * shared, …): lower-case codes policies test with `in signals.credential_findings`. Any source
   * may set them; they never make a credential more trusted, only give rules more to refuse on.
   */
  findings: z.array(z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, { error: "a finding is a lower-case code of letters, digits and _ (e.g. over_privileged)" })).max(16).optional(),
});
export const revocationData = z.strictObject({
  /** Sticky: once true, only an explicit reinstate sets it false. */
  revoked: z.boolean(),
  reason: z.string().max(1024),
  /** Who revoked or reinstated (a SPIFFE ID, "vigil", or an admin token's label). */
  by: z.string(),
});
export const behaviorData = z.strictObject({
  /** e.g. "new_action", "rate_spike", "new_source_network". */
  anomalies: z.array(z.string().max(64)).max(64),
  /** What was seen, for operators (e.g. "new action payments GET /v1/payments/*"). */
  reason: z.string().max(1024).optional(),
});
export const grantData = z.strictObject({
  /** Approval the grant came from. */
  approvalId: z.string(),
  /** What the grant covers: the approval key (rule + destination + resource). */
  scope: z.string(),
  approver: z.string(),
  usesLeft: z.number().int().nonnegative(),
});
export const attestationData = z.strictObject({
  /** Who signed the artifact (e.g. spiffe://example.org/ns/ci/sa/release-pipeline). */
  signer: z.string(),
  signedAt: epochMs,
});

const base = {
  /** Event id; writes are idempotent on it. */
  id: z.string().min(1).max(256),
  /** SPIFFE ID, credential fingerprint (sha256:…), or artifact digest (sha256:…): see subjectProblem. */
  subject: z.string().min(1).max(2048),
  /** Distinguishes several signals of one kind on one subject (e.g. one grant per approval). */
  name: z.string().max(256).default(""),
  source: z.string().min(1).max(512),
  observedAt: epochMs,
  expiresAt: epochMs.optional(),
};

const signalShape = z.discriminatedUnion("kind", [
  z.strictObject({ ...base, kind: z.literal("risk"), data: riskData }),
  z.strictObject({ ...base, kind: z.literal("posture"), data: postureData }),
  z.strictObject({ ...base, kind: z.literal("credential"), data: credentialData }),
  z.strictObject({ ...base, kind: z.literal("revocation"), data: revocationData }),
  z.strictObject({ ...base, kind: z.literal("behavior"), data: behaviorData }),
  z.strictObject({ ...base, kind: z.literal("grant"), data: grantData }),
  z.strictObject({ ...base, kind: z.literal("attestation"), data: attestationData }),
]);

/** What a subject must be for each kind, in words for error messages. */
const SUBJECT_FORMS: Readonly<Record<SignalKind, string>> = {
  risk: "a workload SPIFFE ID",
  posture: "a workload SPIFFE ID",
  behavior: "a workload SPIFFE ID",
  grant: "a workload SPIFFE ID",
  credential: "a credential fingerprint (sha256: and 64 lower-case hex digits)",
  revocation: "a workload SPIFFE ID or a credential fingerprint (sha256: and 64 lower-case hex digits)",
  attestation: "an artifact digest (sha256: and 64 lower-case hex digits)",
};

/**
 * Why `subject` cannot be the subject of a `kind` signal, or undefined when it can. The answer
 * never contains the subject: a refused subject may be a secret (a raw API key written where its
 * fingerprint belongs), so only its length is told.
 */
export function subjectProblem(kind: SignalKind, subject: string): string | undefined {
  let why: string;
  switch (kind) {
    case "credential":
    case "attestation":
      if (isFingerprint(subject)) return undefined;
      why = "not sha256: and 64 lower-case hex digits";
      break;
    case "revocation": {
      if (isFingerprint(subject)) return undefined;
      const parsed = parseWorkloadSpiffeId(subject);
      if (parsed.ok) return undefined;
      why = subject.startsWith("sha256:") ? "not sha256: and 64 lower-case hex digits" : parsed.reason;
      break;
    }
    case "risk":
    case "posture":
    case "behavior":
    case "grant": {
      const parsed = parseWorkloadSpiffeId(subject);
      if (parsed.ok) return undefined;
      why = parsed.reason;
      break;
    }
  }
  return `a ${kind} subject must be ${SUBJECT_FORMS[kind]}: ${why} (got ${subject.length} characters)`;
}

/**
 * A signal as stored and as carried on the bus: its shape, and a subject of the form its kind
 * names. Rules that depend on the clock or on what is held (skew, stickiness) live in the stores.
 */
export const signalSchema = signalShape.superRefine((signal, ctx) => {
  const problem = subjectProblem(signal.kind, signal.subject);
  if (problem !== undefined) ctx.addIssue({ code: "custom", path: ["subject"], message: problem, input: undefined });
});

export type Signal = z.infer<typeof signalSchema>;
export type SignalOf<K extends SignalKind> = Extract<Signal, { kind: K }>;
/** Input form: `name` may be omitted. */
export type SignalInput = z.input<typeof signalSchema>;

/** The storage key of a signal: one value per (subject, kind, name). */
export function signalKey(subject: string, kind: SignalKind, name = ""): string {
  return `${kind}\u0000${subject}\u0000${name}`;
}

/**
 * True for a value no later write may undo: a revocation in force (lifted only by reinstate) or a
 * credential in a terminal state (leaked, compromised, revoked).
 */
export function isSticky(signal: Signal): boolean {
  if (signal.kind === "revocation") return signal.data.revoked;
  if (signal.kind === "credential") return CREDENTIAL_SEVERITY[signal.data.state] > 0;
  return false;
}

/**
 * A sticky value never expires: an expiresAt on it (refused on write, but possible in a bus value
 * or an old journal) is ignored, so a date in the past cannot silently lift a revocation.
 */
export function isExpired(signal: Signal, nowMs: number): boolean {
  return signal.expiresAt !== undefined && signal.expiresAt <= nowMs && !isSticky(signal);
}
