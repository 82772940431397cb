// Reads a policy directory as one snapshot: every *.yaml / *.yml file, in name order, through
// symlinks, names starting with "." skipped. A Kubernetes ConfigMap mount (visible files are
// symlinks into "..data", itself a symlink the kubelet swaps atomically to a new generation) is
// read by resolving "..data" once and reading every file from that one generation, so a swap in
// the middle of a read cannot mix two versions or see a file vanish.
//
// Anything that looks like a save in progress refuses the whole snapshot: a file that is empty or
// holds no document (truncate-then-write), vanishes while it is read, or changes while it is read.
// A reload that drops a policy marked `vigil.dev/required: "true"`, or a rule of one, is refused
// too (see requiredPolicyProblems), and so is a required policy's file that does not end with a
// newline (cut mid-line); the caller keeps the last good policy.

import { lstat, open, readdir, realpath, stat } from "node:fs/promises";
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

/** Annotation that marks a policy whose disappearance on reload must be refused. */
export const REQUIRED_ANNOTATION = "vigil.dev/required";

const POLICY_FILE = /\.ya?ml$/i;
const CONFIGMAP_DATA = "..data";

interface SnapshotFile {
  /** As shown to people and in LoadedPolicyDir.files: join(dir, name). */
  shown: string;
  /** Where it is read from: inside the resolved ConfigMap generation, or the same as `shown`. */
  read: string;
}

function directoryError(dir: string, error: unknown): VigilError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return new VigilError("not_found", `policy directory ${dir} does not exist`, { cause: error });
  if (code === "ENOTDIR") return new VigilError("invalid_input", `policy path ${dir} is not a directory`, { cause: error });
  return new VigilError("unavailable", `cannot read policy directory ${dir}: ${(error as Error).message}`, { cause: error });
}

/** The directory to read every file from: the resolved "..data" generation when there is one. */
async function snapshotRoot(dir: string): Promise<string> {
  try {
    await lstat(join(dir, CONFIGMAP_DATA));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return dir;
    throw directoryError(dir, error);
  }
  try {
    return await realpath(join(dir, CONFIGMAP_DATA));
  } catch (error) {
    throw new VigilError("unavailable", `policy directory ${dir}: ${CONFIGMAP_DATA} does not resolve (a ConfigMap swap in flight?)`, { cause: error });
  }
}

async function policyFiles(dir: string, root: string, issues: PolicyIssue[]): Promise<SnapshotFile[]> {
  let names: string[];
  try {
    names = await readdir(root);
  } catch (error) {
    throw directoryError(dir, error);
  }
  const files: SnapshotFile[] = [];
  for (const name of names.sort()) {
    if (name.startsWith(".") || !POLICY_FILE.test(name)) continue;
    const file = { shown: join(dir, name), read: join(root, name) };
    try {
      // stat follows symlinks: a ConfigMap key is a symlink to ..data/<key>.
      if ((await stat(file.read)).isFile()) files.push(file);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const message = code === "ENOENT" ? "vanished while the directory was read (a dangling symlink or a save in progress)" : `cannot read: ${(error as Error).message}`;
      issues.push({ file: file.shown, document: 0, path: "", message });
    }
  }
  return files;
}

/** Reads one file, refusing it when it changes or vanishes while being read. */
async function readStable(file: SnapshotFile): Promise<string> {
  const handle = await open(file.read, "r");
  try {
    const before = await handle.stat();
    const bytes = await handle.readFile();
    const after = await handle.stat();
    const still = await stat(file.read);
    if (before.size !== after.size || before.mtimeMs !== after.mtimeMs || bytes.length !== after.size
      || still.ino !== after.ino || still.dev !== after.dev || still.size !== after.size || still.mtimeMs !== after.mtimeMs) {
      throw new Error("changed while being read (a save in progress?)");
    }
    return bytes.toString("utf8");
  } finally {
    await handle.close();
  }
}

function requiredFlag(document: PolicyDocument, issues: PolicyIssue[]): boolean {
  const value = document.manifest.metadata.annotations?.[REQUIRED_ANNOTATION];
  if (value === undefined || value === "false") return false;
  if (value === "true") return true;
  issues.push({
    file: document.source.file, document: document.source.document, path: `metadata.annotations.${REQUIRED_ANNOTATION}`,
    message: `must be "true" or "false", got ${JSON.stringify(value.slice(0, 20))}`,
  });
  return false;
}

/** Whether a policy document is marked `vigil.dev/required: "true"`. */
export function isRequiredPolicy(document: PolicyDocument): boolean {
  return document.manifest.metadata.annotations?.[REQUIRED_ANNOTATION] === "true";
}

/**
 * Reads and validates every policy document in `dir` as one snapshot. Throws a VigilError:
 * invalid_input listing every problem (file, document, path, line), not_found when the
 * directory is missing.
 */
export async function loadPolicyDir(dir: string): Promise<LoadedPolicyDir> {
  let root = await snapshotRoot(dir);
  for (let attempt = 1; ; attempt++) {
    try {
      return await loadSnapshot(dir, root);
    } catch (error) {
      if (attempt >= MAX_SNAPSHOT_ATTEMPTS || root === dir) throw error;
      // A ConfigMap swap in flight: the kubelet pointed ..data at a new generation and removes the
      // one being read, so files vanish mid-read. That is no broken policy: read the new generation
      // (a ..data that no longer resolves throws its own error here).
      const now = await snapshotRoot(dir);
      if (now === root) throw error;
      root = now;
    }
  }
}

/**
 * Reads of one policy directory, each from the generation ..data resolves to at its start: a read
 * is retried only when that generation was replaced meanwhile (at most once a minute in a pod).
 */
const MAX_SNAPSHOT_ATTEMPTS = 10;

/** One snapshot: every policy file of `dir`, read from `root` (its ..data generation, or itself). */
async function loadSnapshot(dir: string, root: string): Promise<LoadedPolicyDir> {
  const issues: PolicyIssue[] = [];
  const files = await policyFiles(dir, root, issues);
  if (files.length === 0 && issues.length === 0) {
    throw new VigilError("invalid_input", `no policy files (*.yaml, *.yml) in ${dir}`);
  }
  const documents: PolicyDocument[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readStable(file);
    } catch (error) {
      const vanished = (error as NodeJS.ErrnoException).code === "ENOENT";
      issues.push({ file: file.shown, document: 0, path: "", message: vanished ? "vanished while the directory was read" : `cannot read: ${(error as Error).message}` });
      continue;
    }
    if (text.trim() === "") {
      issues.push({ file: file.shown, document: 0, path: "", message: "is empty: no policy documents (truncated, or a save in progress?); delete the file to remove it" });
      continue;
    }
    const read = await readPolicyDocumentsAsync(text, file.shown);
    // A file of policy tests only (kind PolicyTest, for `vigil test`) is not a policy file.
    if (read.documents.length === 0 && read.issues.length === 0 && read.skipped === 0) {
      issues.push({ file: file.shown, document: 0, path: "", message: "holds no policy documents (truncated, or a save in progress?); delete the file to remove it" });
    }
    const required = read.documents.filter((document) => requiredFlag(document, issues));
    if (required.length > 0 && !text.endsWith("\n")) {
      // A file cut mid-line can still parse (a shorter `when:`, a dropped list item); a required
      // policy's file must end with a newline, which a truncation at a random byte rarely keeps.
      issues.push({ file: file.shown, document: 0, path: "", message: "holds a required policy but does not end with a newline (truncated?)" });
    }
    documents.push(...read.documents);
    issues.push(...read.issues);
  }
  if (issues.length > 0) throw policyError(issues);
  return { documents, files: files.map((f) => f.shown), version: policyVersion(documents) };
}

/**
 * What a reload from `previous` to `next` would drop that is marked required: a required policy
 * (by metadata.name) that is gone, or a rule of it that is gone. Empty when the reload may go on.
 * Removing a required policy or one of its rules takes two changes (first drop the annotation,
 * then the policy) or a restart.
 */
export function requiredPolicyProblems(previous: readonly PolicyDocument[], next: readonly PolicyDocument[]): PolicyIssue[] {
  const nextByName = new Map(next.map((d) => [d.manifest.metadata.name, d]));
  const issues: PolicyIssue[] = [];
  for (const before of previous) {
    if (!isRequiredPolicy(before)) continue;
    const name = before.manifest.metadata.name;
    const after = nextByName.get(name);
    if (after === undefined) {
      issues.push({
        file: before.source.file, document: 0, path: "",
        message: `required policy "${name}" is missing from the new policy; it stays active (to remove it, first drop its ${REQUIRED_ANNOTATION} annotation, or restart)`,
      });
      continue;
    }
    const rules = new Set(after.manifest.spec.rules.map((r) => r.name));
    for (const rule of before.manifest.spec.rules) {
      if (rules.has(rule.name)) continue;
      issues.push({
        file: after.source.file, document: after.source.document, path: "spec.rules",
        message: `rule "${rule.name}" of required policy "${name}" is missing (truncated file?); to remove it, first drop the ${REQUIRED_ANNOTATION} annotation, or restart`,
      });
    }
  }
  return issues;
}

/** loadPolicyDir + compilePolicy: what `serve`, `validate` and the watcher need. */
export async function loadCompiledPolicy(dir: string, options: CompileOptions = {}): Promise<LoadedPolicy> {
  const loaded = await loadPolicyDir(dir);
  const policy = compilePolicy(loaded.documents, options);
  if (policy.ruleCount === 0) throw new VigilError("invalid_input", `the policy in ${dir} has no rules`);
  return { ...loaded, policy };
}
