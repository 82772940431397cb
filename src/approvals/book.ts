// Step-up approvals and the JIT grants they produce. A step_up decision opens one approval
// request per caller + rule + destination + resource (idempotent while pending); a human
// approves it through the authenticated admin API, which writes a `grant` signal for the caller
// (durable, and in cluster mode visible to every sidecar). The next matching request uses the
// grant. An approver can never approve a request they, or the identity that owns it, made.
//
// Records live in an ApprovalLedger (ledger.ts): the approvals journal when embedded, the NATS
// bucket `<prefix>-approvals` in cluster mode, so any instance lists, approves or denies a request
// any other opened, and a restart loses none. Settling is a compare-and-set: of two approvers
// racing on two instances one wins, the other is told it is already settled. onEvent hears of
// each opening and settling once, from the instance whose write made it.
//
// Memory is bounded whatever callers send: pending requests are capped per caller and in total
// (a caller over its cap stays step_up without a new approval, others keep theirs), settled ones
// are kept up to a cap, and a long destination or resource is held as a short excerpt plus a
// digest, which is also what the idempotency scope and the grant name are built from.

import { createHash, randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { pino, type Logger } from "pino";
import type { SignalStore } from "../signals/store.js";
import type { Signal } from "../signals/model.js";
import { VigilError } from "../errors/index.js";
import { approvalEvent, type ApprovalEventListener } from "./events.js";
import { LocalLedger, type ApprovalLedger, type LedgerEntry } from "./ledger.js";
import { MAX_COMMENT_CHARS, type ApprovalRequest, type ApprovalStatus, type OpenApproval } from "./model.js";

export { MAX_COMMENT_CHARS, type ApprovalRequest, type ApprovalStatus, type OpenApproval } from "./model.js";

/** Why open() gave no approval: the caller's own cap or the book's total cap was reached. */
export type ApprovalRefusal = "caller_limit" | "total_limit";

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
  for (const [key, value] of Object.entries(values).slice(0, 64)) out[displayExcerpt(key, 64)] = displayExcerpt(value, max);
  return out;
}

export interface ApprovalBookOptions {
  store: SignalStore;
  /** Where records live; default: memory only (tests, `vigil check`). Await its ready() first. */
  ledger?: ApprovalLedger;
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
  /** How often expired requests are settled and old settled ones forgotten (0: only on open/list). */
  sweepIntervalMs?: number;
  /** This instance's name, written into the records it opens (audit). */
  instance?: string;
  logger?: Logger;
  now?: () => number;
  onChange?: (pending: number) => void;
  /** Called when open() refuses to add a request (bounded reasons, for a metric). */
  onRefused?: (reason: ApprovalRefusal) => void;
  /** Hears each opening and settling once cluster-wide (on the instance that wrote it), once durable. */
  onEvent?: ApprovalEventListener;
}

/** Settled requests are forgotten (here and in the shared store) a day after they settled. */
export const SETTLED_RETENTION_MS = 86_400_000;
/** How long approve/deny wait for a request this instance just opened to reach the shared store. */
const SHARE_WAIT_MS = 2_000;
/** Attempts at writing the grant once the approval is settled. */
const GRANT_WRITE_ATTEMPTS = 3;
/** Compare-and-set attempts at settling a request before giving up (contention or a value being repaired). */
const MAX_SETTLE_ATTEMPTS = 5;

/** The status a record has now: a pending request past its time is expired, written or not. */
function statusAt(record: ApprovalRequest, now: number): ApprovalStatus {
  return record.status === "pending" && record.expiresAt <= now ? "expired" : record.status;
}

/** The record as the API shows it at `now`. */
function shown(record: ApprovalRequest, now: number): ApprovalRequest {
  const status = statusAt(record, now);
  return status === record.status ? record : { ...record, status, decidedAt: record.expiresAt };
}

export class ApprovalBook {
  readonly #store: SignalStore;
  readonly #ledger: ApprovalLedger;
  readonly #pendingTtlMs: number;
  readonly #maxPending: number;
  readonly #maxPendingPerCaller: number;
  readonly #maxSettled: number;
  readonly #excerptChars: number;
  readonly #instance: string;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #onChange: (pending: number) => void;
  readonly #onRefused: (reason: ApprovalRefusal) => void;
  readonly #onEvent: ApprovalEventListener;
  readonly #unsubscribe: () => void;
  readonly #sweeper: NodeJS.Timeout | undefined;
  // Indexes of the ledger's records, kept by its listener (every change, local or remote).
  /** Pending requests in the order first seen, which (one TTL for all) is roughly expiry order. */
  readonly #pending = new Map<string, ApprovalRequest>();
  readonly #pendingByScope = new Map<string, ApprovalRequest>();
  readonly #pendingPerCaller = new Map<string, number>();
  /** Settled requests (or pending ones past their time) in the order they settled. */
  readonly #settled = new Map<string, ApprovalRequest>();
  /** Expiries being written, so the sweep starts one write per request. */
  readonly #expiring = new Set<string>();

  constructor(options: ApprovalBookOptions) {
    this.#store = options.store;
    this.#logger = options.logger ?? pino({ level: "silent" });
    this.#ledger = options.ledger ?? new LocalLedger({ path: "", logger: this.#logger });
    this.#pendingTtlMs = options.pendingTtlMs ?? 3_600_000;
    this.#maxPending = options.maxPending ?? 10_000;
    this.#maxPendingPerCaller = options.maxPendingPerCaller ?? 16;
    this.#maxSettled = options.maxSettled ?? 10_000;
    this.#excerptChars = options.excerptChars ?? 200;
    this.#instance = options.instance ?? "";
    this.#now = options.now ?? Date.now;
    this.#onChange = options.onChange ?? (() => undefined);
    this.#onRefused = options.onRefused ?? (() => undefined);
    this.#onEvent = options.onEvent ?? (() => undefined);
    for (const record of this.#ledger.values()) this.#index(record, undefined);
    this.#unsubscribe = this.#ledger.subscribe((next, previous) => {
      this.#index(next, previous);
      this.#onChange(this.#pending.size);
    });
    this.#sweep(this.#now());
    const interval = options.sweepIntervalMs ?? 30_000;
    if (interval > 0) {
      this.#sweeper = setInterval(() => { this.#sweep(this.#now()); }, interval);
      this.#sweeper.unref();
    }
  }

  /** Keeps the indexes in step with one ledger change. */
  #index(next: ApprovalRequest | undefined, previous: ApprovalRequest | undefined): void {
    const now = this.#now();
    if (previous !== undefined && (next === undefined || this.#pending.has(previous.id) !== (statusAt(next, now) === "pending"))) {
      this.#unindex(previous.id);
    }
    if (next === undefined) return;
    if (statusAt(next, now) !== "pending") {
      this.#unindex(next.id);
      this.#settled.set(next.id, next);
      this.#trimSettled();
      return;
    }
    const had = this.#pending.has(next.id);
    this.#pending.set(next.id, next);
    if (!had) this.#pendingPerCaller.set(next.caller, (this.#pendingPerCaller.get(next.caller) ?? 0) + 1);
    const byScope = this.#pendingByScope.get(next.scope);
    // Two instances may open the same scope at once: the first seen stays the one answered with.
    if (byScope === undefined || byScope.id === next.id) this.#pendingByScope.set(next.scope, next);
  }

  #unindex(id: string): void {
    const pending = this.#pending.get(id);
    if (pending !== undefined) {
      this.#pending.delete(id);
      const left = (this.#pendingPerCaller.get(pending.caller) ?? 1) - 1;
      if (left > 0) this.#pendingPerCaller.set(pending.caller, left);
      else this.#pendingPerCaller.delete(pending.caller);
      if (this.#pendingByScope.get(pending.scope)?.id === id) {
        this.#pendingByScope.delete(pending.scope);
        // Another pending request for the same scope (opened on another instance) takes over.
        for (const other of this.#pending.values()) {
          if (other.scope === pending.scope) {
            this.#pendingByScope.set(other.scope, other);
            break;
          }
        }
      }
    }
    this.#settled.delete(id);
  }

  /**
   * Opens (or returns the pending) approval request for a scope. Synchronous and memory-only:
   * the Check path calls it, and its cost does not grow with the number held; the record reaches
   * the ledger in the background. Returns undefined when the caller's or the book's cap is
   * reached: the decision stays step_up, without an approval id, and onRefused says why.
   * `scoped` is scopeOf(request), passed when the caller already computed it.
   */
  open(request: OpenApproval, scoped: ApprovalScope = scopeOf(request)): ApprovalRequest | undefined {
    const now = this.#now();
    const { scope, grantName } = scoped;
    const existing = this.#pendingByScope.get(scope);
    if (existing !== undefined && existing.expiresAt > now) return existing;
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
      ...(this.#instance === "" ? {} : { openedBy: this.#instance }),
    };
    this.#ledger.create(approval).then(
      () => { this.#emit("opened", approval); },
      (error: unknown) => {
        this.#logger.error({ err: error, approval_id: approval.id }, "approval request could not be stored; it is held by this instance only");
      },
    );
    return approval;
  }

  get(id: string): ApprovalRequest | undefined {
    const entry = this.#ledger.get(id);
    return entry === undefined ? undefined : shown(entry.record, this.#now());
  }

  list(status?: ApprovalStatus): ApprovalRequest[] {
    const now = this.#now();
    this.#sweep(now);
    return [...this.#pending.values(), ...this.#settled.values()]
      .map((a) => shown(a, now))
      .filter((a) => status === undefined || a.status === status);
  }

  get pendingCount(): number {
    return this.#pending.size;
  }

  /** Requests held in memory, pending and settled (what the caps bound). */
  get size(): number {
    return this.#pending.size + this.#settled.size;
  }

  /** Whether records are shared with other instances (cluster mode). */
  get shared(): boolean {
    return this.#ledger.shared;
  }

  /**
   * Approves a pending request as `approver` and writes the grant durably. Refuses an approver
   * who is the caller, the owner of the caller's credential, or not among the rule's approvers.
   * The approval is settled first (compare-and-set, so it is approved once cluster-wide), then
   * the grant written; if the grant cannot be written the request stays approved without one,
   * the caller keeps stepping up and a new request opens (never an allow nobody approved).
   */
  async approve(id: string, approver: string, comment = ""): Promise<{ approval: ApprovalRequest; grant: Signal }> {
    const now = this.#now();
    const approval = await this.#settle(id, approver, "approved", now, comment);
    const grant = {
      id: `grant:${approval.id}`,
      kind: "grant" as const,
      subject: approval.caller,
      name: approval.grantName,
      source: `approval:${approver}`,
      observedAt: now,
      expiresAt: now + approval.grantTtlSeconds * 1000,
      data: { approvalId: approval.id, scope: approval.scope, approver, usesLeft: approval.grantUses },
    };
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await this.#store.put(grant);
        return { approval, grant: result.signal };
      } catch (error) {
        if (attempt >= GRANT_WRITE_ATTEMPTS) {
          this.#logger.error({ err: error, approval_id: approval.id, by: approver }, "approval settled but its grant could not be written; the caller will step up again");
          throw VigilError.from(error, "unavailable");
        }
        await sleep(100 * attempt);
      }
    }
  }

  async deny(id: string, approver: string, comment = ""): Promise<ApprovalRequest> {
    return this.#settle(id, approver, "denied", this.#now(), comment);
  }

  /** Settles a pending request by compare-and-set; a lost race is told as "already <status>". */
  async #settle(id: string, approver: string, status: "approved" | "denied", at: number, comment: string): Promise<ApprovalRequest> {
    for (let attempt = 0; attempt < MAX_SETTLE_ATTEMPTS; attempt++) {
      const entry = await this.#shared(id);
      const record = this.#decidable(entry, id, approver);
      const next: ApprovalRequest = { ...record, status, decidedBy: approver, decidedAt: at, comment: displayExcerpt(comment, MAX_COMMENT_CHARS) };
      if (await this.#ledger.replace(next, entry.revision)) {
        this.#emit("decided", next);
        return next;
      }
      // Someone else changed it first: decide again against what they wrote.
    }
    throw new VigilError("unavailable", `approval ${id} kept changing under this decision; retry`);
  }

  /** The ledger entry, once it is in the shared store (a request this instance opened a moment ago may not be yet). */
  async #shared(id: string): Promise<LedgerEntry> {
    const entry = this.#ledger.get(id);
    if (entry === undefined) throw new VigilError("not_found", `no approval request ${id}`);
    if (entry.revision !== 0) return entry;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([entry.written, new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => { reject(new VigilError("unavailable", `approval ${id} is not in the shared store yet; retry`)); }, SHARE_WAIT_MS);
      })]);
    } catch (error) {
      throw VigilError.from(error, "unavailable");
    } finally {
      clearTimeout(timer);
    }
    return this.#ledger.get(id) ?? entry;
  }

  #decidable(entry: LedgerEntry, id: string, approver: string): ApprovalRequest {
    const approval = entry.record;
    const status = statusAt(approval, this.#now());
    if (status !== "pending") throw new VigilError("conflict", `approval ${id} is already ${status}`);
    if (approver === "" ) throw new VigilError("unauthenticated", "approver identity unknown");
    if (approver === approval.caller || (approval.credentialOwner !== "" && approver === approval.credentialOwner)) {
      throw new VigilError("conflict", "an approver cannot approve a request made by themselves or their own identity");
    }
    if (approval.approvers.length > 0 && !approval.approvers.includes(approver)) {
      throw new VigilError("conflict", `${approver} is not an approver for this rule`);
    }
    return approval;
  }

  #emit(type: "opened" | "decided", approval: ApprovalRequest): void {
    try {
      this.#onEvent(approvalEvent(type, approval, this.#now()));
    } catch (error) {
      this.#logger.error({ err: error, approval_id: approval.id }, "approval event listener threw");
    }
  }

  /** Writes a request's expiry (any instance may; the compare-and-set lets one win and tell of it). */
  #expire(record: ApprovalRequest): void {
    if (this.#expiring.has(record.id)) return;
    const entry = this.#ledger.get(record.id);
    if (entry === undefined || entry.revision === 0 || entry.record.status !== "pending") return;
    this.#expiring.add(record.id);
    const next: ApprovalRequest = { ...entry.record, status: "expired", decidedBy: "", decidedAt: entry.record.expiresAt };
    this.#ledger.replace(next, entry.revision).then(
      (won) => { if (won) this.#emit("decided", next); },
      (error: unknown) => { this.#logger.debug({ err: error, approval_id: record.id }, "could not write an approval's expiry yet"); },
    ).finally(() => { this.#expiring.delete(record.id); });
  }

  /** Forgets the oldest settled requests beyond maxSettled. */
  #trimSettled(): void {
    while (this.#settled.size > this.#maxSettled) {
      const oldest = this.#settled.keys().next();
      if (oldest.done === true) break;
      this.#forget(oldest.value);
    }
  }

  #forget(id: string): void {
    this.#settled.delete(id);
    void this.#ledger.remove(id).catch((error: unknown) => {
      this.#logger.debug({ err: error, approval_id: id }, "could not forget a settled approval");
    });
  }

  /**
   * Moves pending requests past their time to settled (writing their expiry), and forgets settled
   * ones older than a day or beyond maxSettled, here and in the ledger. Both maps are in time
   * order, so this stops at the first one still current: its cost is the number removed.
   */
  #sweep(now: number): void {
    for (const approval of this.#pending.values()) {
      if (approval.expiresAt > now) break;
      this.#unindex(approval.id);
      this.#settled.set(approval.id, approval);
      this.#expire(approval);
    }
    this.#trimSettled();
    for (const approval of this.#settled.values()) {
      if ((approval.decidedAt || approval.expiresAt) >= now - SETTLED_RETENTION_MS) break;
      this.#forget(approval.id);
    }
    this.#onChange(this.#pending.size);
  }

  /** Stops the sweep and listening (the ledger is closed by whoever opened it). */
  close(): void {
    clearInterval(this.#sweeper);
    this.#unsubscribe();
  }
}
