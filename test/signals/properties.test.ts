// Property tests for parseSignal, the gate every write passes (admin API, CLI, seed files, SSF):
// whatever it is given, it never crashes, never accepts a subject of the wrong form for its kind,
// and never quotes a refused subject (which may be a secret) in its error.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { VigilError } from "../../src/errors/index.js";
import { parseWorkloadSpiffeId } from "../../src/identity/index.js";
import { SIGNAL_KINDS, isExpired, parseSignal } from "../../src/signals/index.js";
import type { Signal, SignalKind } from "../../src/signals/index.js";

const FINGERPRINT = /^sha256:[0-9a-f]{64}$/;

function subjectFits(kind: SignalKind, subject: string): boolean {
  const spiffe = parseWorkloadSpiffeId(subject).ok;
  switch (kind) {
    case "credential":
    case "attestation":
      return FINGERPRINT.test(subject);
    case "revocation":
      return FINGERPRINT.test(subject) || spiffe;
    case "risk":
    case "posture":
    case "behavior":
    case "grant":
      return spiffe;
  }
}

const dataFor: Record<SignalKind, fc.Arbitrary<unknown>> = {
  risk: fc.record({ level: fc.constantFrom("none", "low", "medium", "high", "critical") }),
  posture: fc.record({ status: fc.constantFrom("compliant", "non_compliant", "unknown") }),
  credential: fc.record({ state: fc.constantFrom("active", "leaked", "compromised", "revoked", "expired") }),
  revocation: fc.record({ revoked: fc.boolean(), reason: fc.string({ maxLength: 20 }), by: fc.string({ maxLength: 20 }) }),
  behavior: fc.record({ anomalies: fc.array(fc.string({ maxLength: 10 }), { maxLength: 3 }) }),
  grant: fc.record({ approvalId: fc.string(), scope: fc.string(), approver: fc.string(), usesLeft: fc.nat(5) }),
  attestation: fc.record({ signer: fc.string(), signedAt: fc.nat() }),
};

/** Subjects near every form: SPIFFE IDs good and bad, fingerprints good and bad, raw secrets. */
const subjects: fc.Arbitrary<string> = fc.oneof(
  fc.string(),
  fc.stringMatching(/^spiffe:\/\/[a-zA-Z0-9.:%@_-]{0,12}(\/[a-zA-Z0-9.%?#_-]{0,8}){0,3}\/?$/),
  fc.stringMatching(/^(sha256|SHA256|sha512):[0-9a-fA-Fg]{60,66}$/),
  fc.constantFrom(
    "spiffe://example.org/ns/a/sa/b", "spiffe://example.org", "bot", "demo-api-key-K1-0001",
    "sha256:6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b",
  ),
);

/** Signal-shaped input with a chosen subject, so the subject rule (not the shape) is what is tested. */
const shaped = fc.constantFrom(...SIGNAL_KINDS).chain((kind) => fc.record({
  id: fc.string({ minLength: 1, maxLength: 8 }),
  kind: fc.constant(kind),
  subject: subjects,
  source: fc.constant("prop"),
  observedAt: fc.nat(),
  data: dataFor[kind],
  expiresAt: fc.option(fc.nat(), { nil: undefined }),
}, { requiredKeys: ["id", "kind", "subject", "source", "observedAt", "data"] }));

function attempt(input: unknown): { signal: Signal } | { error: VigilError } {
  try {
    return { signal: parseSignal(input) };
  } catch (error) {
    if (!(error instanceof VigilError)) throw error;
    return { error };
  }
}

describe("parseSignal properties", () => {
  it("never crashes on any JSON value: a signal or an invalid_input error", () => {
    fc.assert(fc.property(fc.jsonValue(), (input) => {
      const outcome = attempt(input);
      if ("error" in outcome) expect(outcome.error.code).toBe("invalid_input");
      else expect(subjectFits(outcome.signal.kind, outcome.signal.subject)).toBe(true);
    }), { numRuns: 500 });
  });

  it("accepts a subject only in its kind's form, and never quotes one it refuses", () => {
    fc.assert(fc.property(shaped, (input) => {
      const outcome = attempt(input);
      if ("signal" in outcome) {
        expect(subjectFits(outcome.signal.kind, outcome.signal.subject)).toBe(true);
        return;
      }
      expect(outcome.error.code).toBe("invalid_input");
      if (!subjectFits(input.kind, input.subject)) {
        expect(outcome.error.message).toContain(`got ${input.subject.length} characters`);
        if (input.subject.length >= 12) expect(outcome.error.message).not.toContain(input.subject);
      }
    }), { numRuns: 2_000 });
  });

  it("never accepts a sticky value that could expire", () => {
    fc.assert(fc.property(shaped, fc.nat(), (input, nowMs) => {
      const outcome = attempt(input);
      if (!("signal" in outcome)) return;
      const signal = outcome.signal;
      const sticky = (signal.kind === "revocation") || (signal.kind === "credential" && signal.data.state !== "active" && signal.data.state !== "expired");
      if (sticky) expect(signal.expiresAt).toBeUndefined();
      if (signal.kind === "revocation" && signal.data.revoked) expect(isExpired({ ...signal, expiresAt: 0 }, nowMs)).toBe(false);
    }), { numRuns: 1_000 });
  });
});
