// The effects phase: what a decision starts besides its answer. A step_up uses an approved
// just-in-time grant (the decision becomes allow) or opens an approval request; a revoke, or a
// rule's `revoke:` list, queues revocations. Memory only: Effects makes them durable off the
// Check path, ApprovalBook.open is synchronous, and so is store.useGrant except in cluster mode
// for a caller that holds a grant (its use is decided on the bus before the answer).

import { scopeOf, type ApprovalBook, type ApprovalScope, type OpenApproval } from "../approvals/book.js";
import type { Caller } from "../identity/index.js";
import type { Decision, RequestView, SignalsView } from "../model/index.js";
import type { PolicyResult } from "../policy/types.js";
import type { SignalStore } from "../signals/store.js";
import type { Effects } from "./effects.js";
import { resourceOf } from "./request-view.js";
import type { SignalsRead } from "./signals.js";

export interface EffectsDeps {
  store: SignalStore;
  approvals: ApprovalBook;
  effects: Effects;
}

/** What the effects phase reads of the earlier phases. */
export interface EffectsInput {
  result: PolicyResult;
  caller: Caller;
  view: RequestView;
  signals: SignalsRead;
  at: number;
  /**
   * False for an AuthZEN evaluation: its subject is what a PEP asserts, not a caller proven by
   * mTLS, so a question about it must not revoke it (the answer still says revoke).
   */
  revocations?: boolean;
}

/** The reason of a step_up that an approved grant turned into an allow. */
export const GRANT_REASON = "allowed by an approved just-in-time grant";

const DEFAULT_STEP_UP = Object.freeze({ approvers: [] as string[], grantTtlSeconds: 900, grantUses: 1 });

/**
 * Starts the decision's effects; may turn a step_up into an allow or give it an approval id.
 * Returns a promise only when a caller holding a grant must wait for the bus to decide its use
 * (cluster mode: a compare-and-set); the decision is final once it resolves, and it never rejects.
 */
export function applyEffects(deps: EffectsDeps, decision: Decision, input: EffectsInput): Promise<void> | undefined {
  const { result } = input;
  if (input.revocations !== false && (result.outcome === "revoke" || result.revoke.length > 0)) revoke(deps.effects, decision, input);
  return result.outcome === "step_up" ? stepUp(deps, decision, input) : undefined;
}

function stepUp(deps: EffectsDeps, decision: Decision, input: EffectsInput): Promise<void> | undefined {
  const { result, caller, view, at } = input;
  if (caller.spiffeId === "") return undefined; // nobody to grant anything to: stays step_up without approval
  const request = { caller: caller.spiffeId, rule: result.rule, destination: view.destination, resource: resourceOf(view) };
  const scoped = scopeOf(request);
  const used = deps.store.useGrant(caller.spiffeId, scoped.grantName, at);
  if (typeof used === "boolean") {
    grantOrAsk(deps, decision, input, used, request, scoped);
    return undefined;
  }
  // A failure to decide the use is a use not granted: the request stays step_up (fail closed).
  return used.then(
    (granted) => { grantOrAsk(deps, decision, input, granted, request, scoped); },
    () => { grantOrAsk(deps, decision, input, false, request, scoped); },
  );
}

function grantOrAsk(
  deps: EffectsDeps, decision: Decision, { result, view, signals }: EffectsInput, granted: boolean,
  request: Pick<OpenApproval, "caller" | "rule" | "destination" | "resource">, scoped: ApprovalScope,
): void {
  if (granted) {
    decision.outcome = "allow";
    decision.reason = GRANT_REASON;
    return;
  }
  const params = result.stepUp ?? DEFAULT_STEP_UP;
  const approval = deps.approvals.open({
    ...request,
    credentialOwner: signals.view.credential_owner,
    approvers: params.approvers,
    grantTtlSeconds: params.grantTtlSeconds,
    grantUses: params.grantUses,
    action: actionOf(view),
    reason: result.reason,
    signals: signalsSummary(signals.view),
  }, scoped);
  if (approval !== undefined) decision.approvalId = approval.id;
}

/**
 * What the caller tried, in the words an approver reads: an MCP tool call, a gRPC method, or
 * "METHOD /path" (without the query, which may carry secrets).
 */
export function actionOf(view: RequestView): string {
  if (view.mcp_tool !== "") return `${view.mcp_method === "" ? "tools/call" : view.mcp_method} ${view.mcp_tool}`;
  if (view.grpc_service !== "") return `${view.grpc_service}/${view.grpc_method}`;
  return `${view.method} ${view.path_only}`;
}

/**
 * The signals in force, flattened for an approver: only what was present (a neutral value is
 * left out), never a credential fingerprint's secret (the view holds none).
 */
export function signalsSummary(view: SignalsView): Record<string, string> {
  const out: Record<string, string> = {};
  if (!view.fresh) out.fresh = "false (signals stale)";
  if (view.risk !== "none") out.risk = view.risk_reason === "" ? view.risk : `${view.risk} (${view.risk_reason})`;
  if (view.posture !== "unknown") out.posture = view.posture;
  if (view.credential !== "none") out.credential = view.credential_overdue ? `${view.credential} (rotation overdue)` : view.credential;
  if (view.credential_owner !== "") out.credential_owner = view.credential_owner;
  if (view.revoked) out.revoked = "true";
  if (view.anomalies.length > 0) out.anomalies = view.anomalies.join(", ");
  if (view.attested) out.attested = view.attestation_signer === "" ? "true" : `by ${view.attestation_signer}`;
  return out;
}

function revoke(effects: Effects, decision: Decision, { result, caller, signals, at }: EffectsInput): void {
  const targets = result.outcome === "revoke" && result.revoke.length === 0
    ? [caller.credentials.length > 0 ? "credential" as const : "identity" as const]
    : result.revoke;
  for (const target of targets) {
    // A credential revocation targets the presented credentials that stand out as bad (a leaked
    // key behind a decoy, not the decoy); when none does (the rule fired on risk, say), every
    // presented credential, since the caller showed them all.
    const subjects = target === "identity"
      ? (caller.spiffeId === "" ? [] : [caller.spiffeId])
      : signals.suspects.length > 0 ? signals.suspects : caller.credentials.map((c) => c.fingerprint);
    for (const subject of subjects) {
      // The signals phase read every one of these subjects' revocation state (held by the store,
      // or queued here: Effects tells those apart in memory), so the store is not read again.
      const held = signals.revoked.includes(subject);
      effects.revoke({ subject, target, reason: result.reason, decisionId: decision.id, caller: caller.spiffeId, rule: result.rule, at }, held);
    }
  }
}
