// Batched, ordered writes of whole log lines to a file descriptor (stdout in production): every
// log line and the one decision line per Check. Lines are encoded straight into a preallocated
// buffer (no growing strings for the GC to chase) and written with one asynchronous fs.write per
// ~16 KiB, or every 250 ms so a quiet sidecar's lines go out promptly. Writes stay in order (one
// at a time) and always hold whole lines.
//
// Logging must never stop decisions. The writer never writes synchronously, never throws, and
// holds at most `maxQueuedBytes`: when stdout cannot keep up (a stalled pipe) or fails (a full
// disk, EFBIG under a file-size limit, EPIPE), lines are dropped and counted, never waited for.
// A busy descriptor (EAGAIN) is retried a little later. On a crash the current buffer and the
// chunks still queued are lost; close() waits (a bounded time) until they are out.

import { write } from "node:fs";

const CAPACITY = 16 * 1024;
const DEFAULT_MAX_QUEUED_BYTES = 2 * 1024 * 1024;
const RETRY_BUSY_MS = 50;
const DEFAULT_CLOSE_TIMEOUT_MS = 2_000;
const NEWLINE = 0x0a;

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
  #buf = Buffer.allocUnsafe(CAPACITY);
  #len = 0;
  readonly #queue: Buffer[] = [];
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
      const chunk = this.#buf.subarray(0, this.#len);
      this.#buf = Buffer.allocUnsafe(CAPACITY);
      this.#len = 0;
      this.#enqueue(chunk);
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

  #enqueue(chunk: Buffer): void {
    if (this.#queuedBytes + chunk.length > this.#maxQueuedBytes) {
      this.#dropped += countLines(chunk);
      return;
    }
    this.#queue.push(chunk);
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
        this.#take(chunk.length);
        this.#dropped += countLines(chunk);
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

  #take(bytes: number): void {
    this.#queue.shift();
    this.#queuedBytes -= bytes;
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
