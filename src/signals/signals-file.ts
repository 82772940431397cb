// Seed signals from a file (`vigil serve --signals`, `vigil check`): a YAML or JSON list of
// signals, validated like any other write. Times may be written as ISO 8601 strings for
// readability; they become epoch milliseconds.

import { readFile } from "node:fs/promises";
import { extname } from "node:path";
import { parse as parseYaml } from "yaml";
import { VigilError } from "../errors/index.js";
import { signalSchema } from "./model.js";
import type { Signal } from "./model.js";
import { writeProblems } from "./validation.js";
import { isRecord } from "../util/guards.js";
import { describeIssues } from "../util/zod.js";
import { withOneByteStrings } from "../util/one-byte.js";

/** Fields holding epoch ms, where a file may give an ISO string instead. */
const TOP_LEVEL_TIMES = ["observedAt", "expiresAt"] as const;
const DATA_TIMES = ["issuedAt", "rotatedAt", "rotateBy", "signedAt"] as const;

/** Replaces ISO time strings by epoch ms in place; returns a problem per unreadable time. */
function convertTimes(item: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const convert = (holder: Record<string, unknown>, field: string, path: string): void => {
    const value = holder[field];
    if (typeof value !== "string") return;
    const ms = Date.parse(value);
    if (Number.isNaN(ms)) problems.push(`${path}: not an ISO 8601 time or epoch milliseconds: "${value}"`);
    else holder[field] = ms;
  };
  for (const field of TOP_LEVEL_TIMES) convert(item, field, field);
  const data = item.data;
  if (isRecord(data)) {
    for (const field of DATA_TIMES) convert(data, field, `data.${field}`);
  }
  return problems;
}

/**
 * One signal as written in a signals file (times as ISO strings or epoch ms), validated like any
 * other write; also used for the signals of `vigil test` cases.
 */
export function readSignalItem(item: unknown): { signal: Signal } | { problems: string[] } {
  if (!isRecord(item)) return { problems: ["expected a mapping with id, kind, subject, source, observedAt, data"] };
  const copy = structuredClone(item);
  const timeProblems = convertTimes(copy);
  if (timeProblems.length > 0) return { problems: timeProblems };
  const parsed = signalSchema.safeParse(copy);
  if (!parsed.success) return { problems: describeIssues(parsed.error.issues) };
  const refused = writeProblems(parsed.data);
  return refused.length > 0 ? { problems: refused } : { signal: parsed.data };
}

function parseDocument(path: string, text: string): unknown {
  try {
    return extname(path).toLowerCase() === ".json" ? JSON.parse(text) : withOneByteStrings(parseYaml(text));
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new VigilError("invalid_input", `${path}: not valid ${extname(path) === ".json" ? "JSON" : "YAML"}: ${reason}`, {
      cause: error,
    });
  }
}

/**
 * Reads and validates every signal in the file. Throws VigilError("invalid_input") listing every
 * problem as `file: signal at index N: path: what is wrong`, or VigilError("not_found").
 */
export async function loadSignalsFile(path: string): Promise<Signal[]> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === "ENOENT";
    throw new VigilError(missing ? "not_found" : "invalid_input", `cannot read signals file ${path}`, { cause: error });
  }
  const document = parseDocument(path, text);
  if (document === null || document === undefined) return [];
  if (!Array.isArray(document)) {
    throw new VigilError("invalid_input", `${path}: expected a list of signals at the top level`);
  }
  const signals: Signal[] = [];
  const problems: string[] = [];
  document.forEach((item: unknown, index) => {
    const where = `${path}: signal at index ${index}`;
    const read = readSignalItem(item);
    if ("signal" in read) signals.push(read.signal);
    else problems.push(...read.problems.map((problem) => `${where}: ${problem}`));
  });
  if (problems.length > 0) {
    throw new VigilError("invalid_input", `invalid signals file:\n${problems.join("\n")}`);
  }
  return signals;
}
