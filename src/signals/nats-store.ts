// The cluster signal store (design §1, `--bus nats://…`): NATS JetStream KV is the source of
// truth, every instance watches the bucket and serves reads from memory. Writes are compare-and-set
// on the key's revision, so the write rules (signal-index.ts: sticky revocations and credential
// states, latest-wins otherwise, grants never below zero) hold across instances, not just inside
// one. Values read from the bus are judged by the same rules before they are applied: any client
// that can write to the bucket could have put them there.

import { setTimeout as sleep } from "node:timers/promises";
import { Bucket, Kvm, KvWatchInclude } from "@nats-io/kv";
import type { KV, KvEntry, KvWatchEntry } from "@nats-io/kv";
import type { NatsConnection, QueuedIterator } from "@nats-io/transport-node";
import { VigilError } from "../errors/index.js";
import { signalSchema } from "./model.js";
import type { Signal } from "./model.js";
import type { Freshness, PutResult, SignalStore } from "./store.js";
import type { StoreConfig } from "../config/schema.js";
import type { Metrics } from "../telemetry/metrics.js";
import { futureProblem } from "./validation.js";
import { addressForKvKey, isSignalKind, kvKeyFor } from "./nats-codec.js";
import { IndexedStore, storeLogger } from "./indexed-store.js";
import { connectBus, drainConnection, isRevisionConflict, keyDigest, withTimeout } from "./nats-bucket.js";
import type { IndexedStoreDeps } from "./indexed-store.js";
import type { Refusal, SignalAddress, WriteDecision } from "./signal-index.js";

export interface NatsStoreDeps extends IndexedStoreDeps {
  /** Connection name shown by the NATS server (e.g. the pod name). */
  name?: string;
  /** Where grant uses decided on the bus are counted (vigil_grant_claims_total). */
  grantClaims?: Metrics["grantClaims"];
  /** Where refused bus values are counted (vigil_signal_bus_refused_total). */
  metrics?: Pick<Metrics, "busValuesRefused"> & Partial<Pick<Metrics, "signalWritesRefused" | "grantClaims" | "signalsSwept">>;
}

/**
 * Why a value read from the bus was not applied; the label values of
 * vigil_signal_bus_refused_total, so a closed set.
 */
export type BusRefusal =
  /** A key that is not kind.subject[.name] as Vigil writes it. */
  | "unknown_key"
  /** Not JSON, not a signal, or a subject not of its kind's form. */
  | "invalid"
  /** A valid signal stored under another signal's key. */
  | "wrong_key"
  /** observedAt beyond this instance's clock plus store.maxClockSkewMs. */
  | "future"
  /** A delete of a revocation in force or a terminal credential state. */
  | "deletes_sticky"
  | Refusal
  | "reused_id"
  /** A new address while store.maxSignals values are held (never a sticky value: those always fit). */
  | "capacity";

/** How a grant use decided on the bus ended: the label values of vigil_grant_claims_total. */
export type GrantClaimResult = "used" | "spent" | "timeout" | "unavailable";

export interface NatsSignalStore extends SignalStore {
  /** The KV bucket this store watches. */
  readonly bucket: string;
}

/** KV bucket holding signals for a bucket prefix. */
export function signalsBucketName(bucketPrefix: string): string {
  return `${bucketPrefix}-signals`;
}

export { addressForKvKey, kvKeyFor } from "./nats-codec.js";

/** Delete markers older than this are purged from the bucket by the sweep. */
const DELETE_MARKER_AGE_MS = 30 * 60_000;
/** Write attempts before a compare-and-set loop gives up under contention. */
const MAX_CAS_ATTEMPTS = 10;

/**
 * Creates the store and starts connecting, creating the bucket if needed, and loading it.
 * `ready()` resolves once the bucket's values at start are in memory; it rejects with
 * VigilError("unavailable") if NATS cannot be reached or the bucket cannot be opened.
 */
export function createNatsStore(config: StoreConfig, deps: NatsStoreDeps): NatsSignalStore {
  return new NatsStore(config, deps);
}

class NatsStore extends IndexedStore implements NatsSignalStore {
  readonly bucket: string;
  readonly #config: StoreConfig;
  readonly #name: string;
  readonly #writeTimeoutMs: number;
  readonly #starting: Promise<void>;
  readonly #stopping = new AbortController();
  readonly #background = new Set<Promise<void>>();
  #nc: NatsConnection | undefined;
  #kv: KV | undefined;
  #connected = false;
  #heartbeat: NodeJS.Timeout | undefined;
  #beating = false;
  #lastHeardAt = 0;

  // Watch state. The watch delivers the bucket in revision (stream sequence) order.
  #watcher: QueuedIterator<KvWatchEntry> | undefined;
  /** Bumped for every (re)watch; a loop of an older generation stops applying. */
  #generation = 0;
  #lastRevision = 0;
  /** The stream's last revision when the current watch started; reaching it = caught up. */
  #catchUpTo = 0;
  #caughtUp = false;
  #rewatching = false;
  #rewatchAgain = false;
  /** KV key → revision of the value held: the expected revision of our next CAS. */
  readonly #revisions = new Map<string, number>();

  readonly #metrics: Pick<Metrics, "busValuesRefused"> | undefined;
  /** Grant uses being decided now (each a compare-and-set on the bus); close() waits for them. */
  readonly #claims = new Set<Promise<boolean>>();
  readonly #grantTimeoutMs: number;
  readonly #grantClaims: NatsStoreDeps["grantClaims"];
  #closing: Promise<void> | undefined;
  #lastMarkerPurge = 0;

  constructor(config: StoreConfig, deps: NatsStoreDeps) {
    super({
      sweepIntervalMs: config.sweepIntervalMs, ...deps,
      logger: storeLogger(deps.logger, "nats"), maxClockSkewMs: config.maxClockSkewMs, maxSignals: config.maxSignals,
    });
    this.#config = config;
    this.#name = deps.name ?? "vigil";
    this.#metrics = deps.metrics;
    this.bucket = signalsBucketName(config.bucketPrefix);
    this.#writeTimeoutMs = Math.max(1_000, config.freshnessBoundMs);
    this.#grantTimeoutMs = config.grantTimeoutMs;
    this.#grantClaims = deps.grantClaims ?? deps.metrics?.grantClaims;
    this.#starting = this.#start();
  }

  async #start(): Promise<void> {
    const bound = this.#config.freshnessBoundMs;
    try {
      const nc = await connectBus(this.#config, this.#name);
      this.#nc = nc;
      this.#connected = true;
      this.#track(this.#followConnection(nc));
      if (this.#stopped()) return;
      // One KV entry per signal key, history 1: signals are state, not events, so only the
      // current value matters and the watch's initial load is one message per key. File
      // storage because a JetStream ack is our durability promise (design §4).
      this.#kv = await new Kvm(nc).create(this.bucket, {
        history: 1,
        storage: "file",
        replicas: this.#config.replicas,
        description: "Vigil signals: latest value per subject, kind and name",
      });
      if (this.#stopped()) return;
      await this.#watch();
      this.#heartbeat = setInterval(() => {
        this.#beat();
      }, Math.max(50, Math.floor(bound / 4)));
      this.#heartbeat.unref();
    } catch (error) {
      this.logger.error({ err: error, bus: this.#config.bus, bucket: this.bucket }, "cannot open the signal bucket");
      this.markFailed(new VigilError("unavailable", `cannot open signal bucket ${this.bucket} on ${this.#config.bus}: ${VigilError.from(error).message}`, {
        cause: error,
      }));
      await this.#nc?.close().catch(() => undefined);
    }
  }

  /** Read through a method: TypeScript would otherwise keep a narrowing across awaits. */
  #stopped(): boolean {
    return this.closed;
  }

  /** Runs a background task; its failure is logged, and close() waits for it. */
  #track(task: Promise<void>): void {
    const tracked = task.catch((error: unknown) => {
      if (!this.closed) this.logger.error({ err: error }, "signal store background task failed");
    }).finally(() => {
      this.#background.delete(tracked);
    });
    this.#background.add(tracked);
  }

  async #followConnection(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === "disconnect") {
        this.#connected = false;
        this.#caughtUp = false;
        this.logger.warn({ server: status.server }, "lost the signal bus; signals age from now");
      } else if (status.type === "reconnect") {
        this.#connected = true;
        this.logger.info({ server: status.server }, "signal bus is back; catching up");
        this.#rewatch();
      }
    }
  }

  /**
   * (Re)starts the watch after the last applied revision. The KV watcher resumes by itself after
   * a short outage, but anything the server pushed into the dying connection is only noticed at
   * the next message; restarting from our own last revision never misses an update.
   */
  async #watch(): Promise<void> {
    const kv = this.#kv;
    if (kv === undefined) return;
    const generation = ++this.#generation;
    this.#watcher?.stop();
    this.#watcher = undefined;
    this.#caughtUp = false;
    const status = await kv.status();
    const target = status.values === 0 ? 0 : status.streamInfo.state.last_seq;
    const watcher = await kv.watch(
      this.#lastRevision > 0
        ? { resumeFromRevision: this.#lastRevision + 1 }
        : { include: KvWatchInclude.LastValue },
    );
    if (generation !== this.#generation || this.closed) {
      watcher.stop();
      return;
    }
    this.#watcher = watcher;
    this.#catchUpTo = target;
    this.#noteCaughtUp(false);
    this.#track(this.#consume(watcher, generation));
  }

  async #consume(watcher: QueuedIterator<KvWatchEntry>, generation: number): Promise<void> {
    try {
      for await (const entry of watcher) {
        if (generation !== this.#generation) break;
        this.#applyEntry(entry);
      }
    } catch (error) {
      this.logger.warn({ err: error, bucket: this.bucket }, "the signal watch failed");
    }
    // Still the current watch, yet ended: the consumer is gone (bucket recreated, server restart).
    if (generation === this.#generation && !this.closed) {
      this.logger.warn({ bucket: this.bucket }, "the signal watch ended; watching again");
      this.#caughtUp = false;
      this.#rewatch();
    }
  }

  #rewatch(): void {
    if (this.closed || this.#kv === undefined) return;
    if (this.#rewatching) {
      this.#rewatchAgain = true;
      return;
    }
    this.#rewatching = true;
    this.#track((async () => {
      try {
        let delay = 100;
        do {
          this.#rewatchAgain = false;
          try {
            await this.#watch();
          } catch (error) {
            if (this.closed) return;
            this.logger.warn({ err: error, retryInMs: delay }, "cannot watch the signal bucket yet");
            await sleep(delay, undefined, { signal: this.#stopping.signal }).catch(() => undefined);
            delay = Math.min(delay * 2, 5_000);
            this.#rewatchAgain = true;
          }
        } while (this.#rewatchAgain && !this.closed);
      } finally {
        this.#rewatching = false;
      }
    })());
  }

  #applyEntry(entry: KvWatchEntry): void {
    if (entry.revision > this.#lastRevision) {
      this.#lastRevision = entry.revision;
      this.#applyKvEntry(entry, this.isReady);
    }
    this.#noteCaughtUp(entry.isUpdate);
    this.#heard();
  }

  /**
   * Applies one KV entry if it is newer than what is held for its key and passes the write rules.
   * A refused entry still advances the key's revision, so that our next compare-and-set replaces
   * it; a refused entry that tried to undo a sticky state is overwritten at once with the value
   * held (repair), so that an instance starting later does not load the forgery as the truth.
   */
  #applyKvEntry(entry: KvEntry, notify: boolean): void {
    const address = addressForKvKey(entry.key);
    if (address === undefined) {
      this.#refuse(entry, "unknown_key");
      return;
    }
    if (entry.revision <= (this.#revisions.get(entry.key) ?? 0)) return;
    this.#revisions.set(entry.key, entry.revision);
    if (entry.operation !== "PUT") {
      if (this.index.holdsSticky(address)) {
        this.#refuse(entry, "deletes_sticky", address);
        return;
      }
      this.index.remove(address);
      // Bounded state: a deleted key holds nothing here. A later write expects revision 0, is
      // told of the delete marker (conflict), re-reads it and writes on top of it.
      this.#revisions.delete(entry.key);
      return;
    }
    const decoded = this.#decode(entry);
    if ("refused" in decoded) {
      this.#refuse(entry, decoded.refused, this.index.holdsSticky(address) ? address : undefined);
      return;
    }
    const signal = decoded.signal;
    const future = futureProblem(signal.observedAt, this.now(), this.maxClockSkewMs);
    if (future !== undefined) {
      this.#refuse(entry, "future", this.index.holdsSticky(address) ? address : undefined);
      return;
    }
    const verdict = this.index.judgeRemote(signal);
    if (!verdict.accept) {
      this.#refuse(entry, verdict.reason, this.index.holdsSticky(address) ? address : undefined);
      return;
    }
    if (!this.index.hasRoomFor(signal)) {
      // Full: a latest-wins value for a new address waits for room; a sticky one is always taken.
      this.#refuse(entry, "capacity");
      return;
    }
    if (verdict.reinstated === true && signal.kind === "revocation") {
      // The audit line every instance writes: a revocation stopped being enforced here.
      this.logger.warn({
        subject: signal.subject, id: signal.id, by: signal.data.by, reason: signal.data.reason, revision: entry.revision,
      }, "revocation lifted by a reinstatement from the signal bus");
    }
    this.#applyValue(entry.key, signal, entry.revision, notify);
  }

  /** Logs and counts a bus value not applied; never quotes it (the key encodes the subject). */
  #refuse(entry: KvEntry, reason: BusRefusal, repair?: SignalAddress): void {
    this.#metrics?.busValuesRefused.labels(reason).inc();
    const [kind] = entry.key.split(".", 1);
    this.logger.warn({
      reason, revision: entry.revision, key: keyDigest(entry.key), kind: kind !== undefined && isSignalKind(kind) ? kind : "unknown",
    }, "refused a value from the signal bus");
    const held = repair === undefined ? undefined : this.index.held(repair);
    if (held !== undefined && !this.closed) this.#track(this.#repair(entry.key, held, entry.revision));
  }

  /** Puts the held sticky value back over a refused one, unless the key moved on meanwhile. */
  async #repair(kvKey: string, held: Signal, revision: number): Promise<void> {
    const kv = this.#kv;
    if (kv === undefined) return;
    try {
      await kv.put(kvKey, JSON.stringify(held), { previousSeq: revision, timeout: this.#writeTimeoutMs });
      this.logger.warn({ key: keyDigest(kvKey), kind: held.kind, subject: held.subject, revision }, "restored a sticky value on the signal bus");
    } catch (error) {
      // A conflict means another instance repaired it or something newer came: the watch judges that.
      if (!isRevisionConflict(error)) this.logger.error({ err: error, key: keyDigest(kvKey) }, "could not restore a sticky value on the signal bus");
    }
  }

  /** The signal an entry holds, if it is a valid signal for the entry's own key. */
  #decode(entry: KvEntry): { signal: Signal } | { refused: "invalid" | "wrong_key" } {
    let value: unknown;
    try {
      value = entry.json<unknown>();
    } catch {
      value = undefined;
    }
    const parsed = signalSchema.safeParse(value);
    if (!parsed.success) return { refused: "invalid" };
    const address = addressForKvKey(entry.key);
    if (
      address === undefined || parsed.data.subject !== address.subject
      || parsed.data.kind !== address.kind || parsed.data.name !== address.name
    ) {
      return { refused: "wrong_key" };
    }
    return { signal: parsed.data };
  }

  /** Holds a value the KV has at `revision`. */
  #applyValue(kvKey: string, signal: Signal, revision: number, notify: boolean): void {
    this.#revisions.set(kvKey, revision);
    const value = signal;
    // Our own writes come back through the watch; listeners hear of a value once.
    if (notify) {
      const held = this.index.held(signal);
      notify = held?.id !== value.id || JSON.stringify(held) !== JSON.stringify(value);
    }
    this.index.set(value, notify);
  }

  #noteCaughtUp(sawLastOfInitial: boolean): void {
    if (this.#caughtUp || (!sawLastOfInitial && this.#lastRevision < this.#catchUpTo)) return;
    this.#caughtUp = true;
    this.#heard();
    if (this.isReady) {
      this.logger.info({ revision: this.#lastRevision }, "caught up with the signal bucket");
    } else {
      this.logger.info({ keys: this.index.size(), revision: this.#lastRevision }, "signal bucket loaded");
      this.markReady();
    }
  }

  /** Freshness only advances while connected and caught up: being connected but behind is stale. */
  #heard(): void {
    if (this.#connected && this.#caughtUp) this.#lastHeardAt = this.now();
  }

  #beat(): void {
    const nc = this.#nc;
    if (nc === undefined || this.#beating || !this.#connected || !this.#caughtUp || this.closed) return;
    this.#beating = true;
    void withTimeout(nc.flush(), this.#config.freshnessBoundMs, "bus heartbeat").then(
      () => {
        this.#heard();
      },
      (error: unknown) => {
        this.logger.debug({ err: error }, "bus heartbeat failed");
      },
    ).finally(() => {
      this.#beating = false;
    });
  }

  freshness(nowMs: number): Freshness {
    const ageMs = Math.max(0, nowMs - this.#lastHeardAt);
    return {
      fresh: this.isReady && !this.closed && this.#lastHeardAt > 0 && ageMs <= this.#config.freshnessBoundMs,
      lastHeardAt: this.#lastHeardAt,
      ageMs,
    };
  }

  /**
   * Decides against the local view, then writes only if the key is still at the revision that
   * view was taken from. On a conflict the key is re-read and the decision made again, so a write
   * racing another instance ends up stale, duplicate or refused exactly as it would locally.
   */
  protected async write(decide: () => WriteDecision): Promise<PutResult> {
    await this.writable();
    const kv = this.#kvOrThrow();
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const decision = decide();
      if (decision.status !== "write") return decision;
      const signal = decision.signal;
      const kvKey = kvKeyFor(signal.subject, signal.kind, signal.name);
      const expected = this.#revisions.get(kvKey);
      let revision: number;
      try {
        // previousSeq 0 = "no value yet": the create half of compare-and-set. The timeout keeps a
        // write from hanging on an unreachable bus longer than the freshness bound.
        revision = await kv.put(kvKey, JSON.stringify(signal), {
          previousSeq: expected ?? 0,
          timeout: this.#writeTimeoutMs,
        });
      } catch (error) {
        if (!isRevisionConflict(error)) {
          throw new VigilError("unavailable", `signal bus did not take the write: ${String(error)}`, { cause: error });
        }
        await this.#refresh(kv, kvKey, signal);
        continue;
      }
      // Read-after-write on this instance; the watcher will skip the same revision.
      if (revision > (this.#revisions.get(kvKey) ?? 0)) this.#applyValue(kvKey, signal, revision, true);
      return { status: "written", signal };
    }
    throw new VigilError("unavailable", "signal write kept conflicting with concurrent writes; retry it");
  }

  async #refresh(kv: KV, kvKey: string, address: SignalAddress): Promise<void> {
    const entry = await kv.get(kvKey);
    if (entry !== null && entry.operation !== "PUT" && !this.index.holdsSticky(address)) {
      // A delete marker: the next write goes on top of it.
      this.index.remove(address);
      this.#revisions.set(kvKey, entry.revision);
      return;
    }
    if (entry === null) {
      this.#revisions.delete(kvKey);
      // Gone from the bucket altogether (a purged stream): a sticky value is kept, and the next
      // write of this key, made against it, puts it back.
      if (!this.index.holdsSticky(address)) this.index.remove(address);
      return;
    }
    this.#applyKvEntry(entry, true);
  }

  #kvOrThrow(): KV {
    if (this.#kv === undefined) throw new VigilError("unavailable", "the signal bucket is not open");
    return this.#kv;
  }

  /**
   * A grant use is decided on the bus before the Check is answered: a compare-and-set of the
   * grant's key from the value held here to the same value with one use fewer. Of N instances
   * racing for the last use exactly one write succeeds; the others re-read, find none left and
   * deny. Only a caller that holds a usable grant here pays the round trip (everyone else gets
   * false at once, synchronously); it is bounded by store.grantTimeoutMs, past which the answer
   * is a denial (a write that lands after it spends a use nobody got: fail closed).
   */
  useGrant(subject: string, name: string, nowMs: number): boolean | Promise<boolean> {
    if (!this.isReady || this.closed) return false;
    if (this.index.grantAfterUse(subject, name, nowMs) === undefined) return false;
    const claim = this.#claim(subject, name, nowMs);
    this.#claims.add(claim);
    void claim.finally(() => { this.#claims.delete(claim); });
    return claim;
  }

  async #claim(subject: string, name: string, nowMs: number): Promise<boolean> {
    let result: GrantClaimResult;
    try {
      result = await withTimeout(this.#casUse(subject, name, nowMs), this.#grantTimeoutMs, "grant use");
    } catch (error) {
      // Ours (withTimeout) or the client's own request timeout: the bus did not answer in time.
      result = (error instanceof VigilError && error.message.startsWith("grant use timed out"))
        || (error instanceof Error && error.name === "TimeoutError") ? "timeout" : "unavailable";
      this.logger.warn({ err: error, result, key: keyDigest(kvKeyFor(subject, "grant", name)) }, "grant use not decided on the bus; denied");
    }
    this.#grantClaims?.labels(result).inc();
    return result === "used";
  }

  async #casUse(subject: string, name: string, nowMs: number): Promise<GrantClaimResult> {
    const kv = this.#kvOrThrow();
    const kvKey = kvKeyFor(subject, "grant", name);
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const used = this.index.grantAfterUse(subject, name, nowMs);
      const expected = this.#revisions.get(kvKey);
      if (used === undefined || expected === undefined) return "spent";
      let revision: number;
      try {
        revision = await kv.put(kvKey, JSON.stringify(used), { previousSeq: expected, timeout: this.#grantTimeoutMs });
      } catch (error) {
        if (!isRevisionConflict(error)) throw error;
        // Another instance used it (or replaced it) first: decide again on what it wrote.
        await this.#refresh(kv, kvKey, used);
        continue;
      }
      if (revision > (this.#revisions.get(kvKey) ?? 0)) this.#applyValue(kvKey, used, revision, true);
      return "used";
    }
    return "spent";
  }

  /**
   * A value the sweep forgot (expired, or a spent grant) is deleted from the bucket too, if the
   * key still holds the value this instance saw (compare-and-set on its revision): every instance
   * sweeps, one delete wins, and a newer value written meanwhile is never deleted. Delete markers
   * older than half an hour are purged now and then, so the bucket does not grow with churn.
   */
  protected override swept(signal: Signal): void {
    const kv = this.#kv;
    const kvKey = kvKeyFor(signal.subject, signal.kind, signal.name);
    const revision = this.#revisions.get(kvKey);
    this.#revisions.delete(kvKey);
    if (kv === undefined || revision === undefined || this.closed) return;
    this.#track(kv.delete(kvKey, { previousSeq: revision }).catch((error: unknown) => {
      if (!isRevisionConflict(error)) this.logger.debug({ err: error, key: keyDigest(kvKey) }, "could not delete a swept signal from the bucket");
    }));
  }

  override sweepNow(): number {
    const removed = super.sweepNow();
    const kv = this.#kv;
    const now = this.now();
    if (kv instanceof Bucket && !this.closed && now - this.#lastMarkerPurge >= DELETE_MARKER_AGE_MS) {
      this.#lastMarkerPurge = now;
      this.#track(kv.purgeDeletes(DELETE_MARKER_AGE_MS).then(() => undefined, (error: unknown) => {
        this.logger.debug({ err: error }, "could not purge delete markers");
      }));
    }
    return removed;
  }

  /**
   * Stops the heartbeat and the watch, gives grant uses still in flight a moment to land, and
   * drains the connection. Safe to call more than once.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    // Grant uses being decided finish (each is bounded by store.grantTimeoutMs).
    await Promise.allSettled(this.#claims);
    this.closed = true;
    this.stopSweeping();
    this.#stopping.abort();
    clearInterval(this.#heartbeat);
    await this.#starting;
    this.#generation++;
    this.#watcher?.stop();
    await drainConnection(this.#nc);
    await Promise.allSettled(this.#background);
  }
}
