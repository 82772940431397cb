// The in-memory state every SignalStore serves reads from, and the write rules both stores apply:
// latest observedAt wins, writes are idempotent on the event id, revocations are sticky, expired
// signals are invisible. Stores decide with it, persist in their own way, then apply to it.

import { randomUUID } from "node:crypto";
import { VigilError } from "../errors/index.js";
import { isExpired } from "./model.js";
import type { Signal, SignalKind, SignalOf } from "./model.js";

/** What a write would do to the index, decided before anything is persisted. */
export type WriteDecision =
  /** Same event id seen before; `signal` is the value that id produced. */
  | { status: "duplicate"; signal: Signal }
  /** Older than the value held; `signal` is the newer value kept. */
  | { status: "stale"; signal: Signal }
  /** Persist `signal`, then apply it. */
  | { status: "write"; signal: Signal };

export type SignalListener = (signal: Signal) => void;

export interface SignalIndexOptions {
  /**
   * How many event ids are remembered for idempotency beyond the ones still held as live values.
   * Oldest ids are forgotten first; a retry older than this window is judged by observedAt alone.
   */
  idempotencyWindow?: number;
  /** A listener threw: the store keeps going, the caller decides how loudly to say so. */
  onListenerError?: (error: unknown, signal: Signal) => void;
}

/** Credential states no later write may soften (latest-wins must never un-leak a key). */
const TERMINAL_CREDENTIAL_STATES: ReadonlySet<string> = new Set(["leaked", "compromised", "revoked"]);

export const DEFAULT_IDEMPOTENCY_WINDOW = 100_000;

/** Source recorded on signals Vigil derives itself (reinstatements). */
export const VIGIL_SOURCE = "vigil";

/** Where a value lives: one per (subject, kind, name). */
export interface SignalAddress {
  subject: string;
  kind: SignalKind;
  name: string;
}

/** Key inside a subject's map: the bare kind for the usual unnamed signal (no string building). */
function slotOf(kind: SignalKind, name: string): string {
  return name === "" ? kind : `${kind}\u0000${name}`;
}

export class SignalIndex {
  /**
   * Subject → (kind, name) → value. Two lookups instead of one on a concatenated signalKey: the
   * hot path then hashes the caller's subject string (V8 caches a string's hash) and a kind
   * literal, never a freshly built key; measured about twice as fast at 100k subjects. The inner
   * map doubles as the per-subject index for `list`.
   */
  readonly #bySubject = new Map<string, Map<string, Signal>>();
  #size = 0;
  /** Event id → the value it produced, in insertion order so the oldest can be evicted. */
  readonly #seenIds = new Map<string, Signal>();
  readonly #listeners = new Set<SignalListener>();
  readonly #idempotencyWindow: number;
  readonly #onListenerError: (error: unknown, signal: Signal) => void;

  constructor(options: SignalIndexOptions = {}) {
    this.#idempotencyWindow = options.idempotencyWindow ?? DEFAULT_IDEMPOTENCY_WINDOW;
    this.#onListenerError = options.onListenerError ?? (() => undefined);
  }

  get<K extends SignalKind>(subject: string, kind: K, name: string, nowMs: number): SignalOf<K> | undefined {
    const held = this.#bySubject.get(subject)?.get(slotOf(kind, name));
    if (held === undefined || isExpired(held, nowMs)) return undefined;
    return held as SignalOf<K>;
  }

  list(subject: string, nowMs: number): Signal[] {
    const held = this.#bySubject.get(subject);
    if (held === undefined) return [];
    const live: Signal[] = [];
    for (const signal of held.values()) if (!isExpired(signal, nowMs)) live.push(signal);
    return live;
  }

  /** The raw value at an address, expired or not. */
  held(address: SignalAddress): Signal | undefined {
    return this.#bySubject.get(address.subject)?.get(slotOf(address.kind, address.name));
  }

  size(): number {
    return this.#size;
  }

  /** Every value held, expired ones included (journal snapshots filter them). */
  * values(): Generator<Signal> {
    for (const held of this.#bySubject.values()) yield* held.values();
  }

  /**
   * Judges a validated write against what is held. Throws VigilError("conflict") when a put would
   * lift an unexpired revocation: only `reinstate` may do that.
   */
  decide(signal: Signal, nowMs: number): WriteDecision {
    const seen = this.#seenIds.get(signal.id);
    if (seen !== undefined) return { status: "duplicate", signal: seen };
    const held = this.held(signal);
    if (held === undefined) return { status: "write", signal };
    if (held.id === signal.id) return { status: "duplicate", signal: held };
    if (
      signal.kind === "revocation" && !signal.data.revoked
      && held.kind === "revocation" && held.data.revoked && !isExpired(held, nowMs)
    ) {
      throw new VigilError(
        "conflict",
        `${signal.subject} is revoked; a put cannot lift a revocation, use reinstate (audited)`,
      );
    }
    if (
      signal.kind === "credential" && !TERMINAL_CREDENTIAL_STATES.has(signal.data.state)
      && held.kind === "credential" && TERMINAL_CREDENTIAL_STATES.has(held.data.state) && !isExpired(held, nowMs)
    ) {
      // A key that leaked stays leaked: the way out is rotation, which gives a new fingerprint.
      throw new VigilError(
        "conflict",
        `credential ${signal.subject} is ${held.data.state}; it cannot become ${signal.data.state} again — rotate it (a new key has a new fingerprint)`,
      );
    }
    if (signal.observedAt < held.observedAt) return { status: "stale", signal: held };
    return { status: "write", signal };
  }

  /**
   * The reinstatement that lifts the revocation held for `subject`: a new revocation value with
   * revoked=false, observed no earlier than the one it replaces so it wins. `duplicate` when the
   * subject is not revoked any more; VigilError("not_found") when it never was.
   */
  reinstatement(subject: string, by: string, reason: string, nowMs: number): WriteDecision {
    const held = this.held({ subject, kind: "revocation", name: "" });
    if (held?.kind !== "revocation") {
      throw new VigilError("not_found", `no revocation is held for ${subject}`);
    }
    if (!held.data.revoked || isExpired(held, nowMs)) return { status: "duplicate", signal: held };
    return {
      status: "write",
      signal: {
        id: `reinstate-${randomUUID()}`,
        kind: "revocation",
        subject,
        name: "",
        source: VIGIL_SOURCE,
        observedAt: Math.max(nowMs, held.observedAt),
        data: { revoked: false, reason, by },
      },
    };
  }

  /** The grant with one use fewer, or undefined when it is missing, expired or used up. */
  grantAfterUse(subject: string, name: string, nowMs: number): SignalOf<"grant"> | undefined {
    const grant = this.get(subject, "grant", name, nowMs);
    if (grant === undefined || grant.data.usesLeft <= 0) return undefined;
    return { ...grant, data: { ...grant.data, usesLeft: grant.data.usesLeft - 1 } };
  }

  /**
   * Makes `signal` the value for its key, unconditionally: callers have decided already, or are
   * replaying their source of truth (journal, KV watch) in order. Returns the value replaced.
   */
  set(signal: Signal, notify: boolean): Signal | undefined {
    let held = this.#bySubject.get(signal.subject);
    if (held === undefined) {
      held = new Map();
      this.#bySubject.set(signal.subject, held);
    }
    const slot = slotOf(signal.kind, signal.name);
    const previous = held.get(slot);
    held.set(slot, signal);
    if (previous === undefined) this.#size++;
    this.#remember(signal);
    if (notify) this.emit(signal);
    return previous;
  }

  /** Forgets the value at an address (a KV delete). Listeners are not told: they receive values. */
  remove(address: SignalAddress): Signal | undefined {
    const held = this.#bySubject.get(address.subject);
    const slot = slotOf(address.kind, address.name);
    const previous = held?.get(slot);
    if (held === undefined || previous === undefined) return undefined;
    held.delete(slot);
    this.#size--;
    if (held.size === 0) this.#bySubject.delete(address.subject);
    return previous;
  }

  /**
   * Undoes `set(signal)` after its write failed to become durable, so that a retry with the same
   * id is written rather than reported as a duplicate. A no-op if something newer replaced it.
   */
  revert(signal: Signal, previous: Signal | undefined): void {
    if (this.held(signal) !== signal) return;
    if (this.#seenIds.get(signal.id) === signal) this.#seenIds.delete(signal.id);
    if (previous === undefined) this.remove(signal);
    else this.set(previous, false);
  }

  subscribe(listener: SignalListener): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  emit(signal: Signal): void {
    for (const listener of this.#listeners) {
      try {
        listener(signal);
      } catch (error) {
        this.#onListenerError(error, signal);
      }
    }
  }

  #remember(signal: Signal): void {
    this.#seenIds.delete(signal.id);
    this.#seenIds.set(signal.id, signal);
    while (this.#seenIds.size > this.#idempotencyWindow) {
      const oldest = this.#seenIds.keys().next();
      if (oldest.done === true) break;
      this.#seenIds.delete(oldest.value);
    }
  }
}
