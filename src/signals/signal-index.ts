// The in-memory state every SignalStore serves reads from, and the write rules both stores apply
// to local writes and bus values alike: revocations and terminal credential states move one way
// whatever their timestamps, otherwise the latest observedAt wins; writes are idempotent on the
// event id; expired signals are invisible. Stores decide with it, persist, then apply to it.
//
// Memory is bounded: at most `maxSignals` values are held. A write to a new address past the bound
// is refused with VigilError("unavailable") — unless it is a revocation in force or a terminal
// credential state, which is always taken (security state only moves towards refusal, so a full
// store may refuse a risk score, never a revocation; only latest-wins kinds are bounded, and the
// sticky ones are bounded by the subjects that can be revoked). Expired values leave memory: each
// set() sweeps a few subjects from a cursor that goes round the map, and a full store sweeps
// everything (at most once a second) before refusing.

import { randomUUID } from "node:crypto";
import { VigilError } from "../errors/index.js";
import { CREDENTIAL_SEVERITY, isExpired, isSticky } from "./model.js";
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
  /** Most values held (store.maxSignals); sticky values are admitted past it. */
  maxSignals?: number;
  /** A write was refused because the index is full (counted by the store). */
  onFull?: (signal: Signal) => void;
  /** Clock for sweeping expired values. */
  now?: () => number;
}

/** Source recorded on signals Vigil derives itself (reinstatements). */
export const VIGIL_SOURCE = "vigil";
/** Event ids of reinstatements start with this. */
const REINSTATE_ID_PREFIX = "reinstate-";

/** Why a value does not replace the one held: it is older, or it would undo a sticky state. */
export type Refusal = "stale" | "lifts_revocation" | "softens_credential";

/** What to do with a value read from the bus. */
export type RemoteVerdict =
  | { accept: true; /** A revocation lifted by a reinstatement another instance wrote: audit it. */ reinstated?: true }
  | { accept: false; reason: Refusal | "reused_id" };

/**
 * The write rules (design §4), for a value at an address that already holds `held`:
 * - a revocation in force is lifted only by reinstate; a new revocation always applies, whatever
 *   its timestamp (a late-arriving revocation must not be dropped as "older" than a reinstate);
 * - a credential never leaves a terminal state, and a more severe state always applies, whatever
 *   its timestamp (a compromise observed before a held "active" still compromises);
 * - otherwise the latest observedAt wins (risk, posture, behaviour, grants, attestations, a
 *   credential between active and expired, a revocation refreshed by another revocation).
 * Expiry plays no part: a sticky value never expires (isExpired).
 */
function judge(signal: Signal, held: Signal): "write" | Refusal {
  if (signal.kind === "revocation" && held.kind === "revocation") {
    if (held.data.revoked && !signal.data.revoked) return "lifts_revocation";
    if (signal.data.revoked && !held.data.revoked) return "write";
  } else if (signal.kind === "credential" && held.kind === "credential") {
    const from = CREDENTIAL_SEVERITY[held.data.state];
    const to = CREDENTIAL_SEVERITY[signal.data.state];
    if (from > 0 && to === 0) return "softens_credential";
    if (to > from) return "write";
    if (to < from) return "stale";
  }
  return signal.observedAt < held.observedAt ? "stale" : "write";
}

/**
 * What `SignalIndex.reinstatement` writes: the only revocation=false value that may replace one in
 * force. Its form can be copied by whoever may write to the bus, which is why NATS credentials
 * limit who may, and why every instance logs a lift it applies from the bus.
 */
function isReinstatement(signal: Signal, held: Signal): boolean {
  return signal.kind === "revocation" && !signal.data.revoked && signal.source === VIGIL_SOURCE
    && signal.id.startsWith(REINSTATE_ID_PREFIX) && signal.observedAt >= held.observedAt;
}

/**
 * A bus value carrying the event id of the value held: our own write coming back, a repair that
 * restored it, or a grant with uses taken on another instance. Anything else re-using an id is
 * refused: an event id names one fact.
 */
function sameEvent(signal: Signal, held: Signal, allowance: number): RemoteVerdict {
  if (signal.kind === "grant" && held.kind === "grant") {
    const same = JSON.stringify({ ...signal, data: { ...signal.data, usesLeft: 0 } })
      === JSON.stringify({ ...held, data: { ...held.data, usesLeft: 0 } });
    // Uses only go down; the ones this instance took are not in the bus value yet.
    if (same && signal.data.usesLeft <= held.data.usesLeft + allowance) return { accept: true };
    return { accept: false, reason: "reused_id" };
  }
  return JSON.stringify(signal) === JSON.stringify(held) ? { accept: true } : { accept: false, reason: "reused_id" };
}

export const DEFAULT_IDEMPOTENCY_WINDOW = 100_000;
export const DEFAULT_MAX_SIGNALS = 1_000_000;
/** Subjects looked at for expired values on each set(): more than one, so sweeping outpaces growth. */
const SWEEP_PER_SET = 4;
/** A full store sweeps everything before refusing, but not more often than this. */
const FULL_SWEEP_EVERY_MS = 1000;


/** Where a value lives: one per (subject, kind, name). */
export interface SignalAddress {
  subject: string;
  kind: SignalKind;
  name: string;
}

/** Key of a value in a subject's map (the many-values form only): the bare kind when unnamed. */
function slotOf(kind: SignalKind, name: string): string {
  return name === "" ? kind : `${kind}\u0000${name}`;
}

/**
 * What one subject holds, in the smallest form that fits: the value itself when it is the only
 * one (most subjects: one risk score, one credential state, one revocation), the values in
 * write order when a few (a linear search over kind and name beats hashing at that size), a map
 * by slot past MAX_LISTED so that many named values (grants) cannot make writes quadratic. A
 * per-subject Map cost about 180 bytes even for one value; at 100k subjects that was a third of
 * what the index held (bench/memory.bench.ts). Arrays are replaced, never grown in place, so
 * each is exactly as long as what it holds.
 */
type Held = Signal | Signal[] | Map<string, Signal>;
/** Most values kept as a list; one more turns the subject's values into a map. */
const MAX_LISTED = 8;
/** A map that shrinks to this many goes back to a list (not at MAX_LISTED: no flapping). */
const RELIST_AT = MAX_LISTED / 2;

function isOne(held: Held): held is Signal {
  return !Array.isArray(held) && !(held instanceof Map);
}

function find(held: Held, kind: SignalKind, name: string): Signal | undefined {
  if (Array.isArray(held)) {
    for (const signal of held) if (signal.kind === kind && signal.name === name) return signal;
    return undefined;
  }
  if (held instanceof Map) return held.get(slotOf(kind, name));
  return held.kind === kind && held.name === name ? held : undefined;
}

/** The form that holds `values` (in their order), or undefined when there are none. */
function heldFor(values: Signal[]): Held | undefined {
  if (values.length > MAX_LISTED) return new Map(values.map((signal) => [slotOf(signal.kind, signal.name), signal]));
  if (values.length > 1) return values;
  return values[0];
}

/** The values held, in write order (the order of the first write to each address). */
function valuesIn(held: Held): Signal[] {
  if (Array.isArray(held)) return held;
  if (held instanceof Map) return [...held.values()];
  return [held];
}

/** `held` with `signal` at its address, and the value it replaced. */
function withValue(held: Held | undefined, signal: Signal): { held: Held; previous: Signal | undefined } {
  if (held === undefined) return { held: signal, previous: undefined };
  if (held instanceof Map) {
    const slot = slotOf(signal.kind, signal.name);
    const previous = held.get(slot);
    held.set(slot, signal);
    return { held, previous };
  }
  if (!Array.isArray(held)) {
    if (held.kind === signal.kind && held.name === signal.name) return { held: signal, previous: held };
    return { held: [held, signal], previous: undefined };
  }
  const at = held.findIndex((value) => value.kind === signal.kind && value.name === signal.name);
  if (at >= 0) return { held: held.with(at, signal), previous: held[at] };
  return { held: heldFor(held.concat(signal)) ?? signal, previous: undefined };
}

/** `held` without the value at (kind, name), and that value. */
function withoutValue(held: Held, kind: SignalKind, name: string): { held: Held | undefined; previous: Signal | undefined } {
  if (held instanceof Map) {
    const slot = slotOf(kind, name);
    const previous = held.get(slot);
    if (previous === undefined) return { held, previous };
    held.delete(slot);
    return { held: held.size <= RELIST_AT ? heldFor([...held.values()]) : held, previous };
  }
  if (!Array.isArray(held)) {
    return held.kind === kind && held.name === name ? { held: undefined, previous: held } : { held, previous: undefined };
  }
  const at = held.findIndex((value) => value.kind === kind && value.name === name);
  if (at < 0) return { held, previous: undefined };
  return { held: heldFor(held.toSpliced(at, 1)), previous: held[at] };
}

export class SignalIndex {
  /**
   * Subject → its values (see {@link Held}). Looked up by subject first, then by kind and name
   * inside: the hot path then hashes the caller's subject string (V8 caches a string's hash),
   * never a freshly built key; measured about twice as fast at 100k subjects as one map keyed by
   * a concatenated signalKey. The per-subject part doubles as the index for `list`.
   */
  readonly #bySubject = new Map<string, Held>();
  #size = 0;
  /** Event id → the value it produced, in insertion order so the oldest can be evicted. */
  readonly #seenIds = new Map<string, Signal>();
  readonly #listeners = new Set<SignalListener>();
  readonly #idempotencyWindow: number;
  readonly #onListenerError: (error: unknown, signal: Signal) => void;
  readonly #maxSignals: number;
  readonly #onFull: (signal: Signal) => void;
  readonly #now: () => number;
  /** Where the incremental sweep goes on; a Map iterator survives inserts and deletes. */
  #sweepCursor: MapIterator<[string, Held]> | undefined;
  #lastFullSweepAt = Number.NEGATIVE_INFINITY;

  constructor(options: SignalIndexOptions = {}) {
    this.#idempotencyWindow = options.idempotencyWindow ?? DEFAULT_IDEMPOTENCY_WINDOW;
    this.#onListenerError = options.onListenerError ?? (() => undefined);
    this.#maxSignals = options.maxSignals ?? DEFAULT_MAX_SIGNALS;
    this.#onFull = options.onFull ?? (() => undefined);
    this.#now = options.now ?? Date.now;
  }

  /**
   * The subject looked up last and its values: one Check reads several kinds of the same subject
   * in a row (risk, posture, behavior and revocation of the caller; credential and revocation of
   * its fingerprint), and at 100k subjects each lookup in the big map is a cache miss. Kept in
   * step by #hold, the only place a subject's values change, so it never hides a value.
   */
  #lastSubject: string | undefined;
  #lastHeld: Held | undefined;

  #valuesOf(subject: string): Held | undefined {
    if (subject === this.#lastSubject) return this.#lastHeld;
    const held = this.#bySubject.get(subject);
    this.#lastSubject = subject;
    this.#lastHeld = held;
    return held;
  }

  /** Makes `held` what `subject` holds (nothing: the subject leaves the map). */
  #hold(subject: string, held: Held | undefined): void {
    if (held === undefined) this.#bySubject.delete(subject);
    else this.#bySubject.set(subject, held);
    if (subject === this.#lastSubject) this.#lastHeld = held;
  }

  get<K extends SignalKind>(subject: string, kind: K, name: string, nowMs: number): SignalOf<K> | undefined {
    const values = this.#valuesOf(subject);
    if (values === undefined) return undefined;
    const held = find(values, kind, name);
    if (held === undefined || isExpired(held, nowMs)) return undefined;
    return held as SignalOf<K>;
  }

  list(subject: string, nowMs: number): Signal[] {
    const held = this.#bySubject.get(subject);
    if (held === undefined) return [];
    const live: Signal[] = [];
    for (const signal of valuesIn(held)) if (!isExpired(signal, nowMs)) live.push(signal);
    return live;
  }

  /** The raw value at an address, expired or not. */
  held(address: SignalAddress): Signal | undefined {
    const held = this.#bySubject.get(address.subject);
    return held === undefined ? undefined : find(held, address.kind, address.name);
  }

  size(): number {
    return this.#size;
  }

  /** Every value held, expired ones included (journal snapshots filter them). */
  * values(): Generator<Signal> {
    for (const held of this.#bySubject.values()) yield* valuesIn(held);
  }

  /**
   * Judges a validated write against what is held (see {@link judge}). Throws
   * VigilError("conflict") when a put would lift a revocation (only `reinstate` may) or bring a
   * credential back from a terminal state.
   */
  decide(signal: Signal): WriteDecision {
    const seen = this.#seenIds.get(signal.id);
    if (seen !== undefined) return { status: "duplicate", signal: seen };
    const held = this.held(signal);
    if (held === undefined) {
      if (!this.hasRoomFor(signal)) {
        this.#onFull(signal);
        throw new VigilError("unavailable", `the signal store is full (store.maxSignals = ${String(this.#maxSignals)} values); `
          + `a new ${signal.kind} signal was refused. Revocations and terminal credential states are still taken`);
      }
      return { status: "write", signal };
    }
    if (held.id === signal.id) return { status: "duplicate", signal: held };
    const verdict = judge(signal, held);
    switch (verdict) {
      case "write": return { status: "write", signal };
      case "stale": return { status: "stale", signal: held };
      case "lifts_revocation":
        throw new VigilError(
          "conflict",
          `${held.subject} is revoked; a put cannot lift a revocation, use reinstate (audited)`,
        );
      case "softens_credential":
        // A key that leaked stays leaked: the way out is rotation, which gives a new fingerprint.
        throw new VigilError(
          "conflict",
          `credential ${held.subject} is ${held.kind === "credential" ? held.data.state : "terminal"}; it cannot become `
          + `${signal.kind === "credential" ? signal.data.state : "live"} again — rotate it (a new key has a new fingerprint)`,
        );
    }
  }

  /**
   * Judges a value read from the bus, which no instance decided for us: anything a rogue bus
   * client could write. Honest values always pass, because the instance that wrote one decided
   * it against the value it replaced by these same rules (compare-and-set on the revision).
   * `allowance` is the grant uses this instance took locally and has not written back yet.
   */
  judgeRemote(signal: Signal, allowance = 0): RemoteVerdict {
    const held = this.held(signal);
    if (held === undefined) return { accept: true };
    if (held.id === signal.id) return sameEvent(signal, held, allowance);
    const verdict = judge(signal, held);
    if (verdict === "write") return { accept: true };
    if (verdict === "lifts_revocation" && isReinstatement(signal, held) && !this.#seenIds.has(signal.id)) {
      return { accept: true, reinstated: true };
    }
    return { accept: false, reason: verdict };
  }

  /**
   * Whether `signal` may be held: it replaces a value, it is sticky (always admitted), or there is
   * room — after sweeping expired values when the index is full.
   */
  hasRoomFor(signal: Signal): boolean {
    if (this.#size < this.#maxSignals || isSticky(signal) || this.held(signal) !== undefined) return true;
    const nowMs = this.#now();
    if (nowMs - this.#lastFullSweepAt >= FULL_SWEEP_EVERY_MS) {
      this.#lastFullSweepAt = nowMs;
      this.sweep(nowMs, Number.POSITIVE_INFINITY);
    }
    return this.#size < this.#maxSignals;
  }

  /**
   * Forgets expired values of up to `subjects` subjects, going on from where the last sweep
   * stopped; returns how many values left. Sticky values never expire, so are never swept.
   */
  sweep(nowMs: number, subjects: number): number {
    let removed = 0;
    let cursor = this.#sweepCursor ?? this.#bySubject.entries();
    let restarted = this.#sweepCursor === undefined;
    const limit = Math.min(subjects, this.#bySubject.size);
    for (let seen = 0; seen < limit;) {
      const next = cursor.next();
      if (next.done === true) {
        // One full round per call at most when asked for everything.
        if (restarted) break;
        cursor = this.#bySubject.entries();
        restarted = true;
        continue;
      }
      seen++;
      const [subject, held] = next.value;
      removed += this.#prune(subject, held, (signal) => isExpired(signal, nowMs), undefined);
    }
    this.#sweepCursor = cursor;
    return removed;
  }

  /**
   * Forgets every expired value and every spent grant (no uses left: it can never allow again),
   * telling `onRemoved` of each; the periodic sweep (store.sweepIntervalMs), so that what leaves
   * is also deleted from the journal or the bucket. Sticky values never leave. Visits everything:
   * run it seldom.
   */
  sweepAll(nowMs: number, onRemoved: (signal: Signal) => void): number {
    let removed = 0;
    const leaves = (signal: Signal): boolean => (signal.kind === "grant" && signal.data.usesLeft <= 0) || isExpired(signal, nowMs);
    for (const [subject, held] of this.#bySubject) removed += this.#prune(subject, held, leaves, onRemoved);
    return removed;
  }

  /**
   * Drops the values of `subject` that `leaves` picks, forgetting their event ids, then tells
   * `onRemoved` of each (once the subject's values are consistent again); returns how many.
   */
  #prune(subject: string, held: Held, leaves: (signal: Signal) => boolean, onRemoved: ((signal: Signal) => void) | undefined): number {
    let gone: Signal[];
    if (isOne(held)) {
      if (!leaves(held)) return 0;
      gone = [held];
      this.#hold(subject, undefined);
    } else {
      const values = valuesIn(held);
      if (!values.some(leaves)) return 0;
      gone = values.filter(leaves);
      this.#hold(subject, heldFor(values.filter((signal) => !leaves(signal))));
    }
    this.#size -= gone.length;
    for (const signal of gone) this.#forgetId(signal);
    if (onRemoved !== undefined) for (const signal of gone) onRemoved(signal);
    return gone.length;
  }

  /** The address holds a sticky value: a delete from the bus must not forget it. */
  holdsSticky(address: SignalAddress): boolean {
    const held = this.held(address);
    return held !== undefined && isSticky(held);
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
    if (!held.data.revoked) return { status: "duplicate", signal: held };
    return {
      status: "write",
      signal: {
        id: `${REINSTATE_ID_PREFIX}${randomUUID()}`,
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
    const held = this.#bySubject.get(signal.subject);
    const next = withValue(held, signal);
    if (next.held !== held) this.#hold(signal.subject, next.held);
    if (next.previous === undefined) this.#size++;
    this.#remember(signal);
    this.sweep(this.#now(), SWEEP_PER_SET);
    if (notify) this.emit(signal);
    return next.previous;
  }

  /** Forgets the value at an address (a KV delete). Listeners are not told: they receive values. */
  remove(address: SignalAddress): Signal | undefined {
    const held = this.#bySubject.get(address.subject);
    if (held === undefined) return undefined;
    const next = withoutValue(held, address.kind, address.name);
    if (next.previous === undefined) return undefined;
    if (next.held !== held) this.#hold(address.subject, next.held);
    this.#size--;
    return next.previous;
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

  /**
   * A swept value leaves the idempotency window with it: the window held the value itself, so
   * every expired signal stayed in memory until 100k later writes pushed its id out (the soak
   * bench's slow heap growth). Replayed after this, the event is judged afresh: it has expired,
   * so it is swept again and never read (get and list skip expired values).
   */
  #forgetId(signal: Signal): void {
    if (this.#seenIds.get(signal.id) === signal) this.#seenIds.delete(signal.id);
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
