// Reading the shipped configuration files (envoy/, deploy/, Dockerfile) from the repository.

import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

export function repoPath(...parts: string[]): string {
  return join(REPO_ROOT, ...parts);
}

export function readRepoFile(path: string): string {
  return readFileSync(repoPath(path), "utf8");
}

export function repoFileExists(path: string): boolean {
  return existsSync(repoPath(path));
}

/** Repository-relative paths of all files under `dir` (recursive), sorted. */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (abs: string): void => {
    for (const name of readdirSync(abs)) {
      const child = join(abs, name);
      if (statSync(child).isDirectory()) walk(child);
      else out.push(relative(REPO_ROOT, child));
    }
  };
  walk(repoPath(dir));
  return out.sort();
}

/**
 * Parses YAML text strictly (duplicate keys, tabs and syntax errors are errors) and returns
 * every non-empty document as plain JSON-compatible values.
 */
export function parseYamlDocuments(text: string, source: string): unknown[] {
  const docs = parseAllDocuments(text, { uniqueKeys: true, strict: true, prettyErrors: true });
  if (!Array.isArray(docs)) throw new Error(`${source}: not a YAML stream`);
  const out: unknown[] = [];
  docs.forEach((doc, i) => {
    const problems = [...doc.errors, ...doc.warnings];
    if (problems.length > 0) {
      throw new Error(`${source} document ${i + 1}: ${problems.map((p) => p.message).join("; ")}`);
    }
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value !== null && value !== undefined) out.push(value);
  });
  return out;
}

export function readYamlDocuments(path: string): unknown[] {
  return parseYamlDocuments(readRepoFile(path), path);
}

/** The single document of a one-document YAML file. */
export function readYaml(path: string): unknown {
  const docs = readYamlDocuments(path);
  if (docs.length !== 1) throw new Error(`${path}: expected one YAML document, found ${docs.length}`);
  return docs[0];
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
