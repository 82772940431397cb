// Step-up approvals and the JIT grants they produce. A step_up decision opens one approval
// request per caller + rule + destination + resource (idempotent while pending); a human
// approves it through the authenticated admin API, which writes a `grant` signal for the caller
// (durable, and in cluster mode visible to every sidecar). The next matching request uses the
// grant. An approver can never approve a request they, or the identity that owns it, made.

import { createHash, randomUUID } from "node:crypto";
import type { SignalStore } from "../signals/store.js";
import type { Signal } from "../signals/model.js";
import { VigilError } from "../errors/index.js";

export type ApprovalStatus = "pending" | "approved" | "denied" | "expired";

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
}

export interface ApprovalRequest extends OpenApproval {
  id: string;
  /** caller|rule|destination|resource: what a grant from this approval covers. */
  scope: string;
  /** Grant name derived from the scope (the key a grant is stored under). */
  grantName: string;
  requestedAt: number;
  expiresAt: number;
  status: ApprovalStatus;
  decidedBy: string;
  decidedAt: number;
}

/** The scope string a grant covers. */
export function approvalScope(caller: string, rule: string, destination: string, resource: string): string {
  return `${caller}|${rule}|${destination}|${resource}`;
}

/** Short, key-safe name for a scope (NATS KV keys have a restricted charset). */
export function grantNameFor(scope: string): string {
  return createHash("sha256").update(scope).digest("base64url").slice(0, 32);
}

export interface ApprovalBookOptions {
  store: SignalStore;
  /** How long a pending request waits for a human. */
  pendingTtlMs?: number;
  /** Bound on pending requests held, so a flood of step-ups cannot exhaust memory. */
  maxPending?: number;
  now?: () => number;
  onChange?: (pending: number) => void;
}

export class ApprovalBook {
  readonly #store: SignalStore;
  readonly #pendingTtlMs: number;
  readonly #maxPending: number;
  readonly #now: () => number;
  readonly #onChange: (pending: number) => void;
  readonly #byId = new Map<string, ApprovalRequest>();
  readonly #pendingByScope = new Map<string, ApprovalRequest>();

  constructor(options: ApprovalBookOptions) {
    this.#store = options.store;
    this.#pendingTtlMs = options.pendingTtlMs ?? 3_600_000;
    this.#maxPending = options.maxPending ?? 10_000;
    this.#now = options.now ?? Date.now;
    this.#onChange = options.onChange ?? (() => undefined);
  }

  /**
   * Opens (or returns the pending) approval request for a scope. Synchronous and memory-only:
   * the Check path calls it. Returns undefined when the book is full (the caller still gets
   * step_up, without an approval id, and the condition is visible in metrics).
   */
  open(request: OpenApproval): ApprovalRequest | undefined {
    const now = this.#now();
    const scope = approvalScope(request.caller, request.rule, request.destination, request.resource);
    const existing = this.#pendingByScope.get(scope);
    if (existing !== undefined && existing.expiresAt > now) return existing;
    if (existing !== undefined) this.#expire(existing);
    if (this.#pendingByScope.size >= this.#maxPending) this.#sweep(now);
    if (this.#pendingByScope.size >= this.#maxPending) return undefined;
    const approval: ApprovalRequest = {
      id: `apr_${randomUUID()}`,
      scope,
      grantName: grantNameFor(scope),
      ...request,
      requestedAt: now,
      expiresAt: now + this.#pendingTtlMs,
      status: "pending",
      decidedBy: "",
      decidedAt: 0,
    };
    this.#byId.set(approval.id, approval);
    this.#pendingByScope.set(scope, approval);
    this.#onChange(this.#pendingByScope.size);
    return approval;
  }

  get(id: string): ApprovalRequest | undefined {
    const approval = this.#byId.get(id);
    if (approval?.status === "pending" && approval.expiresAt <= this.#now()) this.#expire(approval);
    return approval;
  }

  list(status?: ApprovalStatus): ApprovalRequest[] {
    this.#sweep(this.#now());
    return [...this.#byId.values()].filter((a) => status === undefined || a.status === status);
  }

  get pendingCount(): number {
    return this.#pendingByScope.size;
  }

  /**
   * Approves a pending request as `approver` and writes the grant durably. Refuses an approver
   * who is the caller, the owner of the caller's credential, or not among the rule's approvers.
   */
  async approve(id: string, approver: string): Promise<{ approval: ApprovalRequest; grant: Signal }> {
    const approval = this.#decidable(id, approver);
    const now = this.#now();
    const result = await this.#store.put({
      id: `grant:${approval.id}`,
      kind: "grant",
      subject: approval.caller,
      name: approval.grantName,
      source: `approval:${approver}`,
      observedAt: now,
      expiresAt: now + approval.grantTtlSeconds * 1000,
      data: { approvalId: approval.id, scope: approval.scope, approver, usesLeft: approval.grantUses },
    });
    this.#settle(approval, "approved", approver, now);
    return { approval, grant: result.signal };
  }

  deny(id: string, approver: string): ApprovalRequest {
    const approval = this.#decidable(id, approver);
    this.#settle(approval, "denied", approver, this.#now());
    return approval;
  }

  #decidable(id: string, approver: string): ApprovalRequest {
    const approval = this.get(id);
    if (approval === undefined) throw new VigilError("not_found", `no approval request ${id}`);
    if (approval.status !== "pending") throw new VigilError("conflict", `approval ${id} is already ${approval.status}`);
    if (approver === "" ) throw new VigilError("unauthenticated", "approver identity unknown");
    if (approver === approval.caller || (approval.credentialOwner !== "" && approver === approval.credentialOwner)) {
      throw new VigilError("conflict", "an approver cannot approve a request made by themselves or their own identity");
    }
    if (approval.approvers.length > 0 && !approval.approvers.includes(approver)) {
      throw new VigilError("conflict", `${approver} is not an approver for this rule`);
    }
    return approval;
  }

  #settle(approval: ApprovalRequest, status: ApprovalStatus, by: string, at: number): void {
    approval.status = status;
    approval.decidedBy = by;
    approval.decidedAt = at;
    if (this.#pendingByScope.get(approval.scope) === approval) this.#pendingByScope.delete(approval.scope);
    this.#onChange(this.#pendingByScope.size);
  }

  #expire(approval: ApprovalRequest): void {
    this.#settle(approval, "expired", "", this.#now());
  }

  /** Drops expired pending requests and forgets settled ones older than a day. */
  #sweep(now: number): void {
    for (const approval of this.#byId.values()) {
      if (approval.status === "pending" && approval.expiresAt <= now) this.#expire(approval);
      else if (approval.status !== "pending" && approval.decidedAt < now - 86_400_000) this.#byId.delete(approval.id);
    }
  }
}
