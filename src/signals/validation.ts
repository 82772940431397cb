// Turns untrusted input into a Signal, or a VigilError("invalid_input") whose message names each
// offending path, so an operator can fix the write (or the seed file) without reading code.

import type { z } from "zod";
import { VigilError } from "../errors/index.js";
import { signalSchema } from "./model.js";
import type { Signal } from "./model.js";

/** One line per problem: `path: message` (path "(root)" for the value itself). */
export function describeIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.map((issue) => {
    const path = issue.path.map((part) => String(part)).join(".");
    return `${path === "" ? "(root)" : path}: ${issue.message}`;
  });
}

export function parseSignal(input: unknown): Signal {
  const parsed = signalSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  throw new VigilError(
    "invalid_input",
    `invalid signal: ${describeIssues(parsed.error.issues).join("; ")}`,
    { cause: parsed.error },
  );
}
