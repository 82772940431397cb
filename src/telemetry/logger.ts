// pino logging for Vigil: JSON lines on stdout, child loggers per component, and redaction
// paths for anything that may carry a secret. Decision lines are written through an
// asynchronous destination so the Check path only pays for serialisation; on a crash the
// lines still in pino's buffer (at most a few KiB) can be lost, on shutdown they are flushed.

import { pino, type DestinationStream, type Logger } from "pino";

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
  // Asynchronous writes are batched (4 KiB) so a busy sidecar does not pay a write per decision,
  // and flushed every 250 ms so a quiet one never holds a decision line back for long. On a crash
  // at most those buffered lines are lost; shutdown flushes them (flushLogger).
  let destination = options.destination;
  if (destination === undefined) {
    const sync = options.sync ?? false;
    const sonic = pino.destination({ dest: 1, sync, minLength: sync ? 0 : 4096 });
    if (!sync) setInterval(() => { sonic.flush(); }, 250).unref();
    destination = sonic;
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

/** Flushes buffered lines; call on shutdown. */
export function flushLogger(logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    logger.flush(() => { resolve(); });
  });
}
