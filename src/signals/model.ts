// The signal model (design §3): a fact about a subject, with a source, an observed time and an
// optional expiry. Signals are state, not events: for one key (subject, kind, name) the value
// with the latest observedAt wins.

import { z } from "zod";

export const SIGNAL_KINDS = [
  "risk", "posture", "credential", "revocation", "behavior", "grant", "attestation",
] as const;
export type SignalKind = (typeof SIGNAL_KINDS)[number];

export const RISK_LEVELS = ["none", "low", "medium", "high", "critical"] as const;
export type RiskLevel = (typeof RISK_LEVELS)[number];
export const POSTURE_STATES = ["compliant", "non_compliant", "unknown"] as const;
export const CREDENTIAL_STATES = ["active", "leaked", "compromised", "revoked", "expired"] as const;
export type CredentialState = (typeof CREDENTIAL_STATES)[number];

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
  anomalies: z.array(z.string()).max(64),
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
  /** SPIFFE ID, credential fingerprint (sha256:…), or artifact digest (sha256:…). */
  subject: z.string().min(1).max(2048),
  /** Distinguishes several signals of one kind on one subject (e.g. one grant per approval). */
  name: z.string().max(256).default(""),
  source: z.string().min(1).max(512),
  observedAt: epochMs,
  expiresAt: epochMs.optional(),
};

export const signalSchema = z.discriminatedUnion("kind", [
  z.strictObject({ ...base, kind: z.literal("risk"), data: riskData }),
  z.strictObject({ ...base, kind: z.literal("posture"), data: postureData }),
  z.strictObject({ ...base, kind: z.literal("credential"), data: credentialData }),
  z.strictObject({ ...base, kind: z.literal("revocation"), data: revocationData }),
  z.strictObject({ ...base, kind: z.literal("behavior"), data: behaviorData }),
  z.strictObject({ ...base, kind: z.literal("grant"), data: grantData }),
  z.strictObject({ ...base, kind: z.literal("attestation"), data: attestationData }),
]);

export type Signal = z.infer<typeof signalSchema>;
export type SignalOf<K extends SignalKind> = Extract<Signal, { kind: K }>;
/** Input form: `name` may be omitted. */
export type SignalInput = z.input<typeof signalSchema>;

/** The storage key of a signal: one value per (subject, kind, name). */
export function signalKey(subject: string, kind: SignalKind, name = ""): string {
  return `${kind}\u0000${subject}\u0000${name}`;
}

export function isExpired(signal: Signal, nowMs: number): boolean {
  return signal.expiresAt !== undefined && signal.expiresAt <= nowMs;
}
