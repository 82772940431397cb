// Baselines across restarts: behavior.json beside the signal journal (or behavior.statePath),
// written atomically (temporary file, fsync, rename) every persistIntervalMs when something
// changed and at shutdown, and read at start. A restart therefore does not re-open learning.
//
// The file is trusted no more than any input: a file that does not parse, or holds a value out
// of shape, stops the start naming the file (SECURITY.md T16c): silently starting empty would
// hand every caller a fresh learning period, which is what an attacker who can delete or garble
// the file wants. An operator who means to start over removes the file.

import { mkdir, open, readFile, rename } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Logger } from "pino";
import { z } from "zod";
import { VigilError } from "../errors/index.js";
import type { BehaviorMonitor, SavedBaseline } from "./monitor.js";

const FILE_VERSION = 1;

const savedBaselineSchema = z.strictObject({
  caller: z.string().startsWith("spiffe://").max(2048),
  firstSeen: z.number().int().nonnegative(),
  lastSeen: z.number().int().nonnegative(),
  actions: z.array(z.string().max(512)).max(100_000),
  networks: z.array(z.string().max(64)).max(10_000),
  ewma: z.number().nonnegative(),
  fanoutMax: z.number().int().nonnegative(),
});

const fileSchema = z.strictObject({
  version: z.literal(FILE_VERSION),
  savedAt: z.number().int().nonnegative(),
  baselines: z.array(savedBaselineSchema),
});

/** Where baselines live: statePath, else behavior.json beside the journal; "" = memory only. */
export function behaviorStatePath(statePath: string, journalPath: string): string {
  if (statePath !== "") return statePath;
  return journalPath === "" ? "" : join(dirname(journalPath), "behavior.json");
}

/** Reads saved baselines; [] when the file does not exist. Throws VigilError("invalid_input") naming the file otherwise. */
export async function readBaselines(path: string): Promise<SavedBaseline[]> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw new VigilError("invalid_input", `cannot read behaviour baselines ${path}: ${(err as NodeJS.ErrnoException).code ?? "unreadable"}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new VigilError("invalid_input", `behaviour baselines ${path} are not valid JSON; remove the file to learn every caller anew`, { cause });
  }
  const result = fileSchema.safeParse(parsed);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new VigilError("invalid_input",
      `behaviour baselines ${path} are not in the expected form (${issue?.path.join(".") ?? ""}: ${issue?.message ?? ""}); remove the file to learn every caller anew`);
  }
  return result.data.baselines;
}

/** Writes baselines atomically: a reader (or a crash) sees the old file or the new one, never half. */
export async function writeBaselines(path: string, baselines: readonly SavedBaseline[], savedAt: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.tmp`;
  const handle = await open(temporary, "w", 0o600);
  try {
    await handle.writeFile(JSON.stringify({ version: FILE_VERSION, savedAt, baselines }));
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temporary, path);
}

export interface BaselinePersistence {
  /** Writes now when something changed. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** Loads the file into the monitor, then keeps it written. */
export async function persistBaselines(
  monitor: BehaviorMonitor, options: { path: string; intervalMs: number; logger: Logger; now: () => number },
): Promise<BaselinePersistence> {
  const { path, logger, now } = options;
  const saved = await readBaselines(path);
  monitor.restore(saved);
  if (saved.length > 0) logger.info({ file: path, callers: saved.length }, "behaviour baselines loaded");
  let writing: Promise<void> = Promise.resolve();
  const flush = (): Promise<void> => {
    writing = writing.then(async () => {
      if (!monitor.dirty) return;
      try {
        await writeBaselines(path, monitor.snapshot(), now());
      } catch (err) {
        monitor.markDirty();
        logger.error({ err: { message: VigilError.from(err).message }, file: path }, "behaviour baselines not written; retrying at the next interval");
      }
    });
    return writing;
  };
  const timer = setInterval(() => { void flush(); }, options.intervalMs);
  timer.unref();
  return {
    flush,
    close: async () => {
      clearInterval(timer);
      await flush();
    },
  };
}
