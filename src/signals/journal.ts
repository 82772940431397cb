// The embedded store's append-only journal: one JSON line per applied signal value, each with a
// CRC-32 of its payload so a torn or bit-rotten record is recognised on replay. Writes are group
// committed (every write waiting at the same moment shares one write + fsync), and the file is
// compacted into a snapshot of live values once enough of it is superseded. A write is
// acknowledged only when every byte of it is written and fsynced; a failed or short write is
// cut back off the file, so the journal always ends on the last acknowledged record, and the next
// write tries the disk again (a disk that has room again takes writes without a restart).

import { crc32 } from "node:zlib";
import { copyFile, mkdir, open, readFile, rename, rm, truncate } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import type { Logger } from "pino";
import { VigilError } from "../errors/index.js";
import { signalSchema } from "./model.js";
import type { Signal } from "./model.js";

const RECORD_VERSION = 1;
// The payload sits last so it can be checked byte for byte without re-serialising it:
// {"v":1,"crc":"<8 hex>","sig":<signal JSON>}
const HEAD = `{"v":${RECORD_VERSION},"crc":"`;
const CRC_HEX = 8;
const MID = "\",\"sig\":";
const NEWLINE = 0x0a;

function checksum(text: string): string {
  return crc32(text).toString(16).padStart(CRC_HEX, "0");
}

export function encodeRecord(signal: Signal): string {
  return encodeLine(JSON.stringify(signal));
}

/** One journal line around a JSON payload (any journal: signals, approvals). */
export function encodeLine(payload: string): string {
  return `${HEAD}${checksum(payload)}${MID}${payload}}\n`;
}

/** The signal in one journal line, or why the line cannot be trusted. */
export function decodeRecord(line: string): { signal: Signal } | { problem: string } {
  const decoded = decodeLine(line);
  if ("problem" in decoded) return decoded;
  const parsed = signalSchema.safeParse(decoded.value);
  if (!parsed.success) return { problem: "payload is not a valid signal" };
  return { signal: parsed.data };
}

/** The JSON payload of one journal line (checksum verified), or why the line cannot be trusted. */
export function decodeLine(line: string): { value: unknown } | { problem: string } {
  if (!line.startsWith(HEAD) || !line.endsWith("}")) return { problem: "not a v1 journal record" };
  const crc = line.slice(HEAD.length, HEAD.length + CRC_HEX);
  if (line.slice(HEAD.length + CRC_HEX, HEAD.length + CRC_HEX + MID.length) !== MID) {
    return { problem: "malformed record header" };
  }
  const payload = line.slice(HEAD.length + CRC_HEX + MID.length, -1);
  if (checksum(payload) !== crc) return { problem: "checksum mismatch" };
  try {
    return { value: JSON.parse(payload) as unknown };
  } catch {
    return { problem: "payload is not JSON" };
  }
}

/** Where a record that cannot be trusted sits, never what it holds. */
export interface DamagedRecord {
  line: number;
  /** Byte offset of the line's first byte. */
  offset: number;
  problem: string;
}

/** At most this many damaged records are named one by one (in logs and in the recovery). */
const DAMAGE_DETAIL_LIMIT = 10;

/** What replay found; returned to the caller and logged, so damage is never silent. */
export interface JournalRecovery {
  /** Complete lines found in the file (valid or not). */
  records: number;
  /** Records applied to memory. */
  applied: number;
  /** Complete records skipped because their checksum or content was wrong. */
  corrupt: number;
  /** The first few of them (DAMAGE_DETAIL_LIMIT), by line and offset. */
  damaged: DamagedRecord[];
  /** The file ended in a partial record (a write cut short): it was cut off. */
  tornTail: boolean;
  /** Bytes removed from the end of the file. */
  truncatedBytes: number;
}

/**
 * Replays the journal at `path` into `apply`, in file order. A missing file is an empty journal.
 * A torn last record (no newline: a crash during a write that was never acknowledged) is
 * truncated away with a warning so the next append starts on a clean line. A complete record
 * that fails its checksum or schema is damage, not a crash artefact: it is skipped here, logged
 * at error level by line and offset (never its content: it may name a credential fingerprint),
 * and the caller decides whether to start at all (see EmbeddedStore).
 */
export async function replayJournal(
  path: string, apply: (signal: Signal) => void, logger: Logger,
): Promise<JournalRecovery> {
  return replayLines(path, (line) => {
    const decoded = decodeRecord(line);
    return "signal" in decoded ? { value: decoded.signal } : decoded;
  }, apply, logger);
}

/** replayJournal for any record type: `decode` judges each complete line. */
export async function replayLines<T>(
  path: string, decode: (line: string) => { value: T } | { problem: string }, apply: (value: T) => void, logger: Logger,
): Promise<JournalRecovery> {
  const recovery: JournalRecovery = {
    records: 0, applied: 0, corrupt: 0, damaged: [], tornTail: false, truncatedBytes: 0,
  };
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return recovery;
    throw error;
  }
  let start = 0;
  let line = 0;
  while (start < bytes.length) {
    const end = bytes.indexOf(NEWLINE, start);
    if (end === -1) break;
    line++;
    const offset = start;
    const text = bytes.toString("utf8", start, end);
    start = end + 1;
    if (text.trim() === "") continue;
    recovery.records++;
    const decoded = decode(text);
    if ("value" in decoded) {
      apply(decoded.value);
      recovery.applied++;
    } else {
      recovery.corrupt++;
      if (recovery.damaged.length < DAMAGE_DETAIL_LIMIT) {
        recovery.damaged.push({ line, offset, problem: decoded.problem });
        logger.error({ journal: path, line, offset, problem: decoded.problem }, "corrupt journal record");
      }
    }
  }
  if (recovery.corrupt > DAMAGE_DETAIL_LIMIT) {
    logger.error({ journal: path, corrupt: recovery.corrupt }, "more corrupt journal records than listed");
  }
  if (start < bytes.length) {
    // A record without its newline was never acknowledged (the fsync comes after the newline),
    // so cutting it off loses nothing a caller was promised.
    recovery.tornTail = true;
    recovery.truncatedBytes = bytes.length - start;
    logger.warn(
      { journal: path, line: line + 1, offset: start, bytes: recovery.truncatedBytes },
      "journal ends in a torn record; truncating it",
    );
    await truncate(path, start);
  }
  return recovery;
}

/** Keeps a damaged journal's bytes for inspection before a repair rewrites it. */
export async function preserveDamagedJournal(path: string, nowMs: number): Promise<string> {
  const copy = `${path}.damaged-${new Date(nowMs).toISOString().replace(/[:.]/g, "-")}`;
  await copyFile(path, copy);
  return copy;
}

async function fsyncDirectory(path: string): Promise<void> {
  const directory = await open(dirname(path), "r");
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}

/** Why the journal could not be written, in a closed set (a metric label). */
export const JOURNAL_FAILURE_REASONS = ["no_space", "file_too_large", "read_only", "io", "short_write", "other"] as const;
export type JournalFailureReason = typeof JOURNAL_FAILURE_REASONS[number];

const REASON_OF_CODE: Partial<Record<string, JournalFailureReason>> = {
  ENOSPC: "no_space", EDQUOT: "no_space", EFBIG: "file_too_large", EROFS: "read_only", EIO: "io",
  ESHORTWRITE: "short_write",
};

function failureReason(error: unknown): JournalFailureReason {
  if (error instanceof PartialWrite) return failureReason(error.failure);
  return REASON_OF_CODE[(error as NodeJS.ErrnoException | undefined)?.code ?? ""] ?? "other";
}

/** A write that failed after `written` bytes of it reached the file. */
class PartialWrite extends Error {
  constructor(readonly written: number, readonly failure: unknown) {
    super("journal write cut short", { cause: failure });
  }
}

/**
 * Writes every byte of `bytes` at the end of the file, retrying the remainder after a short
 * write. A write that crosses RLIMIT_FSIZE comes back short and the next one fails with EFBIG:
 * Node ignores SIGXFSZ, so the limit shows up as an error here rather than killing the process.
 * Throws a PartialWrite saying how far it got.
 */
async function writeFully(handle: FileHandle, bytes: Buffer): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    let bytesWritten: number;
    try {
      ({ bytesWritten } = await handle.write(bytes, offset, bytes.length - offset));
    } catch (error) {
      throw new PartialWrite(offset, error);
    }
    if (bytesWritten <= 0) {
      throw new PartialWrite(offset, Object.assign(new Error("the disk took no bytes of a journal write"), { code: "ESHORTWRITE" }));
    }
    offset += bytesWritten;
  }
}

/** How many of `records`, and how many bytes, lie wholly within the first `written` bytes. */
function wholeRecords(records: readonly string[], written: number): { count: number; bytes: number } {
  let count = 0;
  let bytes = 0;
  for (const record of records) {
    const length = Buffer.byteLength(record, "utf8");
    if (bytes + length > written) break;
    bytes += length;
    count++;
  }
  return { count, bytes };
}

/** The journal's ability to take writes right now. */
export interface JournalHealth {
  writable: boolean;
  /** Errno code of the failure that makes it unwritable (ENOSPC, EFBIG, EROFS, EIO …). */
  code?: string;
  reason?: JournalFailureReason;
  /** When the current run of failures began (ms since the epoch). */
  since?: number;
}

export interface JournalStats {
  /** Records currently in the file, superseded ones included. */
  records: number;
  /** Write + fsync rounds done; fewer than writes when group commit batches them. */
  flushes: number;
  compactions: number;
  /** Bytes in the file up to the last acknowledged record. */
  bytes: number;
  /** Failed write rounds since start, by reason (every waiting write in one was refused). */
  writeFailures: Record<JournalFailureReason, number>;
  health: JournalHealth;
}

export interface JournalWriterOptions {
  /** Records already in the file (from replay). */
  records: number;
  /** Rewrite the file once it holds this many more records than live values. */
  compactAfterRecords: number;
  /**
   * Values worth keeping (unexpired) for a snapshot; iterated synchronously so the snapshot is
   * one consistent cut of memory.
   */
  snapshot: () => Iterable<string>;
  liveCount: () => number;
  logger: Logger;
  now: () => number;
  /** What the journal holds, for messages ("signal", "approval"); default "signal". */
  holds?: string;
}

interface Waiter {
  resolve: () => void;
  reject: (error: VigilError) => void;
}

export class JournalWriter {
  readonly #path: string;
  readonly #options: JournalWriterOptions;
  /** Undefined while the file cannot be opened (a read-only or full disk at start, a failed reopen). */
  #handle: FileHandle | undefined;
  /** Bytes of the file up to the end of the last acknowledged record. */
  #size = 0;
  /** Bytes past #size may be in the file (a failed or short write): cut them before appending. */
  #dirty = false;
  #pending: string[] = [];
  #waiters: Waiter[] = [];
  #flushing: Promise<void> | undefined;
  #closed = false;
  #compactAgainAt = 0;
  #failure: { code: string; reason: JournalFailureReason; since: number; error: unknown } | undefined;
  readonly #stats: Omit<JournalStats, "health" | "bytes">;

  private constructor(path: string, options: JournalWriterOptions) {
    this.#path = path;
    this.#options = options;
    this.#stats = {
      records: options.records, flushes: 0, compactions: 0,
      writeFailures: Object.fromEntries(JOURNAL_FAILURE_REASONS.map((r) => [r, 0])) as Record<JournalFailureReason, number>,
    };
  }

  /**
   * Opens the journal for appending. A disk that refuses the open (read-only, full) does not stop
   * the start: the writer begins unwritable, refuses writes with the reason, and tries again on
   * the next write. Other errors (a path that cannot be a file) are thrown.
   */
  static async open(path: string, options: JournalWriterOptions): Promise<JournalWriter> {
    await mkdir(dirname(path), { recursive: true });
    const writer = new JournalWriter(path, options);
    try {
      await writer.#reopen();
    } catch (error) {
      if (failureReason(error) === "other") throw error;
      writer.#noteFailure(error);
    }
    return writer;
  }

  get stats(): JournalStats {
    return {
      ...this.#stats,
      writeFailures: { ...this.#stats.writeFailures },
      bytes: this.#size,
      health: this.health,
    };
  }

  get health(): JournalHealth {
    const failure = this.#failure;
    if (failure === undefined) return { writable: true };
    return { writable: false, code: failure.code, reason: failure.reason, since: failure.since };
  }

  /** Resolves once the record is on disk (written and fsynced); rejects with "unavailable" if not. */
  append(record: string): Promise<void> {
    if (this.#closed) return Promise.reject(new VigilError("unavailable", "the journal is closed"));
    const done = new Promise<void>((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
    });
    this.#pending.push(record);
    this.#flushing ??= this.#drain();
    return done;
  }

  /** Rewrites the journal now as a snapshot of memory (after a repair). */
  async rewrite(): Promise<void> {
    await this.#flushing;
    await this.#compact();
  }

  /** Waits for every queued record, then closes the file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#flushing;
    await this.#handle?.close();
    this.#handle = undefined;
  }

  /** Opens (or re-opens) the file and takes its size as the last good end. */
  async #reopen(): Promise<FileHandle> {
    const handle = await open(this.#path, "a");
    try {
      // The file's directory entry must be durable too, or a crash can lose a fresh journal whole.
      await handle.sync();
      await fsyncDirectory(this.#path);
      this.#size = (await handle.stat()).size;
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
    this.#handle = handle;
    this.#dirty = false;
    return handle;
  }

  /** A handle on a file that ends exactly on the last acknowledged record. */
  async #consistent(): Promise<FileHandle> {
    const handle = this.#handle ?? await this.#reopen();
    if (this.#dirty) {
      await handle.truncate(this.#size);
      await handle.sync();
      this.#dirty = false;
    }
    return handle;
  }

  async #drain(): Promise<void> {
    while (this.#pending.length > 0) {
      const records = this.#pending;
      const waiters = this.#waiters;
      this.#pending = [];
      this.#waiters = [];
      const batch = Buffer.from(records.join(""), "utf8");
      let settled = 0;
      try {
        const handle = await this.#consistent();
        this.#dirty = true;
        try {
          await writeFully(handle, batch);
        } catch (error) {
          if (!(error instanceof PartialWrite)) throw error;
          // Keep the whole records that made it (cut the partial one off, fsync, acknowledge
          // them); the rest are refused below. A full disk then takes all it has room for.
          const whole = wholeRecords(records, error.written);
          if (whole.count > 0) {
            await handle.truncate(this.#size + whole.bytes);
            await handle.sync();
            this.#size += whole.bytes;
            this.#dirty = false;
            this.#stats.records += whole.count;
            this.#stats.flushes++;
            for (const waiter of waiters.slice(0, whole.count)) waiter.resolve();
            settled = whole.count;
          }
          throw error.failure;
        }
        await handle.sync();
        this.#size += batch.length;
        this.#dirty = false;
        this.#stats.records += records.length;
        this.#stats.flushes++;
        this.#noteSuccess();
        for (const waiter of waiters) waiter.resolve();
      } catch (error) {
        const refusal = this.#noteFailure(error);
        for (const waiter of waiters.slice(settled)) waiter.reject(refusal);
        // Cut the partial batch off now, so that a crash before the next write cannot leave a
        // half record that was never acknowledged in the middle of the journal. If this fails
        // too, the next write tries again before appending anything.
        await this.#consistent().catch(() => undefined);
        continue;
      }
      // A snapshot taken while records wait would hold values not yet durable (and possibly
      // refused later); compact only when memory and the file agree.
      if (
        this.#pending.length === 0
        && this.#stats.records - this.#options.liveCount() > this.#options.compactAfterRecords
        && this.#stats.records >= this.#compactAgainAt
      ) {
        await this.#compact();
      }
    }
    this.#flushing = undefined;
  }

  #noteSuccess(): void {
    if (this.#failure === undefined) return;
    this.#options.logger.warn(
      { journal: this.#path, code: this.#failure.code, since: new Date(this.#failure.since).toISOString() },
      "journal writable again",
    );
    this.#failure = undefined;
  }

  /** Records a failure (logged once per run of failures, not per write) and builds the refusal. */
  #noteFailure(error: unknown): VigilError {
    const reason = failureReason(error);
    const cause = error instanceof PartialWrite ? error.failure : error;
    const code = (cause as NodeJS.ErrnoException | undefined)?.code ?? "unknown";
    this.#stats.writeFailures[reason]++;
    if (this.#failure?.code !== code) {
      this.#failure = { code, reason, since: this.#failure?.since ?? this.#options.now(), error };
      this.#options.logger.error(
        { err: cause, journal: this.#path, code, reason },
        `journal cannot be written; refusing ${this.#options.holds ?? "signal"} writes until the disk takes them again`,
      );
    }
    const since = new Date(this.#failure.since).toISOString();
    return new VigilError("unavailable", `the ${this.#options.holds ?? "signal"} journal cannot be written (${code} since ${since}); retry later`, {
      cause: error,
    });
  }

  /**
   * Snapshot of live values to a temp file, fsync, atomic rename over the journal, fsync of the
   * directory. A crash at any point leaves either the old journal or the new one, never half.
   */
  async #compact(): Promise<void> {
    const temp = `${this.#path}.compact`;
    const lines: string[] = [];
    for (const record of this.#options.snapshot()) lines.push(record);
    const bytes = Buffer.from(lines.join(""), "utf8");
    let renamed = false;
    try {
      const out = await open(temp, "w");
      try {
        await writeFully(out, bytes);
        await out.sync();
      } finally {
        await out.close();
      }
      await rename(temp, this.#path);
      renamed = true;
      await fsyncDirectory(this.#path);
      const previous = this.#handle;
      // The old handle now points at an unlinked file: appending there would lose writes.
      this.#handle = undefined;
      await previous?.close().catch(() => undefined);
      await this.#reopen();
      this.#stats.records = lines.length;
      this.#stats.compactions++;
      this.#compactAgainAt = 0;
      this.#options.logger.info({ journal: this.#path, records: lines.length }, "journal compacted");
    } catch (error) {
      if (renamed) {
        // The new file is in place but not open: the next write reopens it (or refuses).
        this.#stats.records = lines.length;
        this.#noteFailure(error);
      }
      // Try again only after as many new records again, not on every flush.
      this.#compactAgainAt = this.#stats.records + this.#options.compactAfterRecords;
      this.#options.logger.error({ err: error, journal: this.#path }, "journal compaction failed");
      await rm(temp, { force: true }).catch(() => undefined);
    }
  }
}
