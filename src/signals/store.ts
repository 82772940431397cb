// The SignalStore interface: reads are synchronous memory lookups (the hot path), writes are
// durable before their promise resolves (journal fsync or JetStream ack). Both the embedded and
// the NATS store pass one contract suite (test/contract/signal-store.case.ts).

import type { Signal, SignalInput, SignalKind, SignalOf } from "./model.js";

export type PutResult =
  /** Written and durable. */
  | { status: "written"; signal: Signal }
  /** Same event id seen before: nothing changed (idempotent retry). */
  | { status: "duplicate"; signal: Signal }
  /** Older than the value already held for that key (latest observedAt wins): kept the newer. */
  | { status: "stale"; signal: Signal };

export interface Freshness {
  fresh: boolean;
  /** Epoch ms when the store last heard from its source of truth (always "now" when embedded). */
  lastHeardAt: number;
  ageMs: number;
}

export interface SignalStore {
  /**
   * Latest unexpired signal for the key, from memory. `nowMs` (default: the store's clock) lets
   * the Check path read several signals against the one time it decides at.
   */
  get<K extends SignalKind>(subject: string, kind: K, name?: string, nowMs?: number): SignalOf<K> | undefined;
  /** Every unexpired signal held for a subject, from memory. */
  list(subject: string): Signal[];
  /**
   * Validates and writes a signal; resolves once durable. Throws VigilError("invalid_input") for a
   * malformed signal and VigilError("conflict") for an attempt to lift a revocation by put.
   */
  put(signal: SignalInput): Promise<PutResult>;
  /** Lifts a sticky revocation. Only path that may set revoked=false; the caller audits it. */
  reinstate(subject: string, by: string, reason: string): Promise<PutResult>;
  /**
   * Uses one use of a grant; false when it is missing, expired or used up. Embedded: decided in
   * memory at once (one process is the whole truth) and journaled in the background. Cluster:
   * when a usable grant is held here, a compare-and-set on the grant's key decides before the
   * Check is answered (a promise, bounded by store.grantTimeoutMs, false past it), so a one-use
   * grant lets exactly one request through across every instance; without one, false at once.
   */
  useGrant(subject: string, name: string, nowMs: number): boolean | Promise<boolean>;
  freshness(nowMs: number): Freshness;
  /** Resolves when the initial load/sync is done; rejects if it cannot be. */
  ready(): Promise<void>;
  readonly isReady: boolean;
  /** Called after every applied change (local or remote). Returns an unsubscribe function. */
  subscribe(listener: (signal: Signal) => void): () => void;
  /** Number of keys held. */
  size(): number;
  /**
   * Forgets expired signals and spent grants now (also done every store.sweepIntervalMs), and in
   * cluster mode deletes them from the bucket; returns how many left memory.
   */
  sweepNow(): number;
  close(): Promise<void>;
}
