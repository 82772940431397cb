// Batched, ordered writes of whole log lines to a file descriptor (stdout in production): every
// log line and the one decision line per Check. Lines are encoded straight into a preallocated
// buffer (no growing strings for the GC to chase) and written with one asynchronous fs.write per
// ~64 KiB, or every 250 ms so a quiet sidecar's lines go out promptly. Writes stay in order (one
// at a time) and always hold whole lines.
//
// Logging must never stop decisions. The writer never writes synchronously, never throws, and
// holds at most `maxQueuedBytes`: when stdout cannot keep up (a stalled pipe) or fails (a full
// disk, EFBIG under a file-size limit, EPIPE), lines are dropped and counted, never waited for.
// A busy descriptor (EAGAIN) is retried a little later. On a crash the current buffer and the
// chunks still queued are lost; close() waits (a bounded time) until they are out. Buffers that
// were written are reused (a few kept), so a busy writer allocates none.

import { write } from "node:fs";

// One fs.write costs about 20 µs of CPU (the thread-pool round trip, Node 20 on 2 cores), whatever
// its size: at ~700 bytes per decision line, 64 KiB chunks make that ~0.2 µs per line (16 KiB: ~1 µs).
const CAPACITY = 64 * 1024;
const DEFAULT_MAX_QUEUED_BYTES = 2 * 1024 * 1024;
const RETRY_BUSY_MS = 50;
const DEFAULT_CLOSE_TIMEOUT_MS = 2_000;
const NEWLINE = 0x0a;
/** Written buffers kept for reuse (a new one is a fresh ArrayBuffer, pages faulted in, later a GC). */
const MAX_SPARE_BUFFERS = 4;

export interface LineWriterOptions {
  flushIntervalMs?: number;
  /** Lines waiting beyond this many bytes are dropped (default 2 MiB). */
  maxQueuedBytes?: number;
  /** How long close() waits for the queue to drain (default 2 s). */
  closeTimeoutMs?: number;
  /**
   * Called when writing starts failing (with the error) and when it works again (with
   * undefined); once per change, not per chunk, so a dead stdout cannot cause a storm.
   */
  onStateChange?: (err: NodeJS.ErrnoException | undefined) => void;
}

export interface LineWriterStats {
  /** Lines dropped since start (the descriptor failed, or the queue was full). */
  dropped: number;
  /** Errno code of the failure writes are in, or undefined when they work. */
  failing: string | undefined;
}

export class LineWriter {
  readonly #fd: number;
  #buf: Buffer = Buffer.allocUnsafe(CAPACITY);
  #len = 0;
  readonly #queue: Buffer[] = [];
  /** For each queued chunk, the buffer it lies in, to reuse once written (none for a long line's own). */
  readonly #owners: (Buffer | undefined)[] = [];
  readonly #spare: Buffer[] = [];
  #queuedBytes = 0;
  readonly #maxQueuedBytes: number;
  readonly #closeTimeoutMs: number;
  #writing = false;
  readonly #timer: NodeJS.Timeout;
  readonly #onStateChange: (err: NodeJS.ErrnoException | undefined) => void;
  readonly #drained: (() => void)[] = [];
  #dropped = 0;
  #failing: string | undefined;

  constructor(fd: number, options: LineWriterOptions = {}) {
    this.#fd = fd;
    this.#maxQueuedBytes = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
    this.#closeTimeoutMs = options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.#onStateChange = options.onStateChange ?? (() => undefined);
    this.#timer = setInterval(() => { this.flush(); }, options.flushIntervalMs ?? 250);
    this.#timer.unref();
  }

  get stats(): LineWriterStats {
    return { dropped: this.#dropped, failing: this.#failing };
  }

  /** Counts lines lost before they reached the writer (they show in stats.dropped). */
  countDropped(lines: number): void {
    this.#dropped += lines;
  }

  /** Appends one line (which must end with "\n"); drops it if the queue is full. */
  write(line: string): void {
    // A UTF-16 code unit takes at most 3 UTF-8 bytes.
    if (this.#len + line.length * 3 > CAPACITY) {
      this.flush();
      if (line.length * 3 > CAPACITY) {
        this.#enqueue(Buffer.from(line, "utf8"));
        return;
      }
    }
    if (this.#queuedBytes + this.#len + line.length * 3 > this.#maxQueuedBytes) {
      this.#dropped++;
      return;
    }
    this.#len += this.#buf.write(line, this.#len, "utf8");
  }

  /**
   * Hands the buffered lines to the writer queue; `done` (pino's logger.flush) is called once
   * the queue has drained, or after the close timeout if the descriptor is stuck.
   */
  flush(done?: (err?: Error) => void): void {
    if (this.#len > 0) {
      const full = this.#buf;
      const chunk = full.subarray(0, this.#len);
      this.#buf = this.#spare.pop() ?? Buffer.allocUnsafe(CAPACITY);
      this.#len = 0;
      this.#enqueue(chunk, full);
    }
    if (done !== undefined) {
      void this.#whenDrained().then(() => { done(); });
    }
  }

  /** Stops the timer and resolves once everything buffered or queued is out (or the timeout). */
  close(): Promise<void> {
    clearInterval(this.#timer);
    this.flush();
    return this.#whenDrained();
  }

  #whenDrained(): Promise<void> {
    if (!this.#writing) return Promise.resolve();
    return new Promise((resolve) => {
      const timeout = setTimeout(resolve, this.#closeTimeoutMs);
      timeout.unref();
      this.#drained.push(() => {
        clearTimeout(timeout);
        resolve();
      });
    });
  }

  #enqueue(chunk: Buffer, owner?: Buffer): void {
    if (this.#queuedBytes + chunk.length > this.#maxQueuedBytes) {
      this.#dropped += countLines(chunk);
      this.#reuse(owner);
      return;
    }
    this.#queue.push(chunk);
    this.#owners.push(owner);
    this.#queuedBytes += chunk.length;
    if (!this.#writing) this.#next();
  }

  #next(): void {
    const chunk = this.#queue[0];
    if (chunk === undefined) {
      this.#writing = false;
      for (const resolve of this.#drained.splice(0)) resolve();
      return;
    }
    this.#writing = true;
    write(this.#fd, chunk, 0, chunk.length, null, (err, written) => {
      if (err !== null) {
        if (err.code === "EAGAIN" || err.code === "EBUSY") {
          // A non-blocking pipe whose reader is slow: the same chunk, a little later.
          setTimeout(() => { this.#next(); }, RETRY_BUSY_MS).unref();
          return;
        }
        // Anything else (ENOSPC, EFBIG, EPIPE, EIO …) will not go better by waiting: the
        // chunk is dropped and counted; the next chunk tries the descriptor again.
        this.#dropped += countLines(chunk);
        this.#take(chunk.length);
        this.#setFailing(err);
      } else if (written < chunk.length) {
        // Whatever part of a line did go out is lost with the rest of it on the next failure;
        // a retry of the remainder keeps lines whole when the descriptor recovers.
        this.#queue[0] = chunk.subarray(written);
        this.#queuedBytes -= written;
      } else {
        this.#take(chunk.length);
        this.#setFailing(undefined);
      }
      this.#next();
    });
  }

  /** The first chunk is out (or dropped): off the queue, and its buffer back for reuse. */
  #take(bytes: number): void {
    this.#queue.shift();
    this.#reuse(this.#owners.shift());
    this.#queuedBytes -= bytes;
  }

  #reuse(buffer: Buffer | undefined): void {
    if (buffer !== undefined && this.#spare.length < MAX_SPARE_BUFFERS) this.#spare.push(buffer);
  }

  #setFailing(err: NodeJS.ErrnoException | undefined): void {
    const code = err === undefined ? undefined : err.code ?? "unknown";
    if (code === this.#failing) return;
    this.#failing = code;
    try {
      this.#onStateChange(err);
    } catch {
      // A broken observer must not stop the writer.
    }
  }
}

function countLines(chunk: Buffer): number {
  let lines = 0;
  for (let at = chunk.indexOf(NEWLINE); at !== -1; at = chunk.indexOf(NEWLINE, at + 1)) lines++;
  return Math.max(lines, 1);
}
