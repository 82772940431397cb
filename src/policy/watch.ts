// Hot reload: watch the policy directory, and after a quiet period re-read and recompile all of
// it, then swap the active policy in one assignment. Watching the directory (not the files)
// catches edits, new files and the atomic "..data" symlink swap of a Kubernetes ConfigMap. A
// change that does not load keeps the last good policy and is reported through onError: a broken
// or empty file, a file that vanishes or changes while read, and a change that drops a policy (or
// a rule of one) marked `vigil.dev/required: "true"` (see loader.ts).

import { watch } from "node:fs";
import type { FSWatcher } from "node:fs";
import { VigilError } from "../errors/index.js";
import type { CompileOptions } from "./compiler.js";
import { policyError } from "./diagnostics.js";
import type { PolicyDocument } from "./documents.js";
import { loadCompiledPolicy, requiredPolicyProblems } from "./loader.js";
import type { CompiledPolicy } from "./types.js";

/** About a load; the policy itself carries version and ruleCount. */
export interface PolicyLoadInfo {
  files: string[];
  /** True for the load done by watchPolicyDir itself, false for reloads. */
  initial: boolean;
  /** Policies (metadata.name) the reload dropped; only present when some were. */
  removed?: string[];
}

export interface PolicyWatchOptions {
  /** Called after a policy became active (also for the initial load). */
  onLoad?: (policy: CompiledPolicy, info: PolicyLoadInfo) => void;
  /** Called when a change could not be loaded; the previous policy stays active. */
  onError?: (error: VigilError) => void;
  /** Quiet period after the last change before reloading (default 200 ms). */
  debounceMs?: number;
  /** Also re-read every this many ms, for file systems without change events (default off). */
  pollIntervalMs?: number;
  compile?: CompileOptions;
}

export interface PolicyWatch {
  /** The active policy; read it on each decision rather than keeping it. */
  current(): CompiledPolicy;
  /** Forces a reload now (e.g. on SIGHUP); resolves when it is done, errors go to onError. */
  reload(): Promise<void>;
  close(): void;
}

/**
 * Loads `dir` (throwing if that fails) and keeps reloading it as it changes.
 */
export async function watchPolicyDir(dir: string, options: PolicyWatchOptions = {}): Promise<PolicyWatch> {
  const debounceMs = options.debounceMs ?? 200;
  const notify = <T extends unknown[]>(callback: ((...args: T) => void) | undefined, ...args: T): void => {
    if (callback === undefined) return;
    try {
      callback(...args);
    } catch {
      // The integrator's callback failing must not stop reloading.
    }
  };

  const initial = await loadCompiledPolicy(dir, options.compile);
  let active = initial.policy;
  let activeDocuments: readonly PolicyDocument[] = initial.documents;
  notify(options.onLoad, active, { files: initial.files, initial: true });

  let closed = false;
  let timer: NodeJS.Timeout | undefined;

  const load = async (): Promise<void> => {
    try {
      const loaded = await loadCompiledPolicy(dir, options.compile);
      const problems = requiredPolicyProblems(activeDocuments, loaded.documents);
      if (problems.length > 0) throw policyError(problems);
      if (closed || loaded.version === active.version) return;
      const names = new Set(loaded.documents.map((d) => d.manifest.metadata.name));
      const removed = activeDocuments.map((d) => d.manifest.metadata.name).filter((name) => !names.has(name));
      active = loaded.policy;
      activeDocuments = loaded.documents;
      notify(options.onLoad, active, { files: loaded.files, initial: false, ...(removed.length > 0 ? { removed } : {}) });
    } catch (error) {
      if (!closed) notify(options.onError, VigilError.from(error));
    }
  };

  // One reload at a time; changes during a reload queue exactly one more after it.
  let running: Promise<void> | undefined;
  let queued: Promise<void> | undefined;
  const reload = (): Promise<void> => {
    if (closed) return Promise.resolve();
    if (running === undefined) {
      running = load().finally(() => {
        running = undefined;
      });
      return running;
    }
    queued ??= running.then(() => {
      queued = undefined;
      return reload();
    });
    return queued;
  };

  const schedule = (): void => {
    if (closed) return;
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      void reload();
    }, debounceMs);
    timer.unref();
  };

  let watcher: FSWatcher;
  try {
    watcher = watch(dir, { persistent: false }, schedule);
    watcher.on("error", (error) => {
      notify(options.onError, VigilError.from(error, "unavailable"));
    });
  } catch (error) {
    throw VigilError.from(error, "unavailable");
  }
  const poll = options.pollIntervalMs !== undefined && options.pollIntervalMs > 0 ? setInterval(schedule, options.pollIntervalMs) : undefined;
  poll?.unref();

  return {
    current: () => active,
    reload: () => {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      return reload();
    },
    close: () => {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      if (poll !== undefined) clearInterval(poll);
      watcher.close();
    },
  };
}
