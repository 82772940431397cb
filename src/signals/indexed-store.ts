// What the embedded and the NATS store have in common: reads served from one SignalIndex, the
// readiness latch, and listener plumbing. Subclasses decide how a write becomes durable.

import type { Logger } from "pino";
import { VigilError } from "../errors/index.js";
import { SignalIndex, type WriteDecision } from "./signal-index.js";
import { DEFAULT_MAX_CLOCK_SKEW_MS, futureProblem, parseSignal } from "./validation.js";
import type { Signal, SignalInput, SignalKind, SignalOf } from "./model.js";
import type { Freshness, PutResult, SignalStore } from "./store.js";
import type { Metrics } from "../telemetry/metrics.js";

export interface IndexedStoreDeps {
  logger: Logger;
  /** Clock for expiry on reads and for write times (tests pass a fake one). */
  now?: () => number;
  /** Event ids remembered for idempotency; see SignalIndexOptions. */
  idempotencyWindow?: number;
  /**
   * How far ahead of this instance's clock an observedAt may be (store.maxClockSkewMs). A value
   * dated further ahead would win every latest-wins comparison until its date came true.
   */
  maxClockSkewMs?: number;
  /** Most values held (store.maxSignals); see SignalIndex. */
  maxSignals?: number;
  /** Where writes refused for space are counted (vigil_signal_writes_refused_total). */
  metrics?: Partial<Pick<Metrics, "signalWritesRefused" | "signalsSwept">>;
  /** How often expired signals and spent grants are swept (store.sweepIntervalMs); 0 = never. */
  sweepIntervalMs?: number;
}

/** A child logger for a store, adding `component: "signals"` unless the caller's logger has one. */
export function storeLogger(logger: Logger, store: string): Logger {
  const bindings = logger.bindings();
  return logger.child("component" in bindings ? { store } : { component: "signals", store });
}

export abstract class IndexedStore implements SignalStore {
  protected readonly index: SignalIndex;
  protected readonly logger: Logger;
  protected readonly now: () => number;
  protected readonly maxClockSkewMs: number;
  protected closed = false;
  readonly #ready: Promise<void>;
  #markReady: () => void = () => undefined;
  #markFailed: (error: VigilError) => void = () => undefined;
  #isReady = false;
  #sweeper: NodeJS.Timeout | undefined;
  readonly #swept: IndexedStoreDeps["metrics"];

  protected constructor(deps: IndexedStoreDeps) {
    this.logger = deps.logger;
    this.now = deps.now ?? Date.now;
    this.maxClockSkewMs = deps.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS;
    this.index = new SignalIndex({
      idempotencyWindow: deps.idempotencyWindow,
      maxSignals: deps.maxSignals,
      now: this.now,
      onFull: () => {
        deps.metrics?.signalWritesRefused?.labels("capacity").inc();
      },
      onListenerError: (error, signal) => {
        this.logger.error({ err: error, kind: signal.kind, id: signal.id }, "signal listener threw");
      },
    });
    this.#ready = new Promise<void>((resolve, reject) => {
      this.#markReady = resolve;
      this.#markFailed = reject;
    });
    // A failed start is reported through ready() and every write; never as an unhandled rejection.
    this.#ready.catch(() => undefined);
    this.#swept = deps.metrics;
    const interval = deps.sweepIntervalMs ?? 0;
    if (interval > 0) {
      this.#sweeper = setInterval(() => { this.sweepNow(); }, interval);
      this.#sweeper.unref();
    }
  }

  /**
   * Forgets expired signals and spent grants (SignalIndex.sweepAll) and lets the store delete
   * them where it keeps them (the bucket); returns how many left. The journal drops them at its
   * next compaction, which snapshots what memory holds.
   */
  sweepNow(): number {
    if (!this.#isReady || this.closed) return 0;
    const removed = this.index.sweepAll(this.now(), (signal) => { this.swept(signal); });
    if (removed > 0) {
      this.#swept?.signalsSwept?.inc(removed);
      this.logger.debug({ removed }, "expired signals and spent grants swept");
    }
    return removed;
  }

  /** A value the sweep removed from memory; the NATS store deletes it from the bucket too. */
  protected swept(_signal: Signal): void {
    // Embedded: the next compaction leaves it out.
  }

  /** Stops the periodic sweep (close). */
  protected stopSweeping(): void {
    clearInterval(this.#sweeper);
  }

  get isReady(): boolean {
    return this.#isReady;
  }

  ready(): Promise<void> {
    return this.#ready;
  }

  get<K extends SignalKind>(subject: string, kind: K, name = "", nowMs = this.now()): SignalOf<K> | undefined {
    return this.index.get(subject, kind, name, nowMs);
  }

  list(subject: string): Signal[] {
    return this.index.list(subject, this.now());
  }

  size(): number {
    return this.index.size();
  }

  subscribe(listener: (signal: Signal) => void): () => void {
    return this.index.subscribe(listener);
  }

  protected markReady(): void {
    if (this.#isReady) return;
    this.#isReady = true;
    this.#markReady();
  }

  protected markFailed(error: unknown): void {
    this.#markFailed(VigilError.from(error, "unavailable"));
  }

  /** Waits for the initial load, then refuses writes on a closed store. */
  protected async writable(): Promise<void> {
    await this.#ready;
    if (this.closed) throw new VigilError("unavailable", "the signal store is closed");
  }

  /**
   * Validates (shape, subject form, no expiry on sticky values, observedAt within the clock skew)
   * and writes by the rules of SignalIndex.decide. Every refusal is VigilError("invalid_input")
   * or ("conflict") with a message that never quotes the refused value.
   */
  async put(input: SignalInput): Promise<PutResult> {
    const signal = parseSignal(input);
    const future = futureProblem(signal.observedAt, this.now(), this.maxClockSkewMs);
    if (future !== undefined) throw new VigilError("invalid_input", `invalid signal: ${future}`);
    return this.write(() => this.index.decide(signal));
  }

  /** Lifts a revocation; the subject, `by` and `reason` are validated like any revocation write. */
  async reinstate(subject: string, by: string, reason: string): Promise<PutResult> {
    parseSignal({ id: "reinstate", kind: "revocation", subject, source: "vigil", observedAt: 0, data: { revoked: false, reason, by } });
    return this.write(() => this.index.reinstatement(subject, by, reason, this.now()));
  }

  /** Makes a decided write durable in the store's own way; `decide` may be called again on a retry. */
  protected abstract write(decide: () => WriteDecision): Promise<PutResult>;
  abstract useGrant(subject: string, name: string, nowMs: number): boolean | Promise<boolean>;
  abstract freshness(nowMs: number): Freshness;
  abstract close(): Promise<void>;
}
