// Prometheus metrics for Vigil, one registry per server instance (no module-level state).
// Names follow Prometheus conventions: vigil_ prefix, base units, low-cardinality labels only
// (never a SPIFFE ID or a path as a label value).

import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import { HotHistogram, HotLabeledCounter } from "./hot-metrics.js";
import { OUTCOMES, type Outcome } from "../decision/request.js";


export interface Metrics {
  registry: Registry;
  decisions: HotLabeledCounter<Outcome>;
  decisionDuration: HotHistogram;
  checkErrors: Counter<"reason">;
  policyReloads: Counter<"result">;
  policyRules: Gauge;
  policyLastReloadSuccess: Gauge;
  signalsWritten: Counter<"kind" | "source">;
  signalsRejected: Counter<"reason">;
  signalsFresh: Gauge;
  signalsLastHeardAge: Gauge;
  signalSubjects: Gauge;
  ssfEvents: Counter<"result" | "event">;
  revocations: Counter<"target">;
  approvalsPending: Gauge;
  approvalsResolved: Counter<"result">;
  approvalsRefused: Counter<"reason">;
  effectsFailed: Counter<"effect">;
  adminRequests: Counter<"result">;
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: "vigil_" });
  const registers = [registry];
  const metrics: Metrics = {
    registry,
    decisions: new HotLabeledCounter({
      name: "vigil_decisions_total", help: "Check decisions by outcome.", label: "outcome", values: OUTCOMES, registers,
    }),
    decisionDuration: new HotHistogram({
      name: "vigil_decision_duration_seconds",
      help: "Time Vigil spends deciding one Check (identity, signals, policy, effects queued).",
      buckets: [0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05],
      registers,
    }),
    checkErrors: new Counter({
      name: "vigil_check_errors_total",
      help: "Checks that failed closed because of bad input or an internal error.",
      labelNames: ["reason"], registers,
    }),
    policyReloads: new Counter({
      name: "vigil_policy_reloads_total", help: "Policy loads by result (success, failure).",
      labelNames: ["result"], registers,
    }),
    policyRules: new Gauge({ name: "vigil_policy_rules", help: "Rules in the active policy.", registers }),
    policyLastReloadSuccess: new Gauge({
      name: "vigil_policy_last_reload_success",
      help: "1 when the last policy load attempt succeeded, 0 when the active policy is an older good one.",
      registers,
    }),
    signalsWritten: new Counter({
      name: "vigil_signals_written_total", help: "Signals accepted by this instance.",
      labelNames: ["kind", "source"], registers,
    }),
    signalsRejected: new Counter({
      name: "vigil_signals_rejected_total", help: "Signal writes refused, by reason.",
      labelNames: ["reason"], registers,
    }),
    signalsFresh: new Gauge({
      name: "vigil_signals_fresh", help: "1 when signals are fresh (bus heard within the bound), else 0.", registers,
    }),
    signalsLastHeardAge: new Gauge({
      name: "vigil_signals_last_heard_age_seconds", help: "Seconds since the signal bus was last heard from.", registers,
    }),
    signalSubjects: new Gauge({ name: "vigil_signal_keys", help: "Signal keys held in memory.", registers }),
    ssfEvents: new Counter({
      name: "vigil_ssf_events_total", help: "Security Event Tokens received, by result and event type (short name).",
      labelNames: ["result", "event"], registers,
    }),
    revocations: new Counter({
      name: "vigil_revocations_total", help: "Revocations started by Vigil, by target.", labelNames: ["target"], registers,
    }),
    approvalsPending: new Gauge({ name: "vigil_approvals_pending", help: "Step-up approvals awaiting a human.", registers }),
    approvalsResolved: new Counter({
      name: "vigil_approvals_resolved_total", help: "Approvals resolved, by result.", labelNames: ["result"], registers,
    }),
    approvalsRefused: new Counter({
      name: "vigil_approvals_refused_total",
      help: "Step-ups answered without a new approval request because a cap was reached (caller_limit, total_limit).",
      labelNames: ["reason"], registers,
    }),
    effectsFailed: new Counter({
      name: "vigil_effect_failures_total", help: "Side effects of decisions that failed and were retried or dropped.",
      labelNames: ["effect"], registers,
    }),
    adminRequests: new Counter({
      name: "vigil_admin_requests_total", help: "Admin/ingest HTTP requests by result.", labelNames: ["result"], registers,
    }),
  };
  for (const result of ["success", "failure"]) metrics.policyReloads.labels(result).inc(0);
  for (const reason of ["caller_limit", "total_limit"]) metrics.approvalsRefused.labels(reason).inc(0);
  return metrics;
}
