// Step-up approvals and the JIT grants they produce. A step_up decision opens one approval
// request per caller + rule + destination + resource (idempotent while pending); a human
// approves it through the authenticated admin API, which writes a `grant` signal for the caller
// (durable, and in cluster mode visible to every sidecar). The next matching request uses the
// grant. An approver can never approve a request they, or the identity that owns it, made.
//
// Memory is bounded whatever callers send: pending requests are capped per caller and in total
// (a caller over its cap stays step_up without a new approval, others keep theirs), settled ones
// are kept up to a cap, and a long destination or resource is held as a short excerpt plus a
// digest, which is also what the idempotency scope and the grant name are built from.

import { createHash, randomUUID } from "node:crypto";
import type { SignalStore } from "../signals/store.js";
import type { Signal } from "../signals/model.js";
import { VigilError } from "../errors/index.js";

export type ApprovalStatus = "pending" | "approved" | "denied" | "expired";

/** Why open() gave no approval: the caller's own cap or the book's total cap was reached. */
export type ApprovalRefusal = "caller_limit" | "total_limit";

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

export interface ApprovalRequest extends OpenApproval {
  id: string;
  /** caller|rule|destination|resource (long parts as digests): what a grant from this approval covers. */
  scope: string;
  /** Grant name derived from the scope (the key a grant is stored under). */
  grantName: string;
  /** sha256 (hex) of the full resource; `resource` itself is an excerpt when it was long. */
  resourceDigest: string;
  /** sha256 (hex) of the full destination; `destination` is an excerpt when it was long. */
  destinationDigest: string;
  requestedAt: number;
  expiresAt: number;
  status: ApprovalStatus;
  decidedBy: string;
  decidedAt: number;
  /** What the approver said when deciding ("" when nothing); an excerpt, audited with the decision. */
  comment: string;
}

/** Longest approver comment kept; a longer one is cut (it is the approver's text, not a caller's). */
export const MAX_COMMENT_CHARS = 1024;

/** Scope parts longer than this are replaced by their digest (a path can be 60 KB). */
export const SCOPE_PART_MAX_CHARS = 256;

function sha256Hex(value: string): string {
  return createHash("sha256").update(value).digest("hex");
}

/** A scope part as held: itself when short, its digest when long (the digest cannot be forged by a short value's owner without a preimage). */
function scopePart(value: string): string {
  return value.length <= SCOPE_PART_MAX_CHARS ? value : `sha256:${sha256Hex(value)}`;
}

/** The scope string a grant covers; long parts are digests, so the string stays short. */
export function approvalScope(caller: string, rule: string, destination: string, resource: string): string {
  return `${scopePart(caller)}|${scopePart(rule)}|${scopePart(destination)}|${scopePart(resource)}`;
}

/** Short, key-safe name for a scope (NATS KV keys have a restricted charset). */
export function grantNameFor(scope: string): string {
  return createHash("sha256").update(scope).digest("base64url").slice(0, 32);
}

/** What a step-up asks approval for: the scope, and the name a grant for it is stored under. */
export interface ApprovalScope {
  scope: string;
  grantName: string;
}

/**
 * The scope and grant name of a step-up, computed once: the Check looks the grant up by this
 * name and, when there is none, opens the approval with this same scope.
 */
export function scopeOf(request: Pick<OpenApproval, "caller" | "rule" | "destination" | "resource">): ApprovalScope {
  const scope = approvalScope(request.caller, request.rule, request.destination, request.resource);
  return { scope, grantName: grantNameFor(scope) };
}

/**
 * A display excerpt of a value a client chose: at most `max` characters, control and other
 * non-printable characters replaced, and "…(N chars)" when it was cut.
 */
export function displayExcerpt(value: string, max: number): string {
  // eslint-disable-next-line no-control-regex -- the point is to replace control characters
  const printable = (s: string): string => s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, "?");
  if (value.length <= max) return printable(value);
  return `${printable(detached(value.slice(0, max)))}…(${String(value.length)} chars)`;
}

/**
 * A copy of `s` that shares no memory with the string it was cut from: V8 keeps a slice as a
 * view on its parent, so an excerpt of a 58 KB path would otherwise hold the whole path
 * (measured by bench/caps.bench.ts: ~60 KB per approval instead of ~1 KB).
 */
function detached(s: string): string {
  return Buffer.from(s, "utf16le").toString("utf16le");
}

/** Every value of a flat summary as a display excerpt (signal reasons may come from a caller's transmitter). */
function excerptValues(values: Record<string, string>, max: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(values)) out[displayExcerpt(key, 64)] = displayExcerpt(value, max);
  return out;
}

export interface ApprovalBookOptions {
  store: SignalStore;
  /** How long a pending request waits for a human. */
  pendingTtlMs?: number;
  /** Bound on pending requests held, so a flood of step-ups cannot exhaust memory. */
  maxPending?: number;
  /** Bound on one caller's pending requests, so one caller cannot starve the others. */
  maxPendingPerCaller?: number;
  /** Settled (approved, denied, expired) requests kept for the admin API; the oldest go first. */
  maxSettled?: number;
  /** Characters of a long destination or resource kept for display. */
  excerptChars?: number;
  now?: () => number;
  onChange?: (pending: number) => void;
  /** Called when open() refuses to add a request (bounded reasons, for a metric). */
  onRefused?: (reason: ApprovalRefusal) => void;
}

const SETTLED_RETENTION_MS = 86_400_000;

export class ApprovalBook {
  readonly #store: SignalStore;
  readonly #pendingTtlMs: number;
  readonly #maxPending: number;
  readonly #maxPendingPerCaller: number;
  readonly #maxSettled: number;
  readonly #excerptChars: number;
  readonly #now: () => number;
  readonly #onChange: (pending: number) => void;
  readonly #onRefused: (reason: ApprovalRefusal) => void;
  /** Pending requests in the order they were opened, which (one TTL for all) is expiry order. */
  readonly #pending = new Map<string, ApprovalRequest>();
  readonly #pendingByScope = new Map<string, ApprovalRequest>();
  readonly #pendingPerCaller = new Map<string, number>();
  /** Settled requests in the order they were settled. */
  readonly #settled = new Map<string, ApprovalRequest>();

  constructor(options: ApprovalBookOptions) {
    this.#store = options.store;
    this.#pendingTtlMs = options.pendingTtlMs ?? 3_600_000;
    this.#maxPending = options.maxPending ?? 10_000;
    this.#maxPendingPerCaller = options.maxPendingPerCaller ?? 16;
    this.#maxSettled = options.maxSettled ?? 10_000;
    this.#excerptChars = options.excerptChars ?? 200;
    this.#now = options.now ?? Date.now;
    this.#onChange = options.onChange ?? (() => undefined);
    this.#onRefused = options.onRefused ?? (() => undefined);
  }

  /**
   * Opens (or returns the pending) approval request for a scope. Synchronous and memory-only:
   * the Check path calls it, and its cost does not grow with the number held. Returns undefined
   * when the caller's or the book's cap is reached: the decision stays step_up, without an
   * approval id, and onRefused says why. `scoped` is scopeOf(request), passed when the caller
   * already computed it (the Check looked the grant up by the same name).
   */
  open(request: OpenApproval, scoped: ApprovalScope = scopeOf(request)): ApprovalRequest | undefined {
    const now = this.#now();
    const { scope, grantName } = scoped;
    const existing = this.#pendingByScope.get(scope);
    if (existing !== undefined && existing.expiresAt > now) return existing;
    if (existing !== undefined) this.#expire(existing);
    this.#sweep(now);
    if ((this.#pendingPerCaller.get(request.caller) ?? 0) >= this.#maxPendingPerCaller) {
      this.#onRefused("caller_limit");
      return undefined;
    }
    if (this.#pending.size >= this.#maxPending) {
      this.#onRefused("total_limit");
      return undefined;
    }
    const approval: ApprovalRequest = {
      id: `apr_${randomUUID()}`,
      scope,
      grantName,
      ...request,
      destination: displayExcerpt(request.destination, this.#excerptChars),
      resource: displayExcerpt(request.resource, this.#excerptChars),
      ...(request.action === undefined ? {} : { action: displayExcerpt(request.action, this.#excerptChars) }),
      ...(request.reason === undefined ? {} : { reason: displayExcerpt(request.reason, this.#excerptChars) }),
      ...(request.signals === undefined ? {} : { signals: excerptValues(request.signals, this.#excerptChars) }),
      destinationDigest: sha256Hex(request.destination),
      resourceDigest: sha256Hex(request.resource),
      requestedAt: now,
      expiresAt: now + this.#pendingTtlMs,
      status: "pending",
      decidedBy: "",
      decidedAt: 0,
      comment: "",
    };
    this.#pending.set(approval.id, approval);
    this.#pendingByScope.set(scope, approval);
    this.#pendingPerCaller.set(approval.caller, (this.#pendingPerCaller.get(approval.caller) ?? 0) + 1);
    this.#onChange(this.#pending.size);
    return approval;
  }

  get(id: string): ApprovalRequest | undefined {
    const pending = this.#pending.get(id);
    if (pending === undefined) return this.#settled.get(id);
    if (pending.expiresAt <= this.#now()) this.#expire(pending);
    return pending;
  }

  list(status?: ApprovalStatus): ApprovalRequest[] {
    this.#sweep(this.#now());
    return [...this.#pending.values(), ...this.#settled.values()].filter((a) => status === undefined || a.status === status);
  }

  get pendingCount(): number {
    return this.#pending.size;
  }

  /** Requests held in memory, pending and settled (what the caps bound). */
  get size(): number {
    return this.#pending.size + this.#settled.size;
  }

  /**
   * Approves a pending request as `approver` and writes the grant durably. Refuses an approver
   * who is the caller, the owner of the caller's credential, or not among the rule's approvers.
   */
  async approve(id: string, approver: string, comment = ""): Promise<{ approval: ApprovalRequest; grant: Signal }> {
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
    this.#settle(approval, "approved", approver, now, comment);
    return { approval, grant: result.signal };
  }

  deny(id: string, approver: string, comment = ""): ApprovalRequest {
    const approval = this.#decidable(id, approver);
    this.#settle(approval, "denied", approver, this.#now(), comment);
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

  #settle(approval: ApprovalRequest, status: ApprovalStatus, by: string, at: number, comment = ""): void {
    if (this.#pending.delete(approval.id)) {
      const left = (this.#pendingPerCaller.get(approval.caller) ?? 1) - 1;
      if (left > 0) this.#pendingPerCaller.set(approval.caller, left);
      else this.#pendingPerCaller.delete(approval.caller);
    }
    if (this.#pendingByScope.get(approval.scope) === approval) this.#pendingByScope.delete(approval.scope);
    approval.status = status;
    approval.decidedBy = by;
    approval.decidedAt = at;
    approval.comment = displayExcerpt(comment, MAX_COMMENT_CHARS);
    this.#settled.set(approval.id, approval);
    while (this.#settled.size > this.#maxSettled) {
      const oldest = this.#settled.keys().next();
      if (oldest.done === true) break;
      this.#settled.delete(oldest.value);
    }
    this.#onChange(this.#pending.size);
  }

  #expire(approval: ApprovalRequest): void {
    this.#settle(approval, "expired", "", this.#now());
  }

  /**
   * Expires pending requests past their time and forgets settled ones older than a day. Both
   * maps are in time order, so this stops at the first one still current: its cost is the
   * number removed, not the number held.
   */
  #sweep(now: number): void {
    for (const approval of this.#pending.values()) {
      if (approval.expiresAt > now) break;
      this.#expire(approval);
    }
    for (const approval of this.#settled.values()) {
      if (approval.decidedAt >= now - SETTLED_RETENTION_MS) break;
      this.#settled.delete(approval.id);
    }
  }
}
