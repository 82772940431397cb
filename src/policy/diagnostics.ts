// Problems found in policy documents, each naming file, document (1-based), path and, when known,
// line, so `vigil validate` and the reload log can print them as they are:
//   policies/deploy.yaml doc 2: spec.rules[0].outcome: expected one of allow|deny|step_up|delay|revoke, got "allw" (line 14)

import type * as z from "zod";
import { VigilError } from "../errors/index.js";

export type PathSegment = string | number;

/** Where a document came from; `line` finds the line of a path in it, when the text is known. */
export interface PolicySource {
  file: string;
  /** 1-based position of the document in its file. */
  document: number;
  line?: (path: readonly PathSegment[]) => number | undefined;
}

export interface PolicyIssue {
  file: string;
  /** 1-based document number; 0 when the problem is about the file as a whole. */
  document: number;
  /** "spec.rules[0].outcome"; "" for the document or file as a whole. */
  path: string;
  line?: number;
  message: string;
}

const MAX_LISTED = 50;

export function formatPath(path: readonly PropertyKey[]): string {
  let text = "";
  for (const segment of path) {
    if (typeof segment === "number") text += `[${segment}]`;
    else text += text === "" ? String(segment) : `.${String(segment)}`;
  }
  return text;
}

export function formatIssue(issue: PolicyIssue): string {
  const where = issue.document > 0 ? `${issue.file} doc ${issue.document}` : issue.file;
  const [first = "", ...rest] = issue.message.split("\n");
  const line = issue.line === undefined ? "" : ` (line ${issue.line})`;
  const head = `${where}: ${issue.path === "" ? "" : `${issue.path}: `}${first}${line}`;
  const more = rest.filter((text) => text.trim() !== "").map((text) => `    ${text}`);
  return [head, ...more].join("\n");
}

/** One VigilError (invalid_input) whose message lists every issue, one per line. */
export function policyError(issues: readonly PolicyIssue[]): VigilError {
  const listed = issues.slice(0, MAX_LISTED).map(formatIssue);
  if (issues.length > MAX_LISTED) listed.push(`… and ${issues.length - MAX_LISTED} more problems`);
  const summary = issues.length === 1 ? "invalid policy:" : `invalid policy (${issues.length} problems):`;
  return new VigilError("invalid_input", `${summary}\n${listed.join("\n")}`);
}

/** The text to show a person for anything policy loading threw. */
export function formatPolicyError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let value = root;
  for (const segment of path) {
    if (typeof value !== "object" || value === null) return undefined;
    value = (value as Record<PropertyKey, unknown>)[segment];
  }
  return value;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "string") return JSON.stringify(value.length > 60 ? value.slice(0, 57) + "..." : value);
  if (typeof value === "object") return "a mapping";
  if (typeof value === "number" || typeof value === "boolean") return `${typeof value} ${value}`;
  return typeof value;
}

function zodMessage(issue: z.core.$ZodIssue, raw: unknown): string {
  const got = valueAt(raw, issue.path);
  switch (issue.code) {
    case "invalid_value": {
      if (got === undefined) return "required";
      const expected = issue.values.map((value) => String(value)).join("|");
      return issue.values.length === 1 ? `expected "${expected}", got ${describe(got)}` : `expected one of ${expected}, got ${describe(got)}`;
    }
    case "invalid_type":
      if (got === undefined) return "required";
      return `expected ${issue.expected === "object" ? "a mapping" : issue.expected === "array" ? "a list" : issue.expected}, got ${describe(got)}`;
    case "too_small":
      if (issue.origin === "array") return issue.message.startsWith("Too small") ? (Number(issue.minimum) === 1 ? "must not be empty" : `must have at least ${Number(issue.minimum)} items`) : issue.message;
      if (issue.origin === "string") return issue.message.startsWith("Too small") ? "must not be empty" : issue.message;
      return issue.inclusive ? `must be at least ${Number(issue.minimum)}` : `must be greater than ${Number(issue.minimum)}`;
    case "too_big":
      if (issue.origin === "string") return `must be at most ${Number(issue.maximum)} characters`;
      if (issue.origin === "array") return `must have at most ${Number(issue.maximum)} items`;
      return `must be at most ${Number(issue.maximum)}`;
    case "invalid_union":
      return Array.isArray(got) ? "expected a list of strings" : `expected a string or a list of strings, got ${describe(got)}`;
    case "invalid_key":
      return `invalid key: ${issue.message}`;
    case "unrecognized_keys":
    case "invalid_format":
    case "not_multiple_of":
    case "invalid_element":
    case "custom":
      return issue.message;
  }
}

/** Turns zod's issues for one document into PolicyIssues (one per unknown field). */
export function issuesFromZod(error: z.ZodError, raw: unknown, source: PolicySource): PolicyIssue[] {
  const issues: PolicyIssue[] = [];
  const at = (path: PathSegment[], message: string): void => {
    const line = lineOf(source, path);
    issues.push({ file: source.file, document: source.document, path: formatPath(path), message, ...(line === undefined ? {} : { line }) });
  };
  for (const issue of error.issues) {
    const path = issue.path.filter((segment): segment is PathSegment => typeof segment !== "symbol");
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) at([...path, key], "unknown field");
    } else {
      at(path, zodMessage(issue, raw));
    }
  }
  return issues;
}

/** Line of the path, or of its nearest ancestor present in the text (for a missing field). */
export function lineOf(source: PolicySource, path: readonly PathSegment[]): number | undefined {
  if (source.line === undefined) return undefined;
  for (let length = path.length; length >= 0; length--) {
    const line = source.line(path.slice(0, length));
    if (line !== undefined) return line;
  }
  return undefined;
}
