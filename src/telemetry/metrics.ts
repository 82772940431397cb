// Prometheus metrics for Vigil, one registry per server instance (no module-level state).
// Names follow Prometheus conventions: vigil_ prefix, base units, low-cardinality labels only
// (never a SPIFFE ID or a path as a label value).

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { HotHistogram, HotLabeledCounter } from "./hot-metrics.js";
import { OUTCOMES, type Outcome } from "../model/index.js";


export interface Metrics {
  registry: Registry;
  decisions: HotLabeledCounter<Outcome>;
  decisionDuration: HotHistogram;
  checkErrors: Counter<"reason">;
  policyReloads: Counter<"result">;
  policyRules: Gauge;
  policyLastReloadSuccess: Gauge;
  /** Would-be results of shadow rules that differ from the answer given (policy and rule names come from the policy: a closed set). */
  shadowDecisions: Counter<"policy" | "rule" | "outcome">;
  /** Refusals the sidecar-wide dry run let through, by the outcome they would have had. */
  dryRunDecisions: Counter<"outcome">;
  /** 1 while the sidecar-wide dry run is on (every request allowed). */
  dryRun: Gauge;
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
  /** Values read from the signal bus and not applied (forged, malformed, undoing a sticky state). */
  busValuesRefused: Counter<"reason">;
  /** Values read from the approvals bucket and not applied (forged, malformed, reopening a settled request). */
  approvalBusRefused: Counter<"reason">;
  /** Uses of a just-in-time grant decided on the Check path, by result (used, spent, timeout, unavailable). */
  grantClaims: Counter<"result">;
  /** Expired signals removed from memory (and, in cluster mode, from the bucket) by the sweep. */
  signalsSwept: Counter;
  /** Revocations Vigil decided that the store has not acknowledged yet (enforced locally meanwhile). */
  revocationsPending: Gauge;
  /** Revocations that found the pending backlog full (the sidecar then denies every identified request). */
  revocationsOverflowed: Counter;
  /** Signal writes refused for space: a full store (capacity) or too many queued writes (queue_full). */
  signalWritesRefused: Counter<"reason">;
  adminRequests: Counter<"result">;
  /** AuthZEN PDP requests by endpoint (evaluation, evaluations, metadata) and HTTP status. */
  authzenRequests: Counter<"endpoint" | "status">;
  /** Entities file (--entities) loads by result. */
  entitiesReloads: Counter<"result">;
  journalWriteFailures: Counter<"reason">;
  journalWritable: Gauge;
  journalCorruptRecords: Gauge;
  logLinesDropped: Counter;
  /** Notices taken by the outbox (revocation hook, CAEP SETs, approval webhooks), by channel. */
  outboxEnqueued: Counter<"channel">;
  /** Notices a receiver acknowledged (2xx). */
  outboxDelivered: Counter<"channel">;
  /** Failed delivery attempts, by channel and reason (timeout, network, http_5xx, http_429, http_4xx, redirect). */
  outboxFailures: Counter<"channel" | "reason">;
  /** Notices given up on, by channel and reason (rejected, attempts, unknown_receiver, enqueue_failed). */
  outboxDropped: Counter<"channel" | "reason">;
  /** Notices waiting in the outbox (this instance's file, or the cluster's stream). */
  outboxBacklog: Gauge;
  /** Messages on the outbox stream refused (unsealed: forged by a bus client; malformed). */
  outboxRefused: Counter<"reason">;
  /** Age of the oldest waiting notice, 0 when none waits. */
  outboxOldestAge: Gauge;
  /** From the event (a revocation, an approval opened) to the receiver's 2xx. */
  outboxDeliverySeconds: Histogram<"channel">;
  /** Behaviour anomalies reported, by kind (new_action, new_source_network, rate_spike, fan_out). */
  behaviorAnomalies: Counter<"kind">;
  /** Observations dropped because the behaviour queue was full (behavior.maxQueued). */
  behaviorDropped: Counter;
  /** Baselines forgotten to keep behavior.maxCallers (least recently seen first). */
  behaviorEvictions: Counter;
  /** Behaviour signal writes, by result (written, failed, dropped). */
  behaviorSignalWrites: Counter<"result">;
  /** Actions and networks operators accepted into baselines. */
  behaviorAccepted: Counter;
  /** Baselines held, and those still learning. */
  behaviorCallers: Gauge;
  behaviorLearning: Gauge;
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
    shadowDecisions: new Counter({
      name: "vigil_shadow_decisions_total",
      help: "Requests whose answer would differ if the policy's shadow rules were enforced, by the would-be policy, rule and outcome (not enforced).",
      labelNames: ["policy", "rule", "outcome"], registers,
    }),
    dryRunDecisions: new Counter({
      name: "vigil_dry_run_decisions_total",
      help: "Refusals the sidecar-wide dry run answered with allow, by the outcome they would have had.",
      labelNames: ["outcome"], registers,
    }),
    dryRun: new Gauge({ name: "vigil_dry_run", help: "1 while the sidecar-wide dry run is on: every judged request is allowed.", registers }),
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
    busValuesRefused: new Counter({
      name: "vigil_signal_bus_refused_total",
      help: "Values read from the signal bus and not applied, by reason (bounded set, see signals/nats-store.ts).",
      labelNames: ["reason"], registers,
    }),
    approvalBusRefused: new Counter({
      name: "vigil_approval_bus_refused_total",
      help: "Values read from the approvals bucket and not applied, by reason (unknown_key, invalid, unlawful_change, deletes_pending).",
      labelNames: ["reason"], registers,
    }),
    grantClaims: new Counter({
      name: "vigil_grant_claims_total",
      help: "Uses of a just-in-time grant decided before the Check was answered, by result (used; spent: none left or another instance took the last; timeout and unavailable: denied).",
      labelNames: ["result"], registers,
    }),
    signalsSwept: new Counter({
      name: "vigil_signals_swept_total",
      help: "Expired signals (and spent grants) removed from memory and the shared bucket by the periodic sweep.",
      registers,
    }),
    revocationsPending: new Gauge({
      name: "vigil_revocations_pending",
      help: "Revocations decided by Vigil and not yet acknowledged by the signal store; enforced on this instance meanwhile.",
      registers,
    }),
    revocationsOverflowed: new Counter({
      name: "vigil_revocations_overflowed_total",
      help: "Revocations that could not be queued because the pending backlog was full; identified requests are denied until restart.",
      registers,
    }),
    signalWritesRefused: new Counter({
      name: "vigil_signal_writes_refused_total",
      help: "Signal writes refused for space, by reason (capacity: store.maxSignals reached; queue_full: store.maxQueuedWrites).",
      labelNames: ["reason"], registers,
    }),
    adminRequests: new Counter({
      name: "vigil_admin_requests_total", help: "Admin/ingest HTTP requests by result.", labelNames: ["result"], registers,
    }),
    authzenRequests: new Counter({
      name: "vigil_authzen_requests_total",
      help: "AuthZEN PDP requests (POST /access/v1/evaluation(s), the metadata document) by endpoint and HTTP status.",
      labelNames: ["endpoint", "status"], registers,
    }),
    entitiesReloads: new Counter({
      name: "vigil_entities_reloads_total", help: "Entities file (--entities) loads by result (success, failure).", labelNames: ["result"], registers,
    }),
    journalWriteFailures: new Counter({
      name: "vigil_journal_write_failures_total",
      help: "Journal write rounds that failed (every signal write waiting in one was refused with 503), by reason.",
      labelNames: ["reason"], registers,
    }),
    journalWritable: new Gauge({
      name: "vigil_journal_writable",
      help: "1 when the embedded journal takes writes, 0 while a full, read-only or failing disk refuses them.",
      registers,
    }),
    journalCorruptRecords: new Gauge({
      name: "vigil_journal_corrupt_records",
      help: "Corrupt records found in the journal at start (dropped by --journal-repair; start refuses otherwise).",
      registers,
    }),
    logLinesDropped: new Counter({
      name: "vigil_log_lines_dropped_total",
      help: "Log and decision lines dropped because stdout could not take them (full disk, closed or stalled pipe).",
      registers,
    }),
    outboxEnqueued: new Counter({
      name: "vigil_outbox_enqueued_total", help: "Notices queued in the durable outbox, by channel (caep, approval_webhook, revocation_hook).",
      labelNames: ["channel"], registers,
    }),
    outboxDelivered: new Counter({
      name: "vigil_outbox_delivered_total", help: "Notices a receiver acknowledged with a 2xx, by channel.",
      labelNames: ["channel"], registers,
    }),
    outboxFailures: new Counter({
      name: "vigil_outbox_failures_total",
      help: "Delivery attempts that failed, by channel and reason (timeout, network, http_5xx, http_429, http_4xx, redirect).",
      labelNames: ["channel", "reason"], registers,
    }),
    outboxDropped: new Counter({
      name: "vigil_outbox_dropped_total",
      help: "Notices given up on, by channel and reason (rejected, attempts, unknown_receiver, enqueue_failed).",
      labelNames: ["channel", "reason"], registers,
    }),
    outboxBacklog: new Gauge({
      name: "vigil_outbox_backlog", help: "Notices waiting in the outbox (this instance's file; in cluster mode, the shared stream).", registers,
    }),
    outboxRefused: new Counter({
      name: "vigil_outbox_refused_total",
      help: "Messages on the cluster outbox stream dropped unsent, by reason (unsealed: not sealed by a Vigil replica; malformed).",
      labelNames: ["reason"], registers,
    }),
    outboxOldestAge: new Gauge({
      name: "vigil_outbox_oldest_age_seconds", help: "Age of the oldest notice waiting in the outbox; 0 when none waits.", registers,
    }),
    outboxDeliverySeconds: new Histogram({
      name: "vigil_outbox_delivery_seconds",
      help: "Time from the event (a revocation, an approval) to the receiver's 2xx, by channel.",
      labelNames: ["channel"], buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900], registers,
    }),
    behaviorAnomalies: new Counter({
      name: "vigil_behavior_anomalies_total",
      help: "Behaviour anomalies reported as behavior signals, by kind (new_action, new_source_network, rate_spike, fan_out).",
      labelNames: ["kind"], registers,
    }),
    behaviorDropped: new Counter({
      name: "vigil_behavior_observations_dropped_total",
      help: "Decided requests not learned from because the behaviour queue was full (behavior.maxQueued).",
      registers,
    }),
    behaviorEvictions: new Counter({
      name: "vigil_behavior_evictions_total",
      help: "Baselines forgotten to stay within behavior.maxCallers (least recently seen first); such a caller learns anew.",
      registers,
    }),
    behaviorSignalWrites: new Counter({
      name: "vigil_behavior_signal_writes_total",
      help: "Behaviour signal writes to the signal store, by result (written, failed, dropped).",
      labelNames: ["result"], registers,
    }),
    behaviorAccepted: new Counter({
      name: "vigil_behavior_accepted_total",
      help: "Actions and source networks operators accepted into baselines (POST /v1/behavior/accept).",
      registers,
    }),
    behaviorCallers: new Gauge({ name: "vigil_behavior_callers", help: "Caller baselines held in memory.", registers }),
    behaviorLearning: new Gauge({ name: "vigil_behavior_learning_callers", help: "Caller baselines still in their learning period.", registers }),
  };
  for (const channel of ["caep", "approval_webhook", "revocation_hook"]) {
    metrics.outboxEnqueued.labels(channel).inc(0);
    metrics.outboxDelivered.labels(channel).inc(0);
    for (const reason of ["rejected", "attempts", "unknown_receiver", "enqueue_failed"]) metrics.outboxDropped.labels(channel, reason).inc(0);
  }
  for (const result of ["written", "failed", "dropped"]) metrics.behaviorSignalWrites.labels(result).inc(0);
  for (const result of ["success", "failure"]) metrics.policyReloads.labels(result).inc(0);
  for (const reason of ["caller_limit", "total_limit"]) metrics.approvalsRefused.labels(reason).inc(0);
  for (const reason of ["unknown_key", "invalid", "unlawful_change", "deletes_pending"]) metrics.approvalBusRefused.labels(reason).inc(0);
  for (const result of ["used", "spent", "timeout", "unavailable"]) metrics.grantClaims.labels(result).inc(0);
  return metrics;
}

/**
 * Moves a counter up to a running total kept elsewhere (a journal's or a writer's own count),
 * for sources that count without knowing about metrics. Call at scrape time.
 */
export function counterFollower(): (counter: Counter, total: number, labels?: Record<string, string>) => void {
  const seen = new Map<string, number>();
  return (counter, total, labels = {}) => {
    const key = JSON.stringify(labels);
    const delta = total - (seen.get(key) ?? 0);
    if (delta > 0) {
      counter.inc(labels, delta);
      seen.set(key, total);
    }
  };
}
