// How a zod validation failure is told: "path: message", one per issue. One definition for the
// settings file, signals (API, seed file, bus) and the admin API's request bodies.

import type { z } from "zod";

/**
 * A zod issue's path as "a.b.0" ("(root)" for the value itself), after `prefix`. `name` turns
 * each part into text; a reader facing an untrusted client passes one that hides what the client
 * wrote (a field name may be a pasted secret).
 */
export function issuePath(path: readonly PropertyKey[], name: (part: PropertyKey) => string = String, prefix = ""): string {
  const parts = prefix === "" ? [] : [prefix];
  for (const part of path) {
    const text = name(part);
    if (text !== "") parts.push(text);
  }
  return parts.length === 0 ? "(root)" : parts.join(".");
}

/** One "path: message" line per issue. */
export function describeIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.map((issue) => `${issuePath(issue.path)}: ${issue.message}`);
}

/** The issues of a failed parse on one line, "; "-separated. */
export function formatZodError(error: z.ZodError): string {
  return describeIssues(error.issues).join("; ");
}
