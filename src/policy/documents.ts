// YAML text to validated Policy documents. A file may hold several documents ("---"); empty
// documents are skipped but still counted, so "doc 3" is the third document in the file.
// Policy test documents (kind PolicyTest, read by `vigil test`) may sit beside the policies:
// the policy reader skips them, and the test reader skips the policies.

import { setImmediate } from "node:timers/promises";
import { Composer, LineCounter, Parser } from "yaml";
import type { Document } from "yaml";
import type * as z from "zod";
import type { PolicyIssue, PolicySource, PathSegment } from "./diagnostics.js";
import { issuesFromZod, policyError } from "./diagnostics.js";
import { policyManifestSchema } from "./schema.js";
import type { PolicyManifest } from "./schema.js";
import { POLICY_TEST_KIND, policyTestManifestSchema } from "./testing/schema.js";
import type { PolicyTestManifest } from "./testing/schema.js";
import { withOneByteStrings } from "../util/one-byte.js";

export interface PolicyDocument {
  source: PolicySource;
  manifest: PolicyManifest;
}

export interface ReadResult {
  documents: PolicyDocument[];
  issues: PolicyIssue[];
  /** Documents of another kind (policy tests) that were skipped. */
  skipped: number;
}

export interface PolicyTestDocument {
  source: PolicySource;
  manifest: PolicyTestManifest;
}

export interface TestReadResult {
  documents: PolicyTestDocument[];
  issues: PolicyIssue[];
  skipped: number;
}

interface Reader<M> {
  /** Whether a parsed document is of the kind this reader wants (others are skipped). */
  wants(raw: unknown): boolean;
  schema: z.ZodType<M>;
  out: { documents: { source: PolicySource; manifest: M }[]; issues: PolicyIssue[]; skipped: number };
}

function isTestDocument(raw: unknown): boolean {
  return typeof raw === "object" && raw !== null && (raw as Record<string, unknown>).kind === POLICY_TEST_KIND;
}

function policyReader(out: ReadResult): Reader<PolicyManifest> {
  return { wants: (raw) => !isTestDocument(raw), schema: policyManifestSchema, out };
}

/**
 * Parses and validates one document at a time, appending to `out`; a step per document lets the
 * async reader give the event loop back between documents of a large policy.
 */
function* readSteps<M>(text: string, file: string, reader: Reader<M>): Generator<void, void, undefined> {
  const lineCounter = new LineCounter();
  const parser = new Parser(lineCounter.addNewLine);
  const composer = new Composer({ uniqueKeys: true, version: "1.2" });
  const lines = text.split("\n");
  let number = 0;
  for (const doc of composer.compose(parser.parse(text))) {
    number++;
    readDocument(doc, number, file, lineCounter, lines, reader);
    yield;
  }
}

function readDocument<M>(doc: Document.Parsed, number: number, file: string, lineCounter: LineCounter, lines: readonly string[], reader: Reader<M>): void {
  const out = reader.out;
  if (doc.errors.length > 0) {
    for (const error of doc.errors) {
      const line = lineCounter.linePos(error.pos[0]).line;
      const excerpt = lines[line - 1]?.trimEnd() ?? "";
      out.issues.push({ file, document: number, path: "", message: `YAML: ${error.message}${excerpt === "" ? "" : `\n> ${excerpt}`}`, line });
    }
    return;
  }
  let raw: unknown;
  try {
    raw = withOneByteStrings(doc.toJS({ maxAliasCount: 100 }));
  } catch (error) {
    out.issues.push({ file, document: number, path: "", message: `YAML: ${error instanceof Error ? error.message : String(error)}` });
    return;
  }
  if (raw === null || raw === undefined) return;
  if (!reader.wants(raw)) {
    out.skipped++;
    return;
  }
  const source: PolicySource = {
    file,
    document: number,
    line: (path: readonly PathSegment[]) => {
      const node: unknown = path.length === 0 ? doc.contents : doc.getIn(path, true);
      if (typeof node !== "object" || node === null || !("range" in node)) return undefined;
      const range = (node as { range?: unknown }).range;
      if (!Array.isArray(range) || typeof range[0] !== "number") return undefined;
      return lineCounter.linePos(range[0]).line;
    },
  };
  const result = reader.schema.safeParse(raw);
  if (result.success) out.documents.push({ source, manifest: result.data });
  else out.issues.push(...issuesFromZod(result.error, raw, source));
}

/** Parses and validates every document of one file, collecting all problems instead of stopping. */
export function readPolicyDocuments(text: string, file: string): ReadResult {
  const out: ReadResult = { documents: [], issues: [], skipped: 0 };
  for (const _step of readSteps(text, file, policyReader(out))) {
    // every document is read by the step itself
  }
  return out;
}

/** readPolicyDocuments, giving the event loop back after each document (for reloads). */
export async function readPolicyDocumentsAsync(text: string, file: string): Promise<ReadResult> {
  const out: ReadResult = { documents: [], issues: [], skipped: 0 };
  for (const _step of readSteps(text, file, policyReader(out))) await setImmediate();
  return out;
}

/** Parses one file's text; throws a VigilError (invalid_input) listing every problem. */
export function parsePolicyDocuments(text: string, file = "<inline>"): PolicyDocument[] {
  const { documents, issues } = readPolicyDocuments(text, file);
  if (issues.length > 0) throw policyError(issues);
  return documents;
}

/** Parses and validates the policy test documents of one file (policies in it are skipped). */
export function readPolicyTestDocuments(text: string, file: string): TestReadResult {
  const out: TestReadResult = { documents: [], issues: [], skipped: 0 };
  const reader: Reader<PolicyTestManifest> = { wants: isTestDocument, schema: policyTestManifestSchema, out };
  for (const _step of readSteps(text, file, reader)) {
    // every document is read by the step itself
  }
  return out;
}
