// Finds and reads policy test documents: the files and directories given to `vigil test`
// (a directory contributes its *.yaml / *.yml files, not its subdirectories). Problems are
// collected as PolicyIssues (file, document, path, line), exactly as for policies.

import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { VigilError } from "../../errors/index.js";
import type { PolicyIssue } from "../diagnostics.js";
import { policyError } from "../diagnostics.js";
import type { PolicyTestDocument } from "../documents.js";
import { readPolicyTestDocuments } from "../documents.js";

const YAML_FILE = /\.ya?ml$/i;

async function filesOf(path: string, issues: PolicyIssue[]): Promise<string[]> {
  let info;
  try {
    info = await stat(path);
  } catch (error) {
    issues.push({ file: path, document: 0, path: "", message: (error as NodeJS.ErrnoException).code === "ENOENT" ? "does not exist" : `cannot read: ${(error as Error).message}` });
    return [];
  }
  if (!info.isDirectory()) return [path];
  const names = (await readdir(path)).filter((name) => !name.startsWith(".") && YAML_FILE.test(name)).sort();
  const files: string[] = [];
  for (const name of names) if ((await stat(join(path, name))).isFile()) files.push(join(path, name));
  return files;
}

export interface LoadedPolicyTests {
  documents: PolicyTestDocument[];
  /** Every file read, whether it held tests or not. */
  files: string[];
}

/**
 * Reads every PolicyTest document in `paths`. Throws a VigilError (invalid_input) listing every
 * problem, or when the paths hold no test case at all (a CI job must not pass on nothing).
 */
export async function loadPolicyTests(paths: readonly string[]): Promise<LoadedPolicyTests> {
  const issues: PolicyIssue[] = [];
  const files: string[] = [];
  for (const path of paths) for (const file of await filesOf(path, issues)) if (!files.includes(file)) files.push(file);
  const documents: PolicyTestDocument[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (error) {
      issues.push({ file, document: 0, path: "", message: `cannot read: ${(error as Error).message}` });
      continue;
    }
    const read = readPolicyTestDocuments(text, file);
    documents.push(...read.documents);
    issues.push(...read.issues);
  }
  if (issues.length > 0) throw policyError(issues);
  if (documents.length === 0) throw new VigilError("invalid_input", `no policy tests (kind: PolicyTest) in ${paths.join(", ")}`);
  return { documents, files };
}
