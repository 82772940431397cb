// Test support for the signal stores: a logger whose lines can be inspected, and polling.

import { pino } from "pino";
import type { Logger } from "pino";

export interface CapturedLog {
  logger: Logger;
  lines: Record<string, unknown>[];
  /** Messages logged at warn (40) or above. */
  warnings(): string[];
}

export function captureLogger(): CapturedLog {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: "debug" }, {
    write(line: string): void {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    },
  });
  return {
    logger,
    lines,
    warnings: () => lines.filter((line) => (line.level as number) >= 40).map((line) => String(line.msg)),
  };
}

export async function eventually(check: () => boolean, timeoutMs = 5_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
