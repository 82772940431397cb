// The embedded signal store (design §1, one process, nothing else to run): values in memory,
// every applied write appended to a journal and fsynced before the write is acknowledged, the
// journal replayed at start. `journalPath: ""` keeps everything in memory (tests, `vigil check`).
// A journal that cannot be written (full or read-only disk) refuses writes with "unavailable"
// while reads and decisions go on from memory; a journal with corrupt records refuses to start
// unless `journalRepair` says the operator accepts losing them.
// At most `maxQueuedWrites` writes wait at once; more are refused with "unavailable" (retry), so a
// stuck disk cannot turn into unbounded memory.

import { VigilError } from "../errors/index.js";
import { isExpired } from "./model.js";
import type { Signal } from "./model.js";
import type { Freshness, PutResult } from "./store.js";
import type { StoreConfig } from "../config/schema.js";
import { IndexedStore, storeLogger } from "./indexed-store.js";
import type { IndexedStoreDeps } from "./indexed-store.js";
import { JournalWriter, encodeRecord, preserveDamagedJournal, replayJournal } from "./journal.js";
import type { JournalHealth, JournalRecovery, JournalStats } from "./journal.js";
import type { WriteDecision } from "./signal-index.js";
import type { SignalStore } from "./store.js";

export type EmbeddedStoreDeps = IndexedStoreDeps;

export interface EmbeddedSignalStore extends SignalStore {
  /** What replay found (after ready()); undefined for a memory-only store. */
  readonly recovery: JournalRecovery | undefined;
  /** Journal counters; undefined for a memory-only store or before ready(). */
  journalStats(): JournalStats | undefined;
  /** Whether the journal takes writes now; undefined for a memory-only store or before ready(). */
  journalHealth(): JournalHealth | undefined;
}

/**
 * Creates the store and starts replaying its journal; await `ready()` before serving. Writes made
 * before ready wait for it; reads before ready see what has been replayed so far.
 */
export function createEmbeddedStore(config: StoreConfig, deps: EmbeddedStoreDeps): EmbeddedSignalStore {
  return new EmbeddedStore(config, deps);
}

class EmbeddedStore extends IndexedStore implements EmbeddedSignalStore {
  readonly #config: StoreConfig;
  #journal: JournalWriter | undefined;
  #recovery: JournalRecovery | undefined;
  /** Values applied to memory whose journal write has not been fsynced yet. */
  readonly #inflight = new Map<Signal, Promise<void>>();
  readonly #opening: Promise<void>;
  /** Writes accepted and not answered yet (waiting for the start, a decision or the journal). */
  #queued = 0;
  readonly #maxQueued: number;
  readonly #metrics: IndexedStoreDeps["metrics"];

  constructor(config: StoreConfig, deps: EmbeddedStoreDeps) {
    super({
      sweepIntervalMs: config.sweepIntervalMs, ...deps,
      logger: storeLogger(deps.logger, "embedded"), maxClockSkewMs: config.maxClockSkewMs, maxSignals: config.maxSignals,
    });
    this.#maxQueued = config.maxQueuedWrites;
    this.#metrics = deps.metrics;
    this.#config = config;
    this.#opening = this.#open();
  }

  get recovery(): JournalRecovery | undefined {
    return this.#recovery;
  }

  journalStats(): JournalStats | undefined {
    return this.#journal?.stats;
  }

  journalHealth(): JournalHealth | undefined {
    return this.#journal?.health;
  }

  async #open(): Promise<void> {
    const path = this.#config.journalPath;
    if (path === "") {
      this.markReady();
      return;
    }
    try {
      // The journal holds applied values in order, so replay sets them as they are: the write
      // rules were applied when each record was written. Replay is not news: no listeners.
      const recovery = await replayJournal(path, (signal) => this.index.set(signal, false), this.logger);
      this.#recovery = recovery;
      if (recovery.corrupt > 0 && !this.#config.journalRepair) {
        // A damaged record in the middle may have been a revocation or a leak: serving without it
        // would quietly lift it. Refuse to start (fail closed) until an operator has looked.
        const lines = recovery.damaged.map((d) => d.line).join(", ");
        throw new VigilError("unavailable", `signal journal ${path} has ${String(recovery.corrupt)} corrupt record(s) `
          + `(line ${lines}${recovery.corrupt > recovery.damaged.length ? ", …" : ""}); a signal such as a revocation may be `
          + "missing. Inspect the file, then start once with --journal-repair to drop them (a copy is kept)");
      }
      this.#journal = await JournalWriter.open(path, {
        records: recovery.records,
        compactAfterRecords: this.#config.compactAfterRecords,
        snapshot: () => this.#unexpired(),
        liveCount: () => this.index.size(),
        logger: this.logger,
        now: this.now,
      });
      if (recovery.corrupt > 0) {
        const copy = await preserveDamagedJournal(path, this.now());
        await this.#journal.rewrite();
        this.logger.error(
          { journal: path, copy, ...recovery },
          "journal repaired: corrupt records dropped, the damaged file kept beside it",
        );
      } else if (recovery.tornTail) {
        this.logger.warn({ journal: path, ...recovery }, "journal replayed; its torn last record was cut off");
      } else {
        this.logger.info({ journal: path, ...recovery }, "journal replayed");
      }
      this.markReady();
    } catch (error) {
      this.logger.error({ err: error, journal: path }, "cannot open the signal journal");
      this.markFailed(error);
    }
  }

  /** Journal records of the values worth keeping (unexpired), for a compaction. */
  * #unexpired(): Generator<string> {
    const nowMs = this.now();
    for (const signal of this.index.values()) {
      if (!isExpired(signal, nowMs)) yield encodeRecord(signal);
    }
  }

  /**
   * A duplicate or stale answer may point at a value whose own write is still being fsynced; it
   * is given only once that value is durable (and re-decided if that write failed), so "duplicate"
   * always means "already safe on disk".
   */
  protected async write(decide: () => WriteDecision): Promise<PutResult> {
    if (this.#queued >= this.#maxQueued) {
      // A slow or stuck disk must not turn into unbounded memory: the caller retries (503).
      this.#metrics?.signalWritesRefused?.labels("queue_full").inc();
      throw new VigilError("unavailable", `too many signal writes waiting for the journal (store.maxQueuedWrites = ${String(this.#maxQueued)}); retry`);
    }
    this.#queued++;
    try {
      return await this.#write(decide);
    } finally {
      this.#queued--;
    }
  }

  async #write(decide: () => WriteDecision): Promise<PutResult> {
    await this.writable();
    for (;;) {
      const decision = decide();
      if (decision.status === "write") {
        await this.#apply(decision.signal);
        return { status: "written", signal: decision.signal };
      }
      const inflight = this.#inflight.get(decision.signal);
      if (inflight === undefined) return decision;
      await inflight.catch(() => undefined);
    }
  }

  /**
   * Applied to memory first so that the next decision (and the next concurrent write) sees it;
   * acknowledged and announced only once durable. If the journal fails, the value is taken back
   * so that a retry with the same event id is written rather than called a duplicate.
   */
  async #apply(signal: Signal): Promise<void> {
    const previous = this.index.set(signal, false);
    if (this.#journal !== undefined) {
      const durable = this.#journal.append(encodeRecord(signal));
      this.#inflight.set(signal, durable);
      try {
        await durable;
      } catch (error) {
        this.index.revert(signal, previous);
        throw error;
      } finally {
        this.#inflight.delete(signal);
      }
    }
    this.index.emit(signal);
  }

  useGrant(subject: string, name: string, nowMs: number): boolean {
    if (!this.isReady || this.closed) return false;
    const used = this.index.grantAfterUse(subject, name, nowMs);
    if (used === undefined) return false;
    this.index.set(used, false);
    if (this.#journal === undefined) {
      this.index.emit(used);
      return true;
    }
    // The hot path does not wait for the disk; a crash before the fsync forgets this one use.
    this.#journal.append(encodeRecord(used)).then(
      () => {
        this.index.emit(used);
      },
      (error: unknown) => {
        this.logger.error({ err: error, subject, name }, "could not journal a grant use");
      },
    );
    return true;
  }

  freshness(nowMs: number): Freshness {
    // The embedded store is its own source of truth: it is never behind anything.
    return { fresh: true, lastHeardAt: nowMs, ageMs: 0 };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopSweeping();
    await this.#opening;
    await this.#journal?.close();
  }
}
