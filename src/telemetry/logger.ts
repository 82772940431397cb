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
  // minLength 0: lines go out as soon as the previous write finished, so a quiet sidecar never holds
  // decision lines back; under load sonic-boom still batches whatever queued during a write.
  const destination = options.destination ?? pino.destination({ dest: 1, sync: options.sync ?? false, minLength: 0 });
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
