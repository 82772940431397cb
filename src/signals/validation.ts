// Turns untrusted input into a Signal, or a VigilError("invalid_input") whose message names each
// offending path, so an operator can fix the write (or the seed file) without reading code. No
// message quotes a refused value: a subject written where a fingerprint belongs may be the secret.

import { VigilError } from "../errors/index.js";
import { describeIssues } from "../util/zod.js";
import { isSticky, signalSchema } from "./model.js";
import type { Signal } from "./model.js";

/** Clock skew allowed on a write's observedAt when the settings do not say (store.maxClockSkewMs). */
export const DEFAULT_MAX_CLOCK_SKEW_MS = 5 * 60_000;

/**
 * What a well-formed signal may still not carry on a write: an expiry on a sticky value (a
 * revocation or a terminal credential state), which would lift it silently when the date passed.
 * Such values end only by reinstate (revocations) or never (a leaked key is rotated instead).
 */
export function writeProblems(signal: Signal): string[] {
  if (signal.expiresAt === undefined) return [];
  if (signal.kind === "revocation") {
    return ["expiresAt: a revocation cannot expire; it is lifted only by an audited reinstate"];
  }
  if (isSticky(signal)) {
    return [`expiresAt: a ${signal.kind} in a terminal state cannot expire; rotate the credential instead`];
  }
  return [];
}

/** The problem with an observedAt ahead of `nowMs` by more than `maxSkewMs`, if it is. */
export function futureProblem(observedAt: number, nowMs: number, maxSkewMs: number): string | undefined {
  if (observedAt <= nowMs + maxSkewMs) return undefined;
  return `observedAt: ${Math.ceil((observedAt - nowMs) / 1000)} s ahead of this instance's clock; `
    + `at most ${Math.floor(maxSkewMs / 1000)} s of clock skew is allowed`;
}

/** Validates a write: shape, subject form per kind, and no expiry on a sticky value. */
export function parseSignal(input: unknown): Signal {
  const parsed = signalSchema.safeParse(input);
  if (!parsed.success) {
    throw new VigilError(
      "invalid_input",
      `invalid signal: ${describeIssues(parsed.error.issues).join("; ")}`,
      { cause: parsed.error },
    );
  }
  const problems = writeProblems(parsed.data);
  if (problems.length > 0) throw new VigilError("invalid_input", `invalid signal: ${problems.join("; ")}`);
  return parsed.data;
}
