// The embedded store's append-only journal: one JSON line per applied signal value, each with a
// CRC-32 of its payload so a torn or bit-rotten record is recognised on replay. Writes are group
// committed (every write waiting at the same moment shares one write + fsync), and the file is
// compacted into a snapshot of live values once enough of it is superseded.

import { crc32 } from "node:zlib";
import { mkdir, open, readFile, rename, rm, truncate } from "node:fs/promises";
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
  const payload = JSON.stringify(signal);
  return `${HEAD}${checksum(payload)}${MID}${payload}}\n`;
}

/** The signal in one journal line, or why the line cannot be trusted. */
export function decodeRecord(line: string): { signal: Signal } | { problem: string } {
  if (!line.startsWith(HEAD) || !line.endsWith("}")) return { problem: "not a v1 journal record" };
  const crc = line.slice(HEAD.length, HEAD.length + CRC_HEX);
  if (line.slice(HEAD.length + CRC_HEX, HEAD.length + CRC_HEX + MID.length) !== MID) {
    return { problem: "malformed record header" };
  }
  const payload = line.slice(HEAD.length + CRC_HEX + MID.length, -1);
  if (checksum(payload) !== crc) return { problem: "checksum mismatch" };
  let value: unknown;
  try {
    value = JSON.parse(payload);
  } catch {
    return { problem: "payload is not JSON" };
  }
  const parsed = signalSchema.safeParse(value);
  if (!parsed.success) return { problem: "payload is not a valid signal" };
  return { signal: parsed.data };
}

/** What replay found; returned to the caller and logged, so damage is never silent. */
export interface JournalRecovery {
  /** Complete lines found in the file (valid or not). */
  records: number;
  /** Records applied to memory. */
  applied: number;
  /** Complete records skipped because their checksum or content was wrong. */
  corrupt: number;
  /** The file ended in a partial record (a write cut short): it was cut off. */
  tornTail: boolean;
  /** Bytes removed from the end of the file. */
  truncatedBytes: number;
}

/**
 * Replays the journal at `path` into `apply`, in file order. A missing file is an empty journal.
 * A torn last record is truncated away so the next append starts on a clean line.
 */
export async function replayJournal(
  path: string, apply: (signal: Signal) => void, logger: Logger,
): Promise<JournalRecovery> {
  const recovery: JournalRecovery = { records: 0, applied: 0, corrupt: 0, tornTail: false, truncatedBytes: 0 };
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
    const text = bytes.toString("utf8", start, end);
    start = end + 1;
    if (text.trim() === "") continue;
    recovery.records++;
    const decoded = decodeRecord(text);
    if ("signal" in decoded) {
      apply(decoded.signal);
      recovery.applied++;
    } else {
      recovery.corrupt++;
      logger.warn({ journal: path, line, problem: decoded.problem }, "skipped a corrupt journal record");
    }
  }
  if (start < bytes.length) {
    // A record without its newline was never acknowledged (the fsync comes after the newline),
    // so cutting it off loses nothing a caller was promised.
    recovery.tornTail = true;
    recovery.truncatedBytes = bytes.length - start;
    logger.warn(
      { journal: path, line: line + 1, bytes: recovery.truncatedBytes },
      "journal ends in a torn record; truncating it",
    );
    await truncate(path, start);
  }
  return recovery;
}

async function fsyncDirectory(path: string): Promise<void> {
  const directory = await open(dirname(path), "r");
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}

export interface JournalStats {
  /** Records currently in the file, superseded ones included. */
  records: number;
  /** Write + fsync rounds done; fewer than writes when group commit batches them. */
  flushes: number;
  compactions: number;
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
  snapshot: () => Iterable<Signal>;
  liveCount: () => number;
  logger: Logger;
}

interface Waiter {
  resolve: () => void;
  reject: (error: VigilError) => void;
}

export class JournalWriter {
  readonly #path: string;
  readonly #options: JournalWriterOptions;
  #handle: FileHandle;
  #pending: string[] = [];
  #waiters: Waiter[] = [];
  #flushing: Promise<void> | undefined;
  #broken: VigilError | undefined;
  #closed = false;
  #compactAgainAt = 0;
  readonly #stats: JournalStats;

  private constructor(path: string, handle: FileHandle, options: JournalWriterOptions) {
    this.#path = path;
    this.#handle = handle;
    this.#options = options;
    this.#stats = { records: options.records, flushes: 0, compactions: 0 };
  }

  static async open(path: string, options: JournalWriterOptions): Promise<JournalWriter> {
    await mkdir(dirname(path), { recursive: true });
    const handle = await open(path, "a");
    // The file's directory entry must be durable too, or a crash can lose a fresh journal whole.
    await handle.sync();
    await fsyncDirectory(path);
    return new JournalWriter(path, handle, options);
  }

  get stats(): JournalStats {
    return { ...this.#stats };
  }

  /** Resolves once the record is on disk (written and fsynced). */
  append(record: string): Promise<void> {
    if (this.#closed) return Promise.reject(new VigilError("unavailable", "the journal is closed"));
    if (this.#broken !== undefined) return Promise.reject(this.#broken);
    const done = new Promise<void>((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
    });
    this.#pending.push(record);
    this.#flushing ??= this.#drain();
    return done;
  }

  /** Waits for every queued record, then closes the file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#flushing;
    await this.#handle.close();
  }

  async #drain(): Promise<void> {
    while (this.#pending.length > 0) {
      const batch = this.#pending;
      const waiters = this.#waiters;
      this.#pending = [];
      this.#waiters = [];
      try {
        await this.#handle.write(batch.join(""));
        await this.#handle.sync();
        this.#stats.records += batch.length;
        this.#stats.flushes++;
        for (const waiter of waiters) waiter.resolve();
      } catch (error) {
        // After a failed write or fsync the file's state is unknown (the kernel may have dropped
        // dirty pages), so the journal refuses further writes until a restart replays it.
        this.#broken = new VigilError("unavailable", `journal ${this.#path} cannot be written`, { cause: error });
        this.#options.logger.error({ err: error, journal: this.#path }, "journal write failed; refusing writes");
        for (const waiter of [...waiters, ...this.#waiters]) waiter.reject(this.#broken);
        this.#pending = [];
        this.#waiters = [];
        break;
      }
      if (
        this.#stats.records - this.#options.liveCount() > this.#options.compactAfterRecords
        && this.#stats.records >= this.#compactAgainAt
      ) {
        await this.#compact();
        if (this.#broken !== undefined) {
          for (const waiter of this.#waiters) waiter.reject(this.#broken);
          this.#pending = [];
          this.#waiters = [];
        }
      }
    }
    this.#flushing = undefined;
  }

  /**
   * Snapshot of live values to a temp file, fsync, atomic rename over the journal, fsync of the
   * directory. A crash at any point leaves either the old journal or the new one, never half.
   * Records queued meanwhile are already in memory, so they are in the snapshot and are appended
   * again after it: replaying a value twice is harmless.
   */
  async #compact(): Promise<void> {
    const temp = `${this.#path}.compact`;
    const lines: string[] = [];
    for (const signal of this.#options.snapshot()) lines.push(encodeRecord(signal));
    let renamed = false;
    try {
      const out = await open(temp, "w");
      try {
        await out.write(lines.join(""));
        await out.sync();
      } finally {
        await out.close();
      }
      await rename(temp, this.#path);
      renamed = true;
      await fsyncDirectory(this.#path);
      const previous = this.#handle;
      this.#handle = await open(this.#path, "a");
      await previous.close();
      this.#stats.records = lines.length;
      this.#stats.compactions++;
      this.#compactAgainAt = 0;
      this.#options.logger.info({ journal: this.#path, records: lines.length }, "journal compacted");
    } catch (error) {
      if (renamed) {
        // The old handle now points at an unlinked file: appending there would lose writes.
        this.#broken = new VigilError("unavailable", `journal ${this.#path} was compacted but cannot be reopened`, {
          cause: error,
        });
      }
      // Try again only after as many new records again, not on every flush.
      this.#compactAgainAt = this.#stats.records + this.#options.compactAfterRecords;
      this.#options.logger.error({ err: error, journal: this.#path }, "journal compaction failed");
      await rm(temp, { force: true }).catch(() => undefined);
    }
  }
}
