// The outcomes a decision can have. Policies produce them, the pipeline combines them, metrics
// count them and the transport puts them on Envoy's wire: every layer takes them from here.

/** Every outcome a decision can have. */
export const OUTCOMES = ["allow", "deny", "step_up", "delay", "revoke"] as const;
export type Outcome = (typeof OUTCOMES)[number];

/** Most restrictive first: revoke > deny > step_up > delay > allow. */
export const OUTCOME_SEVERITY: Readonly<Record<Outcome, number>> = {
  allow: 0,
  delay: 1,
  step_up: 2,
  deny: 3,
  revoke: 4,
};

export function mostRestrictive(a: Outcome, b: Outcome): Outcome {
  return OUTCOME_SEVERITY[a] >= OUTCOME_SEVERITY[b] ? a : b;
}
