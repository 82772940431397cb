// What an admin may do, once, for every surface that offers it: the JSON admin API (server.ts)
// and the console (transport/console/). Each action checks the holder's scope, counts, writes the
// audit line and turns store and book refusals into the errors both surfaces show. A refused
// subject is never echoed (it may be a raw secret pasted where a fingerprint belongs).

import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { ApprovalBook, ApprovalRequest } from "../../approvals/book.js";
import type { AdminScope } from "../../config/index.js";
import { VigilError } from "../../errors/index.js";
import type { Signal } from "../../signals/model.js";
import type { PutResult, SignalStore } from "../../signals/store.js";
import type { Metrics } from "../../telemetry/metrics.js";
import { signalFromRequest, type ReinstateRequest, type SignalRequest } from "./admin-requests.js";
import { requireScope, type AdminPrincipal } from "./auth.js";

export interface AdminActionsOptions {
  store: SignalStore;
  approvals: ApprovalBook;
  metrics: Metrics;
  logger: Logger;
  now: () => number;
  maxClockSkewMs: number;
  /** Told after a reinstate succeeded (the CAEP transmitter tells its receivers). */
  onReinstated?: (reinstated: Reinstated) => void;
}

/** A revocation an operator lifted, from the admin API or the console. */
export interface Reinstated {
  subject: string;
  by: string;
  reason: string;
  /** Unique per reinstate: one notice per receiver. */
  eventId: string;
  at: number;
}

export interface AdminActions {
  /** Throws VigilError("forbidden") (and counts it) when the holder lacks the scope. */
  authorize(principal: AdminPrincipal, scope: AdminScope): void;
  /** Writes one parsed signal request as the holder; needs `signals:write`. */
  putSignal(request: SignalRequest, principal: AdminPrincipal, at?: string): Promise<PutResult>;
  /** Lifts a revocation, audited; needs `signals:reinstate`. */
  reinstate(request: ReinstateRequest, principal: AdminPrincipal): Promise<PutResult>;
  /** Approves a pending step-up and writes its grant; needs `approvals:decide`. */
  approve(id: string, principal: AdminPrincipal, comment?: string): Promise<{ approval: ApprovalRequest; grant: Signal }>;
  /** Denies a pending step-up; needs `approvals:decide`. */
  deny(id: string, principal: AdminPrincipal, comment?: string): Promise<ApprovalRequest>;
}

export function createAdminActions(options: AdminActionsOptions): AdminActions {
  const { store, approvals, metrics } = options;
  const log = options.logger.child({ component: "admin" });

  function authorize(principal: AdminPrincipal, scope: AdminScope): void {
    try {
      requireScope(principal, scope);
    } catch (err) {
      metrics.adminRequests.labels("forbidden").inc();
      throw err;
    }
  }

  /**
   * The ApprovalBook decides who may approve (a named approver, never the caller or its
   * credential's owner) and answers a refusal "conflict", as it does a request already decided.
   * A conflict on a request still pending can only be a refused approver: forbidden.
   */
  async function refusedApproverIsForbidden<T>(id: string, decide: () => Promise<T>): Promise<T> {
    try {
      return await decide();
    } catch (err) {
      const error = VigilError.from(err);
      if (error.code === "conflict" && approvals.get(id)?.status === "pending") {
        metrics.adminRequests.labels("forbidden").inc();
        throw new VigilError("forbidden", error.message, { cause: err });
      }
      throw error;
    }
  }

  return {
    authorize,

    async putSignal(request, principal, at = "") {
      authorize(principal, "signals:write");
      try {
        const signal = signalFromRequest(request, { by: principal.name, nowMs: options.now(), maxClockSkewMs: options.maxClockSkewMs }, at);
        const result = await store.put(signal);
        metrics.signalsWritten.labels(result.signal.kind, "admin").inc();
        log.info({ kind: result.signal.kind, subject: result.signal.subject, status: result.status, by: principal.name }, "signal put");
        return result;
      } catch (err) {
        const error = VigilError.from(err);
        metrics.signalsRejected.labels(error.code).inc();
        throw scrubbed(error, request.subject);
      }
    },

    async reinstate(request, principal) {
      authorize(principal, "signals:reinstate");
      let result: PutResult;
      try {
        result = await store.reinstate(request.subject, principal.name, request.reason);
      } catch (err) {
        const error = VigilError.from(err);
        if (error.code === "not_found") throw new VigilError("not_found", "no revocation is held for this subject", { cause: err });
        throw scrubbed(error, request.subject);
      }
      log.warn({ subject: request.subject, by: principal.name, reason: request.reason, status: result.status }, "revocation lifted by reinstate");
      options.onReinstated?.({ subject: request.subject, by: principal.name, reason: request.reason, eventId: `reinstate-${randomUUID()}`, at: options.now() });
      return result;
    },

    async approve(id, principal, comment = "") {
      authorize(principal, "approvals:decide");
      const decided = await refusedApproverIsForbidden(id, () => approvals.approve(id, principal.name, comment));
      metrics.approvalsResolved.labels("approved").inc();
      log.warn({ approval_id: id, by: principal.name, caller: decided.approval.caller, rule: decided.approval.rule, comment: decided.approval.comment }, "step-up approved");
      return decided;
    },

    async deny(id, principal, comment = "") {
      authorize(principal, "approvals:decide");
      const approval = await refusedApproverIsForbidden(id, () => approvals.deny(id, principal.name, comment));
      metrics.approvalsResolved.labels("denied").inc();
      log.info({ approval_id: id, by: principal.name, comment: approval.comment }, "step-up denied");
      return approval;
    },
  };
}

/**
 * A refused write's error without the subject in its message: the subject may be a raw secret
 * pasted where a fingerprint belongs, and the answer must not carry it back.
 */
export function scrubbed(error: VigilError, subject: string): VigilError {
  if (error.code !== "invalid_input" || subject === "" || !error.message.includes(subject)) return error;
  return new VigilError(error.code, error.message.replaceAll(subject, "(the subject)"), { cause: error.cause });
}
