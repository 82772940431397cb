// pino logging for Vigil: JSON lines on stdout, child loggers per component, and redaction
// paths for anything that may carry a secret. Lines go through an asynchronous LineWriter so the
// Check path only pays for serialisation, and so that a stdout that fails or stalls (full disk,
// closed pipe) drops and counts lines instead of stopping the process: pino's own destination
// retries a failed write forever, synchronously, from its exit hook. On a crash the lines still
// buffered or queued (bounded by the LineWriter's maxQueuedBytes, 2 MiB) can be lost; on shutdown
// they are flushed. The one decision line per Check goes through the same LineWriter without
// pino (telemetry/decision-log.ts).

import { write } from "node:fs";
import { pino, type DestinationStream, type Logger } from "pino";
import { LineWriter } from "./line-writer.js";

/** Paths whose values must never reach a log line, wherever they appear. */
export const REDACT_PATHS = [
  "authorization",
  "*.authorization",
  "headers.authorization",
  "*.headers.authorization",
  "headers[\"x-api-key\"]",
  "*.headers[\"x-api-key\"]",
  "token",
  "*.token",
  "secret",
  "*.secret",
  "adminTokens",
  "*.adminTokens",
  "pushTokens",
  "*.pushTokens",
];

export interface LoggerOptions {
  level: string;
  /** Write synchronously (CLI one-shots, tests); default asynchronous. */
  sync?: boolean;
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions): Logger {
  let destination = options.destination;
  if (destination === undefined) {
    destination = options.sync === true
      // One-shot CLI commands: a synchronous write, nothing left behind on exit.
      ? pino.destination({ dest: 1, sync: true })
      // Batched (64 KiB chunks) and flushed every 250 ms so a quiet sidecar never holds a line back.
      : new LineWriter(1, {
        onStateChange: (err) => {
          // stdout is what failed: say so once on stderr, the one place left to say it, without
          // waiting for it or minding if it fails too.
          write(2, err === undefined
            ? "vigil: stdout takes log lines again\n"
            : `vigil: stdout refuses log lines (${err.code ?? err.message}); dropping them (vigil_log_lines_dropped_total)\n`,
          () => undefined);
        },
      });
  }
  return pino(
    {
      level: options.level,
      base: { service: "vigil" },
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

/** The LineWriter under `logger` (and its children), when it writes through one. */
export function loggerLineWriter(logger: Logger): LineWriter | undefined {
  const stream = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym];
  return stream instanceof LineWriter ? stream : undefined;
}

/** Flushes buffered lines; call on shutdown. */
export function flushLogger(logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    logger.flush(() => { resolve(); });
  });
}
