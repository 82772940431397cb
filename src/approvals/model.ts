// The approval record: what a step-up asked for and what became of it. One schema for every place
// a record is read back from outside this process (the approvals journal, the NATS approvals
// bucket), so a record that another instance, a damaged disk or a hostile bus client wrote is
// judged by the same rules. To add a field: add it here (with its bound); the type follows.

import { z } from "zod";

export const APPROVAL_STATUSES = ["pending", "approved", "denied", "expired"] as const;
export type ApprovalStatus = typeof APPROVAL_STATUSES[number];

/** Approval ids: `apr_` and a UUID; also the record's key in the journal and the bucket. */
export const APPROVAL_ID = /^apr_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** What a step-up decision asks approval for. */
export interface OpenApproval {
  caller: string;
  /** Owner identity of the credential the caller presented, when known. */
  credentialOwner: string;
  rule: string;
  destination: string;
  resource: string;
  approvers: string[];
  grantTtlSeconds: number;
  grantUses: number;
  /**
   * What the caller tried, for the human who decides: "METHOD /path", a gRPC method or an MCP
   * tool call (decision/apply-effects.ts actionOf). Shown as an excerpt; never part of the scope.
   */
  action?: string;
  /** The deciding rule's reason. */
  reason?: string;
  /** The signals in force when the step-up was asked (a flat summary: risk, posture, credential…). */
  signals?: Record<string, string>;
}

/** Longest approver comment kept; a longer one is cut (it is the approver's text, not a caller's). */
export const MAX_COMMENT_CHARS = 1024;

// Bounds: generous for anything Vigil itself writes (excerpts are ~200 chars, scope parts at most
// 256 or a digest), small enough that a forged record cannot make an instance hold megabytes.
const text = (max: number) => z.string().max(max);
const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

export const approvalRecordSchema = z.strictObject({
  id: z.string().regex(APPROVAL_ID),
  scope: text(2_048),
  grantName: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  caller: text(2_048).min(1),
  credentialOwner: text(2_048),
  rule: text(1_024),
  destination: text(1_024),
  resource: text(1_024),
  action: text(2_048).optional(),
  reason: text(2_048).optional(),
  signals: z.record(text(128), text(2_048)).refine((r) => Object.keys(r).length <= 64, { error: "at most 64 signals" }).optional(),
  approvers: z.array(text(2_048)).max(256),
  grantTtlSeconds: z.number().int().positive().max(366 * 86_400),
  grantUses: z.number().int().positive().max(1_000_000),
  resourceDigest: z.string().regex(/^[0-9a-f]{64}$/),
  destinationDigest: z.string().regex(/^[0-9a-f]{64}$/),
  requestedAt: count,
  expiresAt: count,
  status: z.enum(APPROVAL_STATUSES),
  decidedBy: text(2_048),
  decidedAt: count,
  /** What the approver said when deciding ("" when nothing); an excerpt, audited with the decision. */
  comment: text(MAX_COMMENT_CHARS + 32),
  /** Instance that opened the request (its connection name), for the audit trail. */
  openedBy: text(256).optional(),
});

/** One approval request, pending or settled. Records are never changed in place: a change is a new record. */
export type ApprovalRequest = z.infer<typeof approvalRecordSchema>;

/** Approved, denied and expired are final: no writer may turn them back into pending or into each other. */
export function isSettled(status: ApprovalStatus): boolean {
  return status !== "pending";
}

/** The fields settling a request writes; every other field is fixed when the request opens. */
export const DECISION_FIELDS: ReadonlySet<string> = new Set(["status", "decidedBy", "decidedAt", "comment"]);

function openingFields(record: ApprovalRequest): string {
  return JSON.stringify(Object.entries(record).filter(([key]) => !DECISION_FIELDS.has(key)).sort(([a], [b]) => a.localeCompare(b)));
}

/**
 * Whether `next` may replace `held` when it comes from outside (bus, another instance): the same
 * request, word for word, and only a pending one settling. A forged "pending" over a settled
 * request would let it be approved twice (two grants); a changed approvers list, credential owner
 * or expiry would let the wrong person approve it, or approve it late.
 */
export function isLawfulChange(held: ApprovalRequest, next: ApprovalRequest): boolean {
  if (openingFields(held) !== openingFields(next)) return false;
  const sameDecision = held.status === next.status && held.decidedBy === next.decidedBy && held.decidedAt === next.decidedAt && held.comment === next.comment;
  if (isSettled(held.status)) return sameDecision;
  return next.status !== "pending" || sameDecision;
}
