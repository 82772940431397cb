// Side effects of decisions (revocations and the outbound revocation hook) leave the Check path
// here: the hot path only records them in memory; a background loop makes them durable, with
// retries, and counts failures. A revocation is enforced locally from the moment it is queued
// (pendingRevoked), so the next request on this sidecar is denied even before the write lands.

import type { Logger } from "pino";
import type { SignalStore } from "../signals/store.js";
import type { Metrics } from "../telemetry/metrics.js";

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
  hookUrl: string;
  /** Retry delays in ms; after the last one a failure is logged as lost (only for the hook). */
  retryDelaysMs?: number[];
  fetchImpl?: typeof fetch;
}

export class Effects {
  readonly #options: EffectsOptions;
  readonly #pending = new Map<string, RevocationEffect>();
  readonly #inflight = new Set<Promise<void>>();
  readonly #retryDelays: number[];
  #closed = false;

  constructor(options: EffectsOptions) {
    this.#options = options;
    this.#retryDelays = options.retryDelaysMs ?? [50, 200, 1000, 5000, 15000];
  }

  /** True while a revocation of this subject is queued but not yet durable in the store. */
  pendingRevoked(subject: string): boolean {
    return this.#pending.has(subject);
  }

  /** Queues a revocation; synchronous and cheap. Idempotent per subject while pending. */
  revoke(effect: RevocationEffect): void {
    if (this.#pending.has(effect.subject)) return;
    const current = this.#options.store.get(effect.subject, "revocation");
    if (current?.data.revoked === true) return;
    this.#pending.set(effect.subject, effect);
    this.#options.metrics.revocations.labels(effect.target).inc();
    this.#track(this.#persist(effect));
  }

  /** Waits for queued effects (used on shutdown and in tests). */
  async drain(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
  }

  async close(): Promise<void> {
    await this.drain();
    this.#closed = true;
  }

  #track(p: Promise<void>): void {
    this.#inflight.add(p);
    void p.finally(() => this.#inflight.delete(p));
  }

  async #persist(effect: RevocationEffect): Promise<void> {
    const { store, logger, metrics } = this.#options;
    // The store write is retried until it lands (or the process stops): a revocation must not be lost.
    for (let attempt = 0; ; attempt++) {
      try {
        await store.put({
          id: `vigil-revoke:${effect.decisionId}:${effect.target}`,
          kind: "revocation",
          subject: effect.subject,
          source: "vigil",
          observedAt: effect.at,
          data: { revoked: true, reason: effect.reason, by: `vigil:${effect.rule}` },
        });
        break;
      } catch (err) {
        metrics.effectsFailed.labels("revocation").inc();
        logger.error({ err, decision_id: effect.decisionId, target: effect.target }, "revocation write failed; retrying");
        if (this.#closed) return;
        await sleep(this.#retryDelays[Math.min(attempt, this.#retryDelays.length - 1)] ?? 1000);
      }
    }
    this.#pending.delete(effect.subject);
    logger.warn({
      decision_id: effect.decisionId, target: effect.target, subject: effect.subject, caller: effect.caller, rule: effect.rule,
    }, "revoked");
    if (this.#options.hookUrl !== "") await this.#fireHook(effect);
  }

  async #fireHook(effect: RevocationEffect): Promise<void> {
    const { logger, metrics, hookUrl } = this.#options;
    const doFetch = this.#options.fetchImpl ?? fetch;
    const body = JSON.stringify({
      type: "vigil.revocation", decision_id: effect.decisionId, target: effect.target, subject: effect.subject,
      caller: effect.caller, rule: effect.rule, reason: effect.reason, at: new Date(effect.at).toISOString(),
    });
    for (let attempt = 0; attempt <= this.#retryDelays.length; attempt++) {
      try {
        const res = await doFetch(hookUrl, {
          method: "POST", headers: { "content-type": "application/json" }, body, signal: AbortSignal.timeout(5000),
        });
        if (res.ok) return;
        throw new Error(`hook answered HTTP ${res.status}`);
      } catch (err) {
        metrics.effectsFailed.labels("revocation_hook").inc();
        const delay = this.#retryDelays[attempt];
        if (delay === undefined || this.#closed) {
          logger.error({ err, decision_id: effect.decisionId }, "revocation hook failed; giving up (the revocation itself is durable)");
          return;
        }
        await sleep(delay);
      }
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
