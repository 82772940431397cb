// Reads a policy directory: every *.yaml / *.yml file, in name order, through symlinks. Names
// starting with "." are skipped, which covers hidden files and the "..data" / "..2024_…"
// entries of a Kubernetes ConfigMap mount (its visible files are symlinks into "..data").

import { readFile, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { VigilError } from "../errors/index.js";
import { compilePolicy, policyVersion } from "./compiler.js";
import type { CompileOptions } from "./compiler.js";
import type { PolicyIssue } from "./diagnostics.js";
import { policyError } from "./diagnostics.js";
import { readPolicyDocumentsAsync } from "./documents.js";
import type { PolicyDocument } from "./documents.js";
import type { CompiledPolicy } from "./types.js";

export interface LoadedPolicyDir {
  documents: PolicyDocument[];
  /** Paths of the files read, as join(dir, name), in the order they were read. */
  files: string[];
  /** Same content hash as the compiled policy's version. */
  version: string;
}

export interface LoadedPolicy extends LoadedPolicyDir {
  policy: CompiledPolicy;
}

const POLICY_FILE = /\.ya?ml$/i;

async function policyFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new VigilError("not_found", `policy directory ${dir} does not exist`, { cause: error });
    if (code === "ENOTDIR") throw new VigilError("invalid_input", `policy path ${dir} is not a directory`, { cause: error });
    throw new VigilError("unavailable", `cannot read policy directory ${dir}: ${(error as Error).message}`, { cause: error });
  }
  const files: string[] = [];
  for (const name of names.sort()) {
    if (name.startsWith(".") || !POLICY_FILE.test(name)) continue;
    const path = join(dir, name);
    try {
      // stat follows symlinks: a ConfigMap key is a symlink to ..data/<key>.
      if ((await stat(path)).isFile()) files.push(path);
    } catch (error) {
      // A dangling symlink while a ConfigMap swap is in flight: the next event reloads.
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw VigilError.from(error, "unavailable");
    }
  }
  return files;
}

/**
 * Reads and validates every policy document in `dir`. Throws a VigilError: invalid_input listing
 * every problem (file, document, path, line), not_found when the directory is missing.
 */
export async function loadPolicyDir(dir: string): Promise<LoadedPolicyDir> {
  const files = await policyFiles(dir);
  if (files.length === 0) {
    throw new VigilError("invalid_input", `no policy files (*.yaml, *.yml) in ${dir}`);
  }
  const documents: PolicyDocument[] = [];
  const issues: PolicyIssue[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (error) {
      issues.push({ file, document: 0, path: "", message: `cannot read: ${(error as Error).message}` });
      continue;
    }
    const read = await readPolicyDocumentsAsync(text, file);
    documents.push(...read.documents);
    issues.push(...read.issues);
  }
  if (issues.length > 0) throw policyError(issues);
  if (documents.length === 0) throw new VigilError("invalid_input", `no policy documents in ${dir} (the files are empty)`);
  return { documents, files, version: policyVersion(documents) };
}

/** loadPolicyDir + compilePolicy: what `serve`, `validate` and the watcher need. */
export async function loadCompiledPolicy(dir: string, options: CompileOptions = {}): Promise<LoadedPolicy> {
  const loaded = await loadPolicyDir(dir);
  return { ...loaded, policy: compilePolicy(loaded.documents, options) };
}
