// Where approval records live, so that a request opened on one instance can be listed, approved
// or denied on any other and survives restarts. Two ledgers, one interface:
//   LocalLedger  the embedded default: memory plus a journal file beside the signals journal
//                (`<journal>.approvals.jsonl`), same record format, fsync and compaction.
//   NatsLedger   cluster mode (nats-ledger.ts): the KV bucket `<prefix>-approvals`, watched by
//                every instance; changes are compare-and-set on the key's revision.
// Reads are memory only (the Check path opens approvals synchronously); a change is a new record
// with a higher revision, never an edit in place.

import type { Logger } from "pino";
import { VigilError } from "../errors/index.js";
import { JournalWriter, decodeLine, encodeLine, replayLines } from "../signals/journal.js";
import type { JournalHealth } from "../signals/journal.js";
import { approvalRecordSchema } from "./model.js";
import type { ApprovalRequest } from "./model.js";

export interface LedgerEntry {
  readonly record: ApprovalRequest;
  /** The store's revision of this record: the expected revision of the next compare-and-set. */
  readonly revision: number;
  /** Resolves once the record's creation is durable (and shared); already resolved for others. */
  readonly written: Promise<void>;
}

/** Called for every change held: a new or changed record (`next`), or one forgotten (`next` undefined). */
export type LedgerListener = (next: ApprovalRequest | undefined, previous: ApprovalRequest | undefined) => void;

export interface ApprovalLedger {
  /** Whether other instances see this ledger's records (true for NATS). */
  readonly shared: boolean;
  /** Resolves once the records held at start are in memory. */
  ready(): Promise<void>;
  get(id: string): LedgerEntry | undefined;
  /** Every record held, in the order first seen (roughly the order opened). */
  values(): IterableIterator<ApprovalRequest>;
  readonly size: number;
  /**
   * Holds a new record in memory at once and makes it durable (and shared) in the background;
   * the promise says when it is. A record that could not be written stays held here (the
   * Check already answered with its id) and is retried until it settles or expires.
   */
  create(record: ApprovalRequest): Promise<void>;
  /**
   * Compare-and-set: writes `record` over the held one if that is still at `revision`. Resolves
   * true once durable; false when another writer changed it first (the held entry is then the
   * newer one). Rejects with VigilError("unavailable") when the store cannot be written.
   */
  replace(record: ApprovalRequest, revision: number): Promise<boolean>;
  /** Forgets a settled record here and in the store (bounded state). */
  remove(id: string): Promise<void>;
  subscribe(listener: LedgerListener): () => void;
  close(): Promise<void>;
}

/** The approvals journal that sits beside a signals journal: `x/journal.jsonl` → `x/journal.approvals.jsonl`. */
export function approvalsJournalPath(signalsJournal: string): string {
  if (signalsJournal === "") return "";
  return `${signalsJournal.replace(/\.jsonl$/, "")}.approvals.jsonl`;
}

/** A record read back from outside this process, if it is one (bounded, well-formed). */
export function parseApprovalRecord(value: unknown): ApprovalRequest | undefined {
  const parsed = approvalRecordSchema.safeParse(value);
  return parsed.success ? parsed.data : undefined;
}

interface Held {
  record: ApprovalRequest;
  revision: number;
  written: Promise<void>;
}

const WRITTEN = Promise.resolve();

/** The memory half every ledger shares: records by id, revisions, listeners. */
export abstract class MemoryLedger implements ApprovalLedger {
  abstract readonly shared: boolean;
  protected readonly held = new Map<string, Held>();
  readonly #listeners = new Set<LedgerListener>();
  protected readonly logger: Logger;

  protected constructor(logger: Logger) {
    this.logger = logger;
  }

  get(id: string): LedgerEntry | undefined {
    return this.held.get(id);
  }

  * values(): IterableIterator<ApprovalRequest> {
    for (const entry of this.held.values()) yield entry.record;
  }

  get size(): number {
    return this.held.size;
  }

  subscribe(listener: LedgerListener): () => void {
    this.#listeners.add(listener);
    return () => { this.#listeners.delete(listener); };
  }

  /** Holds `record` at `revision` (or forgets the id) and tells the listeners. */
  protected hold(id: string, record: ApprovalRequest | undefined, revision: number, written: Promise<void> = WRITTEN): void {
    const previous = this.held.get(id)?.record;
    if (record === undefined) this.held.delete(id);
    else this.held.set(id, { record, revision, written });
    for (const listener of this.#listeners) {
      try {
        listener(record, previous);
      } catch (error) {
        this.logger.error({ err: error, approval_id: id }, "approval ledger listener threw");
      }
    }
  }

  abstract ready(): Promise<void>;
  abstract create(record: ApprovalRequest): Promise<void>;
  abstract replace(record: ApprovalRequest, revision: number): Promise<boolean>;
  abstract remove(id: string): Promise<void>;
  abstract close(): Promise<void>;
}

export interface LocalLedgerOptions {
  /** Journal file; "" keeps records in memory only (tests, `vigil check`). */
  path: string;
  logger: Logger;
  compactAfterRecords?: number;
  now?: () => number;
}

/**
 * The embedded ledger: memory, and every change appended to a journal (fsynced before a replace
 * resolves). Replay takes the last record per id; forgotten records leave the file at the next
 * compaction (replay may bring one back, and the book's sweep forgets it again).
 */
export class LocalLedger extends MemoryLedger {
  readonly shared = false;
  readonly #path: string;
  readonly #opening: Promise<void>;
  #journal: JournalWriter | undefined;
  #revision = 0;
  #closed = false;

  constructor(options: LocalLedgerOptions) {
    super(options.logger);
    this.#path = options.path;
    this.#opening = this.#open(options);
    this.#opening.catch(() => undefined);
  }

  async #open(options: LocalLedgerOptions): Promise<void> {
    if (this.#path === "") return;
    const recovery = await replayLines(this.#path, (line) => {
      const decoded = decodeLine(line);
      if ("problem" in decoded) return decoded;
      const record = parseApprovalRecord(decoded.value);
      return record === undefined ? { problem: "payload is not a valid approval record" } : { value: record };
    }, (record) => {
      this.hold(record.id, record, ++this.#revision);
    }, this.logger);
    // A damaged approval record loses one request (the caller asks again); unlike a signal it
    // cannot lift a refusal, so the ledger starts without it and says so.
    if (recovery.corrupt > 0) this.logger.error({ journal: this.#path, ...recovery }, "approvals journal had corrupt records; they were skipped");
    this.#journal = await JournalWriter.open(this.#path, {
      records: recovery.records,
      compactAfterRecords: options.compactAfterRecords ?? 10_000,
      snapshot: () => [...this.held.values()].map((h) => encodeLine(JSON.stringify(h.record))),
      liveCount: () => this.held.size,
      logger: this.logger,
      now: options.now ?? Date.now,
      holds: "approval",
    });
    this.logger.info({ journal: this.#path, approvals: this.held.size }, "approvals journal replayed");
  }

  ready(): Promise<void> {
    return this.#opening;
  }

  /** Whether the approvals journal takes writes; undefined when memory-only or not open. */
  health(): JournalHealth | undefined {
    return this.#journal?.health;
  }

  async #append(record: ApprovalRequest): Promise<void> {
    if (this.#closed) throw new VigilError("unavailable", "the approval ledger is closed");
    await this.#opening;
    await this.#journal?.append(encodeLine(JSON.stringify(record)));
  }

  create(record: ApprovalRequest): Promise<void> {
    const written = this.#append(record);
    written.catch(() => undefined);
    this.hold(record.id, record, ++this.#revision, written);
    return written;
  }

  async replace(record: ApprovalRequest, revision: number): Promise<boolean> {
    const current = this.held.get(record.id);
    if (current?.revision !== revision) return false;
    const next = ++this.#revision;
    this.hold(record.id, record, next);
    try {
      await this.#append(record);
    } catch (error) {
      // Not durable: take it back, unless something newer came meanwhile.
      if (this.held.get(record.id)?.revision === next) this.hold(record.id, current.record, ++this.#revision, current.written);
      throw error;
    }
    return true;
  }

  remove(id: string): Promise<void> {
    if (this.held.has(id)) this.hold(id, undefined, 0);
    return Promise.resolve();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#opening.catch(() => undefined);
    await this.#journal?.close();
  }
}
