// The record phase: one Check counted (vigil_decisions_total, the duration histogram, malformed
// requests) and written as one decision line. It reads what the earlier phases built; nothing is
// derived again here.

import type { Caller } from "../identity/index.js";
import type { AccessRequest, Decision, RequestView } from "../model/index.js";
import type { DecisionLog } from "../telemetry/decision-log.js";
import type { Metrics } from "../telemetry/metrics.js";

export interface RecordSinks {
  metrics?: Metrics | undefined;
  decisionLog?: DecisionLog | undefined;
}

/** What a decision line is made of. view and caller are absent for a malformed request. */
export interface Recorded {
  request: AccessRequest;
  decision: Decision;
  view?: RequestView | undefined;
  caller?: Caller | undefined;
}

const NO_STRINGS: readonly string[] = Object.freeze([]);

export function recordDecision(sinks: RecordSinks, { request, decision, view, caller }: Recorded): void {
  const { metrics, decisionLog } = sinks;
  if (request.malformed.length > 0) metrics?.checkErrors.labels("malformed").inc();
  metrics?.decisions.inc(decision.outcome);
  const shadow = decision.shadow;
  if (shadow !== undefined && metrics !== undefined) {
    const slash = shadow.rule.indexOf("/");
    metrics.shadowDecisions.labels(slash < 0 ? "" : shadow.rule.slice(0, slash), slash < 0 ? shadow.rule : shadow.rule.slice(slash + 1), shadow.outcome).inc();
  }
  if (decision.wouldBe !== undefined) metrics?.dryRunDecisions.labels(decision.wouldBe.outcome).inc();
  metrics?.decisionDuration.observe(decision.durationNs / 1e9);
  if (decisionLog === undefined) return;
  const problems = caller?.problems ?? [];
  decisionLog({
    decision_id: decision.id,
    caller: decision.caller,
    credential: decision.credentialFingerprint,
    method: request.method,
    host: view?.host ?? request.host,
    destination: view?.destination ?? "",
    path: view?.path_only ?? "",
    tool: view?.mcp_tool ?? "",
    context: request.contextExtensions,
    outcome: decision.outcome,
    rule: decision.rule,
    reason: decision.reason,
    identity_problems: problems.length === 0 ? NO_STRINGS : problems.map((p) => p.code),
    latency_us: Math.round(decision.durationNs / 1000),
    policy_version: decision.policyVersion ?? "",
    controls: decision.controls ?? NO_STRINGS,
    matched_rules: decision.matched ?? NO_STRINGS,
    shadow_outcome: shadow?.outcome ?? "",
    shadow_rule: shadow?.rule ?? "",
    dry_run: decision.wouldBe !== undefined,
    would_outcome: decision.wouldBe?.outcome ?? "",
    would_rule: decision.wouldBe?.rule ?? "",
  });
}
