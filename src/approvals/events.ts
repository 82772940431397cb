// What happened to an approval, for whoever tells people about it (the notification outbox). An
// event is fired by the one instance whose write made it happen (the create of the record, or the
// compare-and-set that settled it), after that write is durable: once per event, cluster-wide.

import type { ApprovalRequest, ApprovalStatus } from "./model.js";

export type ApprovalEventType = "opened" | "decided";

export interface ApprovalEvent {
  type: ApprovalEventType;
  /** The approval id (apr_…). */
  approvalId: string;
  caller: string;
  /** What the caller tried ("POST /deploy", an MCP tool call); destination and resource when not known. */
  action: string;
  rule: string;
  /** Opened: the step-up's reason. Decided: who settled it and how ("approved by alice"). */
  reason: string;
  /** The status after the event: pending for opened; approved, denied or expired for decided. */
  status: ApprovalStatus;
  /** Who decided ("" for opened and for an expiry). */
  by: string;
  /** When it happened (ms since the epoch). */
  at: number;
  /** The whole record after the event. */
  approval: ApprovalRequest;
}

export type ApprovalEventListener = (event: ApprovalEvent) => void;

/** The event for a record that was just opened or settled. */
export function approvalEvent(type: ApprovalEventType, approval: ApprovalRequest, at: number): ApprovalEvent {
  const reason = type === "opened"
    ? approval.reason ?? ""
    : approval.status === "expired" ? "expired without a decision" : `${approval.status} by ${approval.decidedBy}`;
  return {
    type,
    approvalId: approval.id,
    caller: approval.caller,
    action: approval.action ?? `${approval.destination} ${approval.resource}`.trim(),
    rule: approval.rule,
    reason,
    status: approval.status,
    by: type === "decided" ? approval.decidedBy : "",
    at,
    approval,
  };
}
