// Side effects of decisions (revocations and the outbound revocation hook) leave the Check path
// here: the hot path only records them in memory; a background loop makes them durable, with
// retries, and counts failures; once the store holds a revocation, onRevoked queues its notices
// (revocation hook, CAEP SETs) in the durable outbox (src/outbox). A revocation is enforced locally from the moment it is queued
// (pendingRevoked) until the store holds it, so the next request on this sidecar is denied even
// before the write lands, and it is reported done ("revoked") only once the store holds it.
//
// The pending map is capped (maxPendingRevocations): it grows while the store is down, and no
// entry may be dropped, since dropping one would lift its local hold. When it is full, a new
// revocation cannot be queued and so cannot be held by subject; instead Effects enters overflow:
// from then on every request carrying an identity or a credential is denied ("revocation backlog
// full", see `overflowed`), whoever it is, until the process restarts. Overflow is never lifted
// while running, because the subjects that could not be queued are not remembered (remembering
// them is the unbounded map again), so lifting it would lift their holds. It is loud: counted in
// vigil_revocations_overflowed_total, logged once, and /readyz reports not ready. A restart ends
// every local hold anyway (see `close`); durable state lives in the store.

import type { Logger } from "pino";
import { VigilError } from "../errors/index.js";
import type { PutResult, SignalStore } from "../signals/store.js";
import type { Metrics } from "../telemetry/metrics.js";
import { sleep } from "../util/sleep.js";

export interface RevocationEffect {
  /** Credential fingerprint or SPIFFE ID. */
  subject: string;
  target: "credential" | "identity";
  reason: string;
  decisionId: string;
  caller: string;
  rule: string;
  at: number;
}

export interface EffectsOptions {
  store: SignalStore;
  logger: Logger;
  metrics: Metrics;
  /**
   * Told of each revocation once the store holds it (the revocation hook and the CAEP
   * transmitter, through the durable outbox). Called in the background, never on the Check path.
   */
  onRevoked?: (effect: RevocationEffect) => void;
  /** Most revocations held pending at once (maxPendingRevocations); default 10,000. */
  maxPending?: number;
  /** Delays between store write retries in ms (the last repeats). */
  retryDelaysMs?: number[];
}

export const DEFAULT_MAX_PENDING_REVOCATIONS = 10_000;

export class Effects {
  readonly #options: EffectsOptions;
  readonly #pending = new Map<string, RevocationEffect>();
  readonly #inflight = new Set<Promise<void>>();
  readonly #retryDelays: number[];
  readonly #maxPending: number;
  /** When the backlog first overflowed (ms since epoch); undefined while it never has. */
  #overflowedAt: number | undefined;
  #closed = false;
  /** Ends the retry sleeps when closing. */
  readonly #stopping = new AbortController();

  constructor(options: EffectsOptions) {
    this.#options = options;
    this.#retryDelays = options.retryDelaysMs ?? [50, 200, 1000, 5000, 15000];
    this.#maxPending = options.maxPending ?? DEFAULT_MAX_PENDING_REVOCATIONS;
  }

  /**
   * True once a revocation found the backlog full: every request carrying an identity or a
   * credential must then be denied, since the one that could not be queued may be among them.
   * Never goes back to false while the process runs (see the module comment).
   */
  get overflowed(): boolean {
    return this.#overflowedAt !== undefined;
  }

  /** When the backlog overflowed, for readiness; undefined while it never has. */
  get overflowedAt(): number | undefined {
    return this.#overflowedAt;
  }

  /** Revocations held pending now. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /**
   * True while a revocation of this subject is queued and the store has not acknowledged holding
   * it, including when the store refused it for good: it is then enforced on this instance only.
   */
  pendingRevoked(subject: string): boolean {
    return this.#pending.has(subject);
  }

  /**
   * Queues a revocation; synchronous and cheap. Idempotent per subject while pending, and a no-op
   * when the store already holds the subject revoked. `held` is that store state when the caller
   * read it during this Check (the signals phase does), so it is not read twice; undefined reads it.
   */
  revoke(effect: RevocationEffect, held?: boolean): void {
    if (this.#pending.has(effect.subject)) return;
    if (held ?? this.#options.store.get(effect.subject, "revocation")?.data.revoked === true) return;
    if (this.#pending.size >= this.#maxPending) {
      // Not queued, so not held by subject: hold everyone identified instead (fail closed).
      this.#options.metrics.revocationsOverflowed.inc();
      if (this.#overflowedAt === undefined) {
        this.#overflowedAt = effect.at;
        this.#options.logger.error(
          { pending: this.#pending.size, max: this.#maxPending, decision_id: effect.decisionId, rule: effect.rule },
          "revocation backlog full: denying every request with an identity or credential until restart",
        );
      }
      return;
    }
    this.#pending.set(effect.subject, effect);
    this.#options.metrics.revocationsPending.set(this.#pending.size);
    this.#options.metrics.revocations.labels(effect.target).inc();
    this.#track(this.#persist(effect));
  }

  /** Waits for queued effects (used on shutdown and in tests). */
  async drain(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
  }

  /**
   * Stops retrying and waits for what is in flight. Revocations the store never acknowledged are
   * logged as not durable: they were enforced on this instance only and end with it.
   */
  async close(): Promise<void> {
    this.#closed = true;
    this.#stopping.abort();
    await this.drain();
    if (this.#pending.size > 0) {
      this.#options.logger.error({ pending: this.#pending.size }, "shutting down with revocations the signal store never acknowledged");
    }
  }

  #track(p: Promise<void>): void {
    this.#inflight.add(p);
    void p.finally(() => this.#inflight.delete(p));
  }

  async #persist(effect: RevocationEffect): Promise<void> {
    const { store, logger, metrics } = this.#options;
    const line = { decision_id: effect.decisionId, target: effect.target, rule: effect.rule };
    // The store write is retried until the store holds the revocation (or the process stops): a
    // revocation must not be lost, and must not be called done when the store did not take it.
    for (let attempt = 0; ; attempt++) {
      let result: PutResult | undefined;
      let failure: VigilError | undefined;
      try {
        result = await store.put({
          id: `vigil-revoke:${effect.decisionId}:${effect.target}`,
          kind: "revocation",
          subject: effect.subject,
          source: "vigil",
          observedAt: effect.at,
          data: { revoked: true, reason: effect.reason, by: `vigil:${effect.rule}` },
        });
      } catch (err) {
        failure = VigilError.from(err);
      }
      if (result !== undefined && holdsRevocation(result, effect.subject)) break;
      metrics.effectsFailed.labels("revocation").inc();
      if (failure?.code === "invalid_input") {
        // Retrying cannot change the answer: keep denying here, and say the mesh does not know.
        logger.error({ err: failure, ...line }, "revocation refused by the signal store; enforced on this instance only");
        return;
      }
      const why = failure ?? `the store answered ${result?.status ?? "nothing"} without holding the revocation`;
      if (this.#closed) {
        logger.error({ err: why, ...line }, "revocation not durable at shutdown; it was enforced on this instance only");
        return;
      }
      logger.error({ err: why, ...line, attempt }, "revocation not durable yet; still enforced here, retrying");
      await sleep(this.#retryDelays[Math.min(attempt, this.#retryDelays.length - 1)] ?? 1000, this.#stopping.signal);
    }
    this.#pending.delete(effect.subject);
    metrics.revocationsPending.set(this.#pending.size);
    logger.warn({ ...line, subject: effect.subject, caller: effect.caller }, "revoked");
    try {
      this.#options.onRevoked?.(effect);
    } catch (err) {
      logger.error({ err, ...line }, "revocation notices could not be queued (the revocation itself is durable)");
    }
  }
}

/**
 * Whether a put's answer means the store now holds the subject revoked: written, a duplicate of
 * our own event id, or superseded by a revocation already held. Anything else is not done.
 */
function holdsRevocation(result: PutResult, subject: string): boolean {
  const held = result.signal;
  return held.kind === "revocation" && held.subject === subject && held.data.revoked;
}

