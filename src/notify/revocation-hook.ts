// What a revocation or a reinstate tells the outside, and the original outbound revocation hook
// (revocationHookUrl): the same JSON body it always had, now queued in the durable outbox and
// retried from there instead of fired and forgotten.

import { noticeId, type Destination, type Notice } from "../outbox/index.js";

/** A revocation Vigil made durable, or one an operator lifted. */
export interface RevocationChange {
  change: "revoke" | "reinstate";
  /** Credential fingerprint or SPIFFE ID. */
  subject: string;
  target: "credential" | "identity";
  reason: string;
  /** The decision that revoked (revoke) or the reinstate's own id: one notice per receiver per event. */
  eventId: string;
  /** The caller whose request was revoked ("" for a reinstate). */
  caller: string;
  /** The rule that revoked ("" for a reinstate). */
  rule: string;
  /** Who: `vigil:<rule>` or the admin token's name. */
  by: string;
  at: number;
}

/** The revocation hook's receiver name (one URL, so one name). */
export const HOOK_RECEIVER = "hook";

/** The hook's notice for a revocation; the hook has never been told of reinstates. */
export function revocationHookNotice(change: RevocationChange): Notice | undefined {
  if (change.change !== "revoke") return undefined;
  const body = JSON.stringify({
    type: "vigil.revocation", decision_id: change.eventId, target: change.target, subject: change.subject,
    caller: change.caller, rule: change.rule, reason: change.reason, at: new Date(change.at).toISOString(),
  });
  return {
    id: noticeId("revocation_hook", HOOK_RECEIVER, `${change.eventId}:${change.target}:${change.subject}`),
    channel: "revocation_hook", receiver: HOOK_RECEIVER, createdAt: change.at, contentType: "application/json", body,
  };
}

export function revocationHookDestination(url: string): Destination {
  return { url, headers: () => ({}) };
}
