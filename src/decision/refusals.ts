// The refusals phase: what overrides the policy after it answered. Each refusal is a deny that
// no rule can lift, so removing a guard rule from a policy cannot let such a request through:
//   1. identity problems (identity.onProblem: deny): an invalid principal, an ambiguous credential;
//   2. no destination, a path not in normal form, or a body that cannot be judged (jsonrpc.ts: not
//      JSON-RPC on an MCP route, too large, a batch past its limit);
//   3. a revocation backlog that overflowed: any identified caller may be the one not held.
// A rule's own deny keeps its name and a revoke stays a revoke (with its effects: a leaked key
// behind a decoy is still revoked); allow, delay, step_up and "no rule matched" become the deny.

import type { Caller } from "../identity/index.js";
import { OUTCOME_SEVERITY } from "../model/index.js";
import type { PolicyResult } from "../policy/types.js";

/** The rule a decision names when identity problems denied it (identity.onProblem: deny). */
export const IDENTITY_RULE = "vigil/identity";

/** The reason a request is refused while the revocation backlog is overflowed. */
export const BACKLOG_FULL_REASON = "revocation backlog full";

/** What the refusals look at besides the policy's result. */
export interface RefusalFacts {
  caller: Caller;
  /** Why the request has no destination (createDestinationResolver), or undefined. */
  destinationProblem: string | undefined;
  /** Why the path is not in normal form (pathProblem of the path without its query), or undefined. */
  pathProblem: string | undefined;
  /** Why the JSON-RPC body cannot be judged (readJsonRpc's "refused"), or undefined. */
  rpcProblem: string | undefined;
  /** Effects.overflowed: a revocation could not be queued. */
  backlogFull: boolean;
}

/** The policy's result with every refusal applied, most restrictive wins. */
export function applyRefusals(result: PolicyResult, facts: RefusalFacts): PolicyResult {
  const { caller } = facts;
  if (caller.refused && !(result.outcome === "revoke" || (result.outcome === "deny" && result.rule !== ""))) {
    result = {
      outcome: "deny",
      rule: IDENTITY_RULE,
      reason: `identity refused: ${caller.problems.map((p) => p.message).join("; ")}`,
      revoke: result.revoke,
      privileged: result.privileged,
    };
  }
  // A deny that takes part in most-restrictive-wins like any rule's (guards still see the request;
  // a revoke stays a revoke).
  const refusal = facts.destinationProblem ?? facts.pathProblem ?? facts.rpcProblem;
  if (refusal !== undefined && (OUTCOME_SEVERITY[result.outcome] < OUTCOME_SEVERITY.deny || result.rule === "")) {
    result = { outcome: "deny", rule: "", reason: refusal, revoke: [], privileged: result.privileged };
  }
  if (facts.backlogFull && OUTCOME_SEVERITY[result.outcome] < OUTCOME_SEVERITY.deny
    && (caller.spiffeId !== "" || caller.credentials.length > 0)) {
    result = { outcome: "deny", rule: "", reason: BACKLOG_FULL_REASON, revoke: [], privileged: result.privileged };
  }
  return result;
}
