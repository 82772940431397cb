// The cluster approval ledger: one KV entry per approval (key = its id) in the bucket
// `<prefix>-approvals`, watched by every instance, so a request opened on one sidecar is listed,
// approved or denied on any other. Settling is a compare-and-set on the key's revision, so two
// approvers racing on two instances settle it once. The bucket's max age (`ttl`) bounds what it
// holds even if every instance is gone; the book's sweep deletes settled records before that.
//
// Anything that can write to the bucket could have put a value there: every value read is parsed
// by the record schema, must sit under its own id, and may only move a pending request towards
// settled (model.ts isLawfulChange). A refused value is counted and logged by key digest.

import { setTimeout as sleep } from "node:timers/promises";
import { Bucket, Kvm, KvWatchInclude } from "@nats-io/kv";
import type { KV, KvEntry, KvWatchEntry } from "@nats-io/kv";
import type { NatsConnection, QueuedIterator } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { StoreConfig } from "../config/schema.js";
import { VigilError } from "../errors/index.js";
import { connectBus, drainConnection, isRevisionConflict, keyDigest, withTimeout } from "../signals/nats-bucket.js";
import { MemoryLedger, parseApprovalRecord } from "./ledger.js";
import { APPROVAL_ID, isLawfulChange, isSettled } from "./model.js";
import type { ApprovalRequest } from "./model.js";

/** Why a value read from the approvals bucket was not applied (a closed set: metric labels). */
export type ApprovalBusRefusal =
  /** A key that is not an approval id. */
  | "unknown_key"
  /** Not JSON or not an approval record within bounds, or a record under another id's key. */
  | "invalid"
  /** A change a lawful writer never makes: a settled request reopened or re-decided, its scope changed. */
  | "unlawful_change"
  /** A delete of a request still pending and not expired. */
  | "deletes_pending";

export const APPROVAL_BUS_REFUSALS: readonly ApprovalBusRefusal[] = ["unknown_key", "invalid", "unlawful_change", "deletes_pending"];

/** KV bucket holding approvals for a bucket prefix. */
export function approvalsBucketName(bucketPrefix: string): string {
  return `${bucketPrefix}-approvals`;
}

export interface NatsLedgerOptions {
  config: StoreConfig;
  logger: Logger;
  /** Connection name shown by the NATS server (the pod name). */
  name?: string;
  /** Bucket max age: no record outlives this, whatever the instances do (ms). */
  maxAgeMs: number;
  now?: () => number;
  onRefused?: (reason: ApprovalBusRefusal) => void;
}

/** Delete markers older than this are purged from the bucket (bounded state on the server). */
const DELETE_MARKER_AGE_MS = 30 * 60_000;

export class NatsLedger extends MemoryLedger {
  readonly shared = true;
  readonly bucket: string;
  readonly #config: StoreConfig;
  readonly #name: string;
  readonly #maxAgeMs: number;
  readonly #now: () => number;
  readonly #onRefused: (reason: ApprovalBusRefusal) => void;
  readonly #writeTimeoutMs: number;
  readonly #starting: Promise<void>;
  readonly #stopping = new AbortController();
  readonly #background = new Set<Promise<void>>();
  #nc: NatsConnection | undefined;
  #kv: KV | undefined;
  #watcher: QueuedIterator<KvWatchEntry> | undefined;
  #generation = 0;
  #lastRevision = 0;
  #purger: NodeJS.Timeout | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(options: NatsLedgerOptions) {
    super(options.logger);
    this.#config = options.config;
    this.#name = options.name ?? "vigil";
    this.#maxAgeMs = options.maxAgeMs;
    this.#now = options.now ?? Date.now;
    this.#onRefused = options.onRefused ?? (() => undefined);
    this.#writeTimeoutMs = Math.max(1_000, options.config.freshnessBoundMs);
    this.bucket = approvalsBucketName(options.config.bucketPrefix);
    this.#starting = this.#start();
    this.#starting.catch(() => undefined);
  }

  ready(): Promise<void> {
    return this.#starting;
  }

  async #start(): Promise<void> {
    try {
      const nc = await connectBus(this.#config, `${this.#name}-approvals`);
      this.#nc = nc;
      this.#track(this.#followConnection(nc));
      this.#kv = await new Kvm(nc).create(this.bucket, {
        history: 1,
        storage: "file",
        replicas: this.#config.replicas,
        ttl: this.#maxAgeMs,
        description: "Vigil step-up approvals: one record per approval id",
      });
      await this.#watch(true);
      this.#purger = setInterval(() => {
        // On the bucket implementation, not the KV interface.
        const kv = this.#kv;
        if (!(kv instanceof Bucket)) return;
        void kv.purgeDeletes(DELETE_MARKER_AGE_MS).catch((error: unknown) => {
          this.logger.debug({ err: error }, "could not purge approval delete markers");
        });
      }, DELETE_MARKER_AGE_MS);
      this.#purger.unref();
    } catch (error) {
      await this.#nc?.close().catch(() => undefined);
      throw new VigilError("unavailable", `cannot open approvals bucket ${this.bucket} on ${this.#config.bus}: ${VigilError.from(error).message}`, { cause: error });
    }
  }

  #track(task: Promise<void>): void {
    const tracked = task.catch((error: unknown) => {
      if (!this.#closed) this.logger.error({ err: error }, "approval ledger background task failed");
    }).finally(() => {
      this.#background.delete(tracked);
    });
    this.#background.add(tracked);
  }

  async #followConnection(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === "reconnect" && !this.#closed) this.#track(this.#rewatch());
    }
  }

  /**
   * (Re)starts the watch after the last applied revision; on the first call, resolves once the
   * bucket's values at start are held.
   */
  async #watch(initial: boolean): Promise<void> {
    const kv = this.#kvOrThrow();
    const generation = ++this.#generation;
    this.#watcher?.stop();
    const status = await kv.status();
    const target = status.values === 0 ? 0 : status.streamInfo.state.last_seq;
    const watcher = await kv.watch(this.#lastRevision > 0
      ? { resumeFromRevision: this.#lastRevision + 1 }
      : { include: KvWatchInclude.LastValue });
    if (generation !== this.#generation || this.#closed) {
      watcher.stop();
      return;
    }
    this.#watcher = watcher;
    let loaded!: () => void;
    const caughtUp = new Promise<void>((resolve) => { loaded = resolve; });
    if (target === 0 || this.#lastRevision >= target) loaded();
    this.#track((async () => {
      try {
        for await (const entry of watcher) {
          if (generation !== this.#generation) break;
          if (entry.revision > this.#lastRevision) {
            this.#lastRevision = entry.revision;
            this.#apply(entry);
          }
          if (entry.isUpdate || entry.revision >= target) loaded();
        }
      } catch (error) {
        this.logger.warn({ err: error, bucket: this.bucket }, "the approvals watch failed");
      }
      if (generation === this.#generation && !this.#closed) {
        this.logger.warn({ bucket: this.bucket }, "the approvals watch ended; watching again");
        await this.#rewatch();
      }
    })());
    if (initial) await caughtUp;
  }

  async #rewatch(): Promise<void> {
    let delay = 100;
    while (!this.#closed) {
      try {
        await this.#watch(false);
        return;
      } catch (error) {
        this.logger.warn({ err: error, retryInMs: delay }, "cannot watch the approvals bucket yet");
        await sleep(delay, undefined, { signal: this.#stopping.signal }).catch(() => undefined);
        delay = Math.min(delay * 2, 5_000);
      }
    }
  }

  /** Applies one bucket entry if it is newer than what is held and lawful. */
  #apply(entry: KvEntry): void {
    if (!APPROVAL_ID.test(entry.key)) {
      this.#refuse(entry, "unknown_key");
      return;
    }
    const held = this.held.get(entry.key);
    if (held !== undefined && entry.revision <= held.revision) return;
    if (entry.operation !== "PUT") {
      if (held === undefined) return;
      if (!isSettled(held.record.status) && held.record.expiresAt > this.#now()) {
        this.#refuse(entry, "deletes_pending", held.record);
        return;
      }
      this.hold(entry.key, undefined, 0);
      return;
    }
    let value: unknown;
    try {
      value = entry.json<unknown>();
    } catch {
      value = undefined;
    }
    const record = parseApprovalRecord(value);
    if (record?.id !== entry.key) {
      this.#refuse(entry, "invalid");
      return;
    }
    if (held !== undefined && !isLawfulChange(held.record, record)) {
      this.#refuse(entry, "unlawful_change", held.record);
      return;
    }
    this.hold(record.id, record, entry.revision);
  }

  /**
   * Counts and logs a refused value. A refused change of a record held here is overwritten with
   * the held record at once (repair), so that an instance starting later does not load the
   * forgery as the truth; the held record takes the refused value's revision meanwhile, so the
   * next compare-and-set is made against the key as it is.
   */
  #refuse(entry: KvEntry, reason: ApprovalBusRefusal, held?: ApprovalRequest): void {
    this.#onRefused(reason);
    this.logger.warn({ reason, revision: entry.revision, key: keyDigest(entry.key) }, "refused a value from the approvals bucket");
    if (held === undefined || this.#closed) return;
    this.hold(held.id, held, entry.revision);
    this.#track(this.#repair(held, entry.revision));
  }

  async #repair(held: ApprovalRequest, revision: number): Promise<void> {
    try {
      const written = await withTimeout(this.#kvOrThrow().put(held.id, JSON.stringify(held), { previousSeq: revision, timeout: this.#writeTimeoutMs }), this.#writeTimeoutMs, "approval repair");
      if ((this.held.get(held.id)?.revision ?? 0) < written && this.held.get(held.id)?.record === held) this.hold(held.id, held, written);
      this.logger.warn({ approval_id: held.id, revision }, "restored an approval record on the bus");
    } catch (error) {
      // Another instance repaired it first, or something newer came: the watch judges that.
      if (!isRevisionConflict(error)) this.logger.error({ err: error, approval_id: held.id }, "could not restore an approval record on the bus");
    }
  }

  #kvOrThrow(): KV {
    if (this.#kv === undefined || this.#closed) throw new VigilError("unavailable", "the approvals bucket is not open");
    return this.#kv;
  }

  /**
   * Held at once (revision 0: not in the bucket yet), then created in the bucket; retried with
   * backoff while the bus is away, for as long as the request is pending and unexpired.
   */
  create(record: ApprovalRequest): Promise<void> {
    let resolveWritten!: () => void;
    let rejectWritten!: (error: unknown) => void;
    const written = new Promise<void>((resolve, reject) => {
      resolveWritten = resolve;
      rejectWritten = reject;
    });
    written.catch(() => undefined);
    this.hold(record.id, record, 0, written);
    this.#track((async () => {
      let delay = 100;
      for (;;) {
        try {
          const revision = await withTimeout(this.#kvOrThrow().create(record.id, JSON.stringify(record)), this.#writeTimeoutMs, "approval write");
          const held = this.held.get(record.id);
          if (held !== undefined && held.revision < revision) this.hold(record.id, held.record, revision);
          resolveWritten();
          return;
        } catch (error) {
          const held = this.held.get(record.id);
          const stillWanted = !this.#closed && held?.revision === 0 && held.record.status === "pending" && held.record.expiresAt > this.#now();
          if (!stillWanted) {
            rejectWritten(VigilError.from(error, "unavailable"));
            return;
          }
          this.logger.warn({ err: error, approval_id: record.id, retryInMs: delay }, "approval not in the shared store yet; retrying");
          await sleep(delay, undefined, { signal: this.#stopping.signal }).catch(() => undefined);
          delay = Math.min(delay * 2, 5_000);
        }
      }
    })());
    return written;
  }

  async replace(record: ApprovalRequest, revision: number): Promise<boolean> {
    const kv = this.#kvOrThrow();
    if (revision === 0) throw new VigilError("unavailable", `approval ${record.id} is not in the shared store yet; retry`);
    let written: number;
    const text = JSON.stringify(record);
    try {
      written = await withTimeout(kv.put(record.id, text, { previousSeq: revision, timeout: this.#writeTimeoutMs }), this.#writeTimeoutMs, "approval write");
    } catch (error) {
      if (isRevisionConflict(error)) {
        const entry = await kv.get(record.id);
        if (entry !== null) this.#apply(entry);
        return false;
      }
      // A write whose answer was lost (a timeout while the bus recovers) may still have landed:
      // then the approver's retry would meet "already approved" for a decision nobody finished.
      const landed = await this.#landed(record.id, text, revision);
      if (landed === undefined) {
        throw new VigilError("unavailable", `the approvals bucket did not take the write: ${VigilError.from(error).message}`, { cause: error });
      }
      written = landed;
    }
    const held = this.held.get(record.id);
    if (held === undefined || held.revision < written) this.hold(record.id, record, written);
    return true;
  }

  /** The revision at which exactly `text` follows `revision` in the bucket, if it does (best effort). */
  async #landed(id: string, text: string, revision: number): Promise<number | undefined> {
    try {
      const entry = await withTimeout(this.#kvOrThrow().get(id), this.#writeTimeoutMs, "approval read");
      if (entry === null || entry.operation !== "PUT" || entry.revision <= revision) return undefined;
      return entry.string() === text ? entry.revision : undefined;
    } catch {
      return undefined;
    }
  }

  async remove(id: string): Promise<void> {
    const held = this.held.get(id);
    if (held === undefined) return;
    this.hold(id, undefined, 0);
    if (held.revision === 0) return;
    try {
      await withTimeout(this.#kvOrThrow().delete(id, { previousSeq: held.revision }), this.#writeTimeoutMs, "approval delete");
    } catch (error) {
      // Changed meanwhile (another instance removed or settled it): the watch brings its state.
      if (!isRevisionConflict(error)) this.logger.debug({ err: error, approval_id: id }, "could not delete a settled approval from the bucket");
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    this.#stopping.abort();
    clearInterval(this.#purger);
    await this.#starting.catch(() => undefined);
    this.#generation++;
    this.#watcher?.stop();
    await drainConnection(this.#nc);
    await Promise.allSettled(this.#background);
  }
}
