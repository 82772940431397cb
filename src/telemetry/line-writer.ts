// Batched, ordered writes of whole log lines to a file descriptor, for the one decision line per
// Check. Lines are encoded straight into a preallocated buffer (no growing strings for the GC to
// chase) and written with one fs.write per ~16 KiB, or every 250 ms so a quiet sidecar's lines go
// out promptly. Writes stay in order (one at a time) and always hold whole lines. On a crash at
// most the current buffer and the chunks still queued are lost; close() waits until all are out.

import { write } from "node:fs";

const CAPACITY = 16 * 1024;

export class LineWriter {
  readonly #fd: number;
  #buf = Buffer.allocUnsafe(CAPACITY);
  #len = 0;
  readonly #queue: Buffer[] = [];
  #writing = false;
  readonly #timer: NodeJS.Timeout;
  readonly #onError: (err: unknown) => void;
  readonly #drained: (() => void)[] = [];

  constructor(fd: number, options: { flushIntervalMs?: number; onError?: (err: unknown) => void } = {}) {
    this.#fd = fd;
    this.#onError = options.onError ?? (() => undefined);
    this.#timer = setInterval(() => { this.flush(); }, options.flushIntervalMs ?? 250);
    this.#timer.unref();
  }

  /** Appends one line (which must end with "\n"). */
  write(line: string): void {
    // A UTF-16 code unit takes at most 3 UTF-8 bytes.
    if (this.#len + line.length * 3 > CAPACITY) {
      this.flush();
      if (line.length * 3 > CAPACITY) {
        this.#enqueue(Buffer.from(line, "utf8"));
        return;
      }
    }
    this.#len += this.#buf.write(line, this.#len, "utf8");
  }

  /** Hands the buffered lines to the writer queue. */
  flush(): void {
    if (this.#len === 0) return;
    const chunk = this.#buf.subarray(0, this.#len);
    this.#buf = Buffer.allocUnsafe(CAPACITY);
    this.#len = 0;
    this.#enqueue(chunk);
  }

  /** Stops the timer and resolves once everything buffered or queued has been written. */
  close(): Promise<void> {
    clearInterval(this.#timer);
    this.flush();
    if (!this.#writing) return Promise.resolve();
    return new Promise((resolve) => { this.#drained.push(resolve); });
  }

  #enqueue(chunk: Buffer): void {
    this.#queue.push(chunk);
    if (!this.#writing) this.#next();
  }

  #next(): void {
    const chunk = this.#queue.shift();
    if (chunk === undefined) {
      this.#writing = false;
      for (const resolve of this.#drained.splice(0)) resolve();
      return;
    }
    this.#writing = true;
    write(this.#fd, chunk, 0, chunk.length, null, (err, written) => {
      if (err !== null) {
        this.#onError(err);
      } else if (written < chunk.length) {
        this.#queue.unshift(chunk.subarray(written));
      }
      this.#next();
    });
  }
}
