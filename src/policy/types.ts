// What the policy layer takes and gives. The decision pipeline builds a PolicyInput (model/views.ts)
// from the request, the resolved caller and the signal store; a CompiledPolicy turns it into one result.

import type { Outcome } from "../model/outcome.js";
import type { HeaderSelection } from "../model/request.js";
import type { PolicyInput } from "../model/views.js";

export type { ActionView, EntityView, PolicyInput, RequestView, SignalsView, SourceView } from "../model/views.js";

export interface StepUpParams {
  approvers: string[];
  grantTtlSeconds: number;
  grantUses: number;
}

export interface PolicyResult {
  outcome: Outcome;
  /** Name of the deciding rule, as "<policy>/<rule>"; "" when nothing matched (deny). */
  rule: string;
  /** Reason safe to show the caller. */
  reason: string;
  /** For delay. */
  retryAfterSeconds?: number;
  /** For step_up. */
  stepUp?: StepUpParams;
  /** Revocations the deciding rule starts, besides its outcome (e.g. deny + revoke credential). */
  revoke: ("credential" | "identity")[];
  /** Whether the matched action is privileged (from the policy); used for logs/metrics. */
  privileged: boolean;
  /** Controls the deciding rule enforces (its `controls:`); absent or empty for none. */
  controls?: readonly string[];
}

/** One rule as operators read it (the console's policy page, `vigil validate`). */
export interface RuleSummary {
  /** "<policy>/<rule>". */
  id: string;
  outcome: Outcome;
  description: string;
  destinations: readonly string[];
  /** HTTP methods, gRPC service, MCP tools and paths the rule matches, in words ("" = any). */
  matches: string;
  /** Whether it has a CEL condition (`when`). */
  conditional: boolean;
  privileged: boolean;
  approvers: readonly string[];
  /** Evaluated and logged, never enforced (`shadow: true` on the rule or its policy). */
  shadow: boolean;
  /** Controls the rule enforces (its `controls:`). */
  controls: readonly string[];
}

export interface CompiledPolicy {
  /** Number of rules compiled. */
  readonly ruleCount: number;
  /** Every rule in document order. */
  readonly rules: readonly RuleSummary[];
  /** Content hash of the documents compiled (for logs and /readyz). */
  readonly version: string;
  /**
   * The request headers the rules' conditions can read, shadow rules included (found at compile
   * time, cel-refs.ts); absent means every header.
   */
  readonly headers?: HeaderSelection;
  /**
   * Whether any condition (shadow rules included) can read `subject`, `action` or `resource`;
   * false lets the caller pass placeholder entities. Absent means it may.
   */
  readonly readsEntities?: boolean;
  evaluate(input: PolicyInput): PolicyResult;
  /**
   * Every rule that matches the request ("<policy>/<rule>"), most restrictive first: what a
   * denial's decision line and `vigil check` show. Evaluates every candidate rule (evaluate
   * stops early), so it is meant for refusals and tools, not for every allow.
   */
  explain?(input: PolicyInput): string[];
  /** Whether the policy holds shadow rules (rules or policies marked `shadow: true`). */
  readonly hasShadow?: boolean;
  /**
   * The result the policy would give if its shadow rules were enforced, when that differs from
   * `enforced` (another outcome or deciding rule); undefined when it would not, or there are none.
   */
  wouldBe?(input: PolicyInput, enforced: PolicyResult): PolicyResult | undefined;
}
