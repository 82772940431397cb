// The embedded outbox: notices in an append-only file (`outbox.jsonl` beside the signal journal),
// one line per change: `<crc32 hex> {"add":<notice>}` when queued, `<crc32 hex> {"done":"<id>"}`
// when delivered or dropped. A notice is acknowledged to its producer only once its line is
// written and fsynced (group committed: adds waiting at the same moment share one fsync), so a
// notice is not lost to a crash or restart; replay queues again every add without a done.
// A crash after a receiver's 2xx and before the done line is on disk sends that notice once
// more after restart (receivers de-duplicate on the SET's jti or the webhook-id header).
//
// The file is rewritten with only the pending notices once enough done lines pile up, so it
// stays bounded by the backlog. Pending notices are capped (maxPending): past it an add is refused
// rather than growing memory without bound. A torn or corrupt line is skipped with a warning:
// it can only be a notice, never security state (revocations live in the signal store).

import { crc32 } from "node:zlib";
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import type { Logger } from "pino";
import { VigilError } from "../errors/index.js";
import { noticeSchema, type Backlog, type Lease, type Notice, type OutboxQueue } from "./notice.js";

interface Entry {
  notice: Notice;
  attempts: number;
  dueAt: number;
  leased: boolean;
  /** False while its add line is being written: not offered to the sender yet. */
  durable: boolean;
}

export interface JournalQueueOptions {
  /** The outbox file; "" keeps notices in memory only (a memory-only signal journal, tests). */
  path: string;
  logger: Logger;
  now?: () => number;
  /** Most notices waiting at once; an add past it is refused (unavailable). */
  maxPending: number;
  /** Delivered ids remembered to refuse a duplicate add (beyond the pending ones). */
  rememberDone?: number;
  /** Rewrite the file once this many done lines are in it (and they outnumber the pending). */
  compactAfter?: number;
}

type Record = { add: Notice } | { done: string };

function encode(record: Record): string {
  const json = JSON.stringify(record);
  return `${crc32(json).toString(16).padStart(8, "0")} ${json}\n`;
}

function decode(line: string): Record | undefined {
  const json = line.slice(9);
  if (line[8] !== " " || crc32(json).toString(16).padStart(8, "0") !== line.slice(0, 8)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  if ("done" in value && typeof value.done === "string") return { done: value.done };
  if ("add" in value) {
    const parsed = noticeSchema.safeParse(value.add);
    if (parsed.success) return { add: parsed.data };
  }
  return undefined;
}

export class JournalQueue implements OutboxQueue {
  readonly kind = "journal";
  readonly #options: JournalQueueOptions;
  readonly #now: () => number;
  readonly #pending = new Map<string, Entry>();
  readonly #done = new Set<string>();
  #file: FileHandle | undefined;
  #doneLines = 0;
  #buffer: string[] = [];
  #waiters: { resolve: () => void; reject: (err: unknown) => void }[] = [];
  #flushing: Promise<void> | undefined;
  #compactWanted = false;
  #wake: (() => void) | undefined;
  #closed = false;

  constructor(options: JournalQueueOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  async open(): Promise<void> {
    const { path, logger } = this.#options;
    if (path === "") return;
    await mkdir(dirname(path), { recursive: true });
    let text = "";
    try {
      text = await readFile(path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    let corrupt = 0;
    const lines = text.split("\n");
    // The last piece has no newline: a torn write that was never acknowledged, or "".
    const torn = lines.pop() ?? "";
    for (const line of lines) {
      if (line === "") continue;
      const record = decode(line);
      if (record === undefined) {
        corrupt++;
        continue;
      }
      if ("add" in record) {
        if (!this.#done.has(record.add.id)) {
          this.#pending.set(record.add.id, { notice: record.add, attempts: 0, dueAt: 0, leased: false, durable: true });
        }
      } else {
        this.#pending.delete(record.done);
        this.#remember(record.done);
      }
    }
    if (corrupt > 0 || torn !== "") {
      logger.warn({ path, corrupt, torn_tail: torn !== "" }, "outbox file had damaged lines; they were skipped");
    }
    // Start from a clean file holding only what is still to send.
    await this.#rewrite();
    if (this.#pending.size > 0) logger.info({ pending: this.#pending.size }, "outbox notices queued again after restart");
  }

  async add(notice: Notice): Promise<boolean> {
    if (this.#closed) throw new VigilError("unavailable", "the outbox is closed");
    if (this.#pending.has(notice.id) || this.#done.has(notice.id)) return false;
    if (this.#pending.size >= this.#options.maxPending) {
      throw new VigilError("unavailable", `the outbox holds ${String(this.#options.maxPending)} undelivered notices (outbox.maxPending)`);
    }
    // In the map before its line is written, so a compaction meanwhile keeps it and a second add
    // of the same id is refused; offered to the sender only once durable.
    const entry: Entry = { notice, attempts: 0, dueAt: 0, leased: false, durable: false };
    this.#pending.set(notice.id, entry);
    try {
      await this.#append(encode({ add: notice }));
    } catch (err) {
      this.#pending.delete(notice.id);
      throw err;
    }
    entry.durable = true;
    this.#wake?.();
    return true;
  }

  async claim(max: number, waitMs: number, signal: AbortSignal): Promise<Lease[]> {
    const deadline = this.#now() + waitMs;
    for (;;) {
      const now = this.#now();
      const leases: Lease[] = [];
      let nextDue = Infinity;
      for (const entry of this.#pending.values()) {
        if (entry.leased || !entry.durable) continue;
        if (entry.dueAt > now) {
          nextDue = Math.min(nextDue, entry.dueAt);
          continue;
        }
        entry.leased = true;
        leases.push(this.#lease(entry));
        if (leases.length >= max) break;
      }
      if (leases.length > 0 || this.#closed || signal.aborted || now >= deadline) return leases;
      await this.#sleep(Math.min(deadline, nextDue) - now, signal);
    }
  }

  backlog(): Promise<Backlog> {
    let oldestAt: number | undefined;
    for (const entry of this.#pending.values()) {
      if (oldestAt === undefined || entry.notice.createdAt < oldestAt) oldestAt = entry.notice.createdAt;
    }
    return Promise.resolve({ pending: this.#pending.size, oldestAt });
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#wake?.();
    await this.#flushing;
    await this.#file?.close();
    this.#file = undefined;
  }

  #lease(entry: Entry): Lease {
    let settled = false;
    const twice = (): Promise<void> => Promise.reject(new VigilError("internal", "an outbox lease was settled twice"));
    const finish = async (): Promise<void> => {
      if (settled) return twice();
      settled = true;
      this.#pending.delete(entry.notice.id);
      this.#remember(entry.notice.id);
      this.#doneLines++;
      try {
        await this.#append(encode({ done: entry.notice.id }));
      } catch (err) {
        // Not fatal: without the done line the notice is sent once more after a restart.
        this.#options.logger.warn({ err, notice: entry.notice.id }, "outbox could not record a delivery; it may be sent again after restart");
      }
      const threshold = this.#options.compactAfter ?? 1_000;
      if (this.#options.path !== "" && this.#doneLines >= threshold && this.#doneLines >= this.#pending.size && !this.#closed) {
        this.#compactWanted = true;
        this.#kick();
      }
    };
    return {
      notice: entry.notice,
      attempts: entry.attempts,
      ack: finish,
      drop: finish,
      retry: (delayMs) => {
        if (settled) return twice();
        settled = true;
        entry.attempts++;
        entry.dueAt = this.#now() + delayMs;
        entry.leased = false;
        this.#wake?.();
        return Promise.resolve();
      },
    };
  }

  #remember(id: string): void {
    this.#done.add(id);
    const cap = this.#options.rememberDone ?? 10_000;
    while (this.#done.size > cap) {
      const oldest = this.#done.values().next();
      if (oldest.done === true) break;
      this.#done.delete(oldest.value);
    }
  }

  #sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        if (this.#wake === done) this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, Math.max(1, ms));
      timer.unref();
      signal.addEventListener("abort", done, { once: true });
      this.#wake = done;
    });
  }

  /** Appends one line; resolves once it (and every line written with it) is fsynced. */
  #append(line: string): Promise<void> {
    if (this.#options.path === "") return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#buffer.push(line);
      this.#waiters.push({ resolve, reject });
      this.#kick();
    });
  }

  /** One writer at a time: appends and compaction take turns on the same file handle. */
  #kick(): void {
    this.#flushing ??= this.#flush().finally(() => {
      this.#flushing = undefined;
      if (this.#buffer.length > 0 || this.#compactWanted) this.#kick();
    });
  }

  async #flush(): Promise<void> {
    while (this.#buffer.length > 0 || this.#compactWanted) {
      if (this.#buffer.length > 0) {
        const text = this.#buffer.join("");
        const waiters = this.#waiters;
        this.#buffer = [];
        this.#waiters = [];
        try {
          if (this.#file === undefined) throw new VigilError("unavailable", "the outbox file is not open");
          await this.#file.write(text);
          await this.#file.datasync();
          for (const w of waiters) w.resolve();
        } catch (err) {
          const error = new VigilError("unavailable", `cannot write the outbox file ${this.#options.path}: ${VigilError.from(err).message}`, { cause: err });
          for (const w of waiters) w.reject(error);
        }
      }
      if (this.#compactWanted) {
        this.#compactWanted = false;
        try {
          await this.#rewrite();
        } catch (err) {
          this.#options.logger.warn({ err }, "outbox compaction failed; the file keeps growing until the next one");
        }
      }
    }
  }

  /** Writes the pending notices to a new file and swaps it in (atomic rename). */
  async #rewrite(): Promise<void> {
    const { path } = this.#options;
    const temp = `${path}.tmp`;
    const text = [...this.#pending.values()].map((e) => encode({ add: e.notice })).join("");
    const handle = await open(temp, "w", 0o600);
    try {
      await handle.write(text);
      await handle.datasync();
    } finally {
      await handle.close();
    }
    await rename(temp, path).catch(async (err: unknown) => {
      await rm(temp, { force: true });
      throw err;
    });
    const next = await open(path, "a", 0o600);
    await this.#file?.close();
    this.#file = next;
    this.#doneLines = 0;
  }
}
